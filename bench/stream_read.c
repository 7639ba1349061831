/* Memory read bandwidth of this machine on all OpenMP threads: the figure
 * decode kernels (which stream the KV cache once) are measured against.
 *
 *   clang -O3 -march=native -fopenmp bench/stream_read.c -o stream_read
 *   OMP_NUM_THREADS=2 ./stream_read [MiB, default 1024] [trials, default 5]
 *
 * Each thread sums its contiguous share of a float buffer far larger than
 * the caches with 8 independent vector accumulators (a read-only stream, no
 * writes: what a decode step does with K and V). The buffer is written once
 * first, so every page is mapped. The fastest trial is reported as "gbps"
 * (10^9 bytes read per second), their median as "median_gbps".
 *
 * Output, one JSON line on stdout:
 *   {"threads": N, "bytes": B, "gbps": X, "median_gbps": M, "trials_gbps":
 * [...]}
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float vec_t __attribute__((vector_size(32)));

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 1024;
  int trials = argc > 2 ? atoi(argv[2]) : 5;
  if (mib <= 0 || trials <= 0 || trials > 100) {
    fprintf(stderr, "usage: stream_read [MiB > 0] [trials 1..100]\n");
    return 2;
  }
  size_t bytes = (size_t)mib << 20, n = bytes / sizeof(vec_t);
  vec_t *data = aligned_alloc(64, n * sizeof(vec_t));
  if (!data) {
    fprintf(stderr, "stream_read: cannot allocate %ld MiB\n", mib);
    return 1;
  }
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i)
    data[i] = (vec_t){1, 1, 1, 1, 1, 1, 1, 1};
  double gbps[100], sink = 0;
  for (int t = 0; t < trials; ++t) {
    double start = omp_get_wtime(), total = 0;
#pragma omp parallel reduction(+ : total)
    {
      vec_t acc[8] = {0};
#pragma omp for schedule(static)
      for (size_t i = 0; i < n / 8 * 8; i += 8)
        for (int j = 0; j < 8; ++j)
          acc[j] += data[i + j];
      for (int j = 1; j < 8; ++j)
        acc[0] += acc[j];
      for (int l = 0; l < 8; ++l)
        total += acc[0][l];
    }
    gbps[t] = (double)bytes / (omp_get_wtime() - start) / 1e9;
    sink += total;
  }
  double sorted[100];
  for (int t = 0; t < trials; ++t)
    sorted[t] = gbps[t];
  qsort(sorted, trials, sizeof(double), compare);
  printf("{\"threads\": %d, \"bytes\": %zu, \"gbps\": %.3f, \"median_gbps\": "
         "%.3f, "
         "\"trials_gbps\": [",
         omp_get_max_threads(), bytes, sorted[trials - 1], sorted[trials / 2]);
  for (int t = 0; t < trials; ++t)
    printf("%s%.3f", t ? ", " : "", gbps[t]);
  printf("], \"checksum\": %.1f}\n", sink);
  free(data);
  return 0;
}
