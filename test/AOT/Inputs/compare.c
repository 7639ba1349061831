/* Compares two f32 BHSD sqa-aot libraries of one configuration on random
 * inputs: compare LIB_A NAME_A LIB_B NAME_B HQ HKV D DV B S T. Prints the
 * largest absolute difference and PASS when it is below 1e-4. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*forward_fn)(const float *, const float *, const float *, float *,
                          int64_t, int64_t, int64_t);

static forward_fn load(const char *path, const char *name) {
  char symbol[256];
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("FAIL dlopen %s: %s\n", path, dlerror());
    exit(1);
  }
  snprintf(symbol, sizeof symbol, "%s_forward", name);
  return (forward_fn)dlsym(lib, symbol);
}

static float *random_buffer(int64_t n, unsigned *seed) {
  float *p = malloc(n * sizeof(float));
  for (int64_t i = 0; i < n; ++i)
    p[i] = (float)rand_r(seed) / RAND_MAX * 2.0f - 1.0f;
  return p;
}

int main(int argc, char **argv) {
  if (argc != 12) {
    printf("FAIL usage\n");
    return 1;
  }
  forward_fn a = load(argv[1], argv[2]), b = load(argv[3], argv[4]);
  int64_t hq = atoll(argv[5]), hkv = atoll(argv[6]), d = atoll(argv[7]),
          dv = atoll(argv[8]), batch = atoll(argv[9]), s = atoll(argv[10]),
          t = atoll(argv[11]);
  int64_t hout = hq > hkv ? hq : hkv, n = batch * hout * s * dv;
  unsigned seed = 1;
  float *q = random_buffer(batch * hq * s * d, &seed);
  float *k = random_buffer(batch * hkv * t * d, &seed);
  float *v = random_buffer(batch * hkv * t * dv, &seed);
  float *oa = calloc(n, sizeof(float)), *ob = calloc(n, sizeof(float));
  if (!a || !b || a(q, k, v, oa, batch, s, t) || b(q, k, v, ob, batch, s, t)) {
    printf("FAIL call\n");
    return 1;
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    worst = fmax(worst, fabs((double)oa[i] - ob[i]));
  printf("%s B=%lld S=%lld T=%lld max_abs_diff=%g\n",
         worst < 1e-4 ? "PASS" : "FAIL", (long long)batch, (long long)s,
         (long long)t, worst);
  return worst < 1e-4 ? 0 : 1;
}
