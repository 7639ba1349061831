/* NAME_decode through the generated header, on an analytic case: q = 0
 * makes every visible key equally likely, and v at cache position t is t,
 * so each output is the mean position of the keys its row sees. */
#include "dec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum {
  B = 2,
  KV = DEC_KV_HEADS,
  H = DEC_OUT_HEADS,
  D = DEC_HEAD_DIM,
  C = 8,
  N = 2
};

static float q[B][DEC_Q_HEADS][N][D], kc[B][KV][C][D], vc[B][KV][C][D];
static float kn[B][KV][N][D], vn[B][KV][N][D], out[B][H][N][D];

static int check(const char *what, const float want[B][N]) {
  int ok = 1;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i)
        for (int d = 0; d < D; ++d)
          if (fabsf(out[b][h][i][d] - want[b][i]) > 1e-5f) {
            if (ok)
              printf("FAIL %s b=%d h=%d i=%d got %g want %g\n", what, b, h, i,
                     out[b][h][i][d], want[b][i]);
            ok = 0;
          }
  if (ok)
    printf("PASS %s\n", what);
  return ok;
}

int main(void) {
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < KV; ++h)
      for (int t = 0; t < C; ++t)
        for (int d = 0; d < D; ++d) {
          kc[b][h][t][d] = 1.0f;
          vc[b][h][t][d] = (float)t;
        }
  /* Append: rows hold 3 and 0 tokens; new tokens land at 3, 4 and 0, 1. */
  int64_t lens[B] = {3, 0};
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < KV; ++h)
      for (int i = 0; i < N; ++i)
        for (int d = 0; d < D; ++d) {
          kn[b][h][i][d] = 2.0f;
          vn[b][h][i][d] = (float)(lens[b] + i);
        }
  int status = dec_decode(&q[0][0][0][0], &kc[0][0][0][0], &vc[0][0][0][0],
                          &kn[0][0][0][0], &vn[0][0][0][0], lens,
                          &out[0][0][0][0], B, N, C);
  printf("append status=%d\n", status);
  /* Causal, bottom-right: positions 3, 4 see keys 0..3, 0..4; 0, 1 see 0, 0..1.
   */
  const float appended[B][N] = {{1.5f, 2.0f}, {0.0f, 0.5f}};
  int ok = check("append", appended);
  ok &= kc[0][0][3][0] == 2.0f && kc[0][0][4][0] == 2.0f &&
        kc[0][0][5][0] == 1.0f && kc[1][0][1][0] == 2.0f;
  printf("%s cache-append\n", ok ? "PASS" : "FAIL");

  /* A fixed memory (no append): a row with no token yields 0. */
  int64_t memory[B] = {0, 4};
  memset(out, 0xff, sizeof out);
  status = dec_decode(&q[0][0][0][0], &kc[0][0][0][0], &vc[0][0][0][0], NULL,
                      NULL, memory, &out[0][0][0][0], B, N, C);
  printf("memory status=%d\n", status);
  const float fixed[B][N] = {{0.0f, 0.0f}, {1.0f, 1.5f}};
  check("memory", fixed);

  /* Only one of k_new/v_new, and an append past capacity. */
  printf("one-null status=%d\n",
         dec_decode(&q[0][0][0][0], &kc[0][0][0][0], &vc[0][0][0][0],
                    &kn[0][0][0][0], NULL, lens, &out[0][0][0][0], B, N, C));
  int64_t full[B] = {7, 0};
  printf("overflow status=%d message: %s\n",
         dec_decode(&q[0][0][0][0], &kc[0][0][0][0], &vc[0][0][0][0],
                    &kn[0][0][0][0], &vn[0][0][0][0], full, &out[0][0][0][0], B,
                    N, C),
         dec_error_string(SQA_ERROR_INVALID_SIZE));
  return 0;
}
