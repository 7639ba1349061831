/* fp32 FMA peak of this machine on all OpenMP threads.
 *
 *   clang -O3 -march=native -fopenmp bench/fma_peak.c -o fma_peak
 *   OMP_NUM_THREADS=2 ./fma_peak [seconds per trial, default 0.3]
 *
 * Every thread runs NACC independent chains acc[i] = acc[i] * x + y on the
 * widest fp32 vector the compiler targets (AVX-512, AVX2+FMA; otherwise
 * 128-bit generic vectors, which may compile to a separate multiply and
 * add). NACC (12 by default) covers the FMA latency times the number of FMA
 * pipes of current x86 cores (4-5 cycles x 2 pipes). x < 1 and y > 0 keep
 * the accumulators near y / (1 - x) = 1: no overflow, no denormals.
 *
 * The number of iterations is calibrated so that one trial takes about the
 * requested time; five trials are run and the fastest one is reported as
 * "gflops" (peak = best case; other work on the machine only slows trials
 * down), their median as "median_gflops". Flops: 2 per FMA per fp32 lane.
 *
 * Output, one JSON line on stdout:
 *   {"threads": N, "gflops": X, "isa": "avx2", "vector_bits": 256,
 *    "accumulators": 12, "seconds": S, "median_gflops": M,
 *    "trials_gflops": [...], ...}
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef NACC
#define NACC 12
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec_t;
#define ISA "avx512f"
#define VBITS 512
#define VSET1(a) _mm512_set1_ps(a)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSTORE(p, a) _mm512_storeu_ps((p), (a))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec_t;
#define ISA "avx2"
#define VBITS 256
#define VSET1(a) _mm256_set1_ps(a)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSTORE(p, a) _mm256_storeu_ps((p), (a))
#else
/* Generic vector extension; the compiler may or may not fuse a*b+c. */
typedef float vec_t __attribute__((vector_size(16)));
#define ISA "generic128"
#define VBITS 128
static inline vec_t vset1(float a) { vec_t v = {a, a, a, a}; return v; }
#define VSET1(a) vset1(a)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VSTORE(p, a) __builtin_memcpy((p), &(a), sizeof(vec_t))
#endif

#define LANES (VBITS / 32)

/* Runs `iters` iterations of NACC independent FMAs; returns a checksum so
 * that the work cannot be optimized away. */
__attribute__((noinline)) static float fma_loop(long iters, float xs, float ys) {
  vec_t acc[NACC];
  const vec_t x = VSET1(xs), y = VSET1(ys);
  for (int i = 0; i < NACC; i++)
    acc[i] = VSET1(1.0f + 0.001f * (float)i);
  for (long n = 0; n < iters; n++) {
#pragma clang loop unroll(full)
    for (int i = 0; i < NACC; i++)
      acc[i] = VFMA(acc[i], x, y);
  }
  vec_t sum = acc[0];
  for (int i = 1; i < NACC; i++)
    sum = VADD(sum, acc[i]);
  float lanes[LANES];
  VSTORE(lanes, sum);
  float s = 0.0f;
  for (int i = 0; i < LANES; i++)
    s += lanes[i];
  return s;
}

static volatile float sink;

/* Wall time of all threads running `iters` iterations each. */
static double run(long iters, float xs, float ys) {
  double t0 = 0.0, t1 = 0.0;
#pragma omp parallel
  {
#pragma omp barrier
#pragma omp master
    t0 = omp_get_wtime();
    float s = fma_loop(iters, xs, ys);
#pragma omp barrier
#pragma omp master
    t1 = omp_get_wtime();
#pragma omp critical
    sink += s;
  }
  return t1 - t0;
}

int main(int argc, char **argv) {
  double target = argc > 1 ? atof(argv[1]) : 0.3;
  if (!(target > 0.0))
    target = 0.3;
  /* Runtime values, so nothing can be constant-folded. */
  volatile float xv = 0.9999f, yv = 0.0001f;
  float xs = xv, ys = yv;
  int threads = omp_get_max_threads();

  /* Calibrate: double until a run takes >= 20 ms, then scale to target. */
  long iters = 1 << 14;
  double t = run(iters, xs, ys); /* also starts the thread pool */
  while ((t = run(iters, xs, ys)) < 0.02)
    iters *= 2;
  iters = (long)((double)iters * target / t);
  if (iters < 1)
    iters = 1;

  enum { TRIALS = 5 };
  double gf[TRIALS], best = 0.0, best_t = 0.0;
  double flops = 2.0 * LANES * NACC * (double)iters * threads;
  for (int i = 0; i < TRIALS; i++) {
    t = run(iters, xs, ys);
    gf[i] = flops / t * 1e-9;
    if (gf[i] > best) {
      best = gf[i];
      best_t = t;
    }
  }
  double sorted[TRIALS];
  for (int i = 0; i < TRIALS; i++) {
    int j = i;
    for (; j > 0 && sorted[j - 1] > gf[i]; j--)
      sorted[j] = sorted[j - 1];
    sorted[j] = gf[i];
  }
  printf("{\"threads\": %d, \"gflops\": %.2f, \"isa\": \"%s\", "
         "\"vector_bits\": %d, \"accumulators\": %d, \"iterations\": %ld, "
         "\"seconds\": %.4f, \"median_gflops\": %.2f, \"trials_gflops\": [",
         threads, best, ISA, VBITS, NACC, iters, best_t, sorted[TRIALS / 2]);
  for (int i = 0; i < TRIALS; i++)
    printf("%s%.2f", i ? ", " : "", gf[i]);
  printf("], \"checksum\": %.4f}\n", (double)sink);
  return 0;
}
