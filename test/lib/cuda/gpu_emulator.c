/* gpu_emulator.c - runs kernels from `sqa-opt --sqa-emulate-gpu-kernels` on
 * the CPU, one pthread per GPU thread, for machines without a GPU.
 *
 * The warp-collective operations are implemented from the PTX ISA's
 * definitions, independently of the kernel generator:
 *  - ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8m..8m+7 give
 *    the row addresses of matrix m; without .trans lane l receives row l/4,
 *    elements 2(l%4) and 2(l%4)+1 of each matrix; with .trans it receives
 *    rows 2(l%4) and 2(l%4)+1 of column l/4.
 *  - mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: with g = l/4 and
 *    t = l%4, A registers a0..a3 hold A[g][2t..], A[g+8][2t..],
 *    A[g][2t+8..], A[g+8][2t+8..]; B registers b0, b1 hold B[2t..][g],
 *    B[2t+8..][g]; C/D hold [g][2t], [g][2t+1], [g+8][2t], [g+8][2t+1].
 *  - shfl.sync.bfly: lane l reads lane l ^ offset.
 * Each collective publishes the lane's inputs, waits for the warp, computes
 * the lane's outputs and waits again.
 */
#include "gpu_abi.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS_PER_BLOCK 128
#define WARPS (THREADS_PER_BLOCK / 32)

typedef sqa_gpu_memref memref1;

typedef struct {
  pthread_barrier_t barrier;
  uint64_t slots[32][16];
} warp_state;

static warp_state warps[WARPS];
static pthread_barrier_t block_barrier;

static __thread int64_t thread_id;
static __thread int64_t block_id[3];
static int64_t grid_dim[3];
static __thread int32_t result_i32[4];
static __thread float result_f32[4];

int64_t sqa_emu_thread_id(void) { return thread_id; }
int64_t sqa_emu_block_id(int32_t dim) { return block_id[dim]; }
int64_t sqa_emu_grid_dim(int32_t dim) { return grid_dim[dim]; }
void sqa_emu_barrier(void) { pthread_barrier_wait(&block_barrier); }

static warp_state *my_warp(void) { return &warps[thread_id / 32]; }
static int my_lane(void) { return (int)(thread_id % 32); }
static void warp_sync(void) { pthread_barrier_wait(&my_warp()->barrier); }

void sqa_emu_copy(int64_t dst, int64_t src, int64_t src_bytes,
                  int64_t dst_bytes) {
  memcpy((void *)dst, (const void *)src, (size_t)src_bytes);
  memset((char *)dst + src_bytes, 0, (size_t)(dst_bytes - src_bytes));
}

float sqa_emu_shfl_xor_f32(float value, int32_t offset) {
  warp_state *w = my_warp();
  int lane = my_lane();
  uint32_t bits;
  memcpy(&bits, &value, 4);
  w->slots[lane][0] = bits;
  warp_sync();
  uint32_t other = (uint32_t)w->slots[lane ^ offset][0];
  warp_sync();
  float result;
  memcpy(&result, &other, 4);
  return result;
}

void sqa_emu_ldmatrix_x4(int64_t row_address, int32_t transpose) {
  warp_state *w = my_warp();
  int lane = my_lane();
  w->slots[lane][0] = (uint64_t)row_address;
  warp_sync();
  for (int m = 0; m < 4; ++m) {
    uint16_t e[2];
    for (int i = 0; i < 2; ++i) {
      const uint16_t *p;
      if (!transpose)
        p = (const uint16_t *)w->slots[8 * m + lane / 4][0] + 2 * (lane % 4) + i;
      else
        p = (const uint16_t *)w->slots[8 * m + 2 * (lane % 4) + i][0] + lane / 4;
      e[i] = *p;
    }
    result_i32[m] = (int32_t)((uint32_t)e[0] | ((uint32_t)e[1] << 16));
  }
  warp_sync();
}

static float half_to_float(uint16_t h, int bf16) {
  if (bf16) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  _Float16 x;
  memcpy(&x, &h, 2);
  return (float)x;
}

void sqa_emu_mma_m16n8k16(int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                          int32_t b0, int32_t b1, float c0, float c1, float c2,
                          float c3, int32_t bf16) {
  warp_state *w = my_warp();
  int lane = my_lane();
  uint64_t *s = w->slots[lane];
  s[0] = (uint32_t)a0; s[1] = (uint32_t)a1; s[2] = (uint32_t)a2;
  s[3] = (uint32_t)a3; s[4] = (uint32_t)b0; s[5] = (uint32_t)b1;
  float c[4] = {c0, c1, c2, c3};
  for (int i = 0; i < 4; ++i) {
    uint32_t bits;
    memcpy(&bits, &c[i], 4);
    s[6 + i] = bits;
  }
  warp_sync();
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    int g = l / 4, t = l % 4;
    const uint64_t *r = w->slots[l];
    for (int e = 0; e < 2; ++e) {
      int sh = 16 * e;
      A[g][2 * t + e] = half_to_float((uint16_t)(r[0] >> sh), bf16);
      A[g + 8][2 * t + e] = half_to_float((uint16_t)(r[1] >> sh), bf16);
      A[g][2 * t + 8 + e] = half_to_float((uint16_t)(r[2] >> sh), bf16);
      A[g + 8][2 * t + 8 + e] = half_to_float((uint16_t)(r[3] >> sh), bf16);
      B[2 * t + e][g] = half_to_float((uint16_t)(r[4] >> sh), bf16);
      B[2 * t + 8 + e][g] = half_to_float((uint16_t)(r[5] >> sh), bf16);
    }
    for (int i = 0; i < 4; ++i) {
      uint32_t bits = (uint32_t)r[6 + i];
      float f;
      memcpy(&f, &bits, 4);
      C[g + 8 * (i / 2)][2 * t + (i % 2)] = f;
    }
  }
  int g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) {
    int row = g + 8 * (i / 2), col = 2 * t + (i % 2);
    float sum = C[row][col];
    for (int k = 0; k < 16; ++k)
      sum += A[row][k] * B[k][col];
    result_f32[i] = sum;
  }
  warp_sync();
}

int32_t sqa_emu_result_i32(int32_t i) { return result_i32[i]; }
float sqa_emu_result_f32(int32_t i) { return result_f32[i]; }

typedef struct {
  sqa_emulated_kernel kernel;
  int64_t tid, bx, by;
  memref1 *operands;
  const int64_t *scalars;
  memref1 *shared;
  /* A decode kernel (GPUKernelABI.def's decode lists) instead of kernel. */
  sqa_emulated_decode_kernel decode;
  /* A training kernel (the training lists) instead of kernel. */
  sqa_emulated_training_kernel training;
} thread_args;

static void *run_thread(void *p) {
  thread_args *a = p;
  thread_id = a->tid;
  block_id[0] = a->bx;
  block_id[1] = a->by;
  block_id[2] = 0;
  const int64_t *s = a->scalars;
  if (a->training) {
    a->training(
#define SQA_GPU_TRAINING_BUFFER(Name, c_name)                                  \
  &a->operands[SQA_TRAINING_BUFFER_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_TRAINING_SCALAR(Name, c_name) s[SQA_TRAINING_SCALAR_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
        a->shared);
    return 0;
  }
  if (a->decode) {
    a->decode(
#define SQA_GPU_DECODE_BUFFER(Name, c_name)                                    \
  &a->operands[SQA_DECODE_BUFFER_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_DECODE_SCALAR(Name, c_name) s[SQA_DECODE_SCALAR_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
        a->shared);
    return 0;
  }
  a->kernel(
#define SQA_GPU_BUFFER(Name, c_name) &a->operands[SQA_BUFFER_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_SCALAR(Name, c_name) s[SQA_SCALAR_##Name],
#include "sqa/Transforms/GPUKernelABI.def"
      a->shared);
  return 0;
}

/* Runs the grid: one block at a time, a pthread per GPU thread, of
 * `kernel` or `decode`. */
static int run_grid(sqa_emulated_kernel kernel,
                    sqa_emulated_decode_kernel decode,
                    sqa_emulated_training_kernel training, int64_t grid_x,
                    int64_t grid_y, int64_t threads, int64_t shared_bytes,
                    memref1 *operands, const int64_t *scalars) {
  if (threads != THREADS_PER_BLOCK) {
    fprintf(stderr,
            "gpu_emulator: blocks of %lld threads; the emulator runs %d\n",
            (long long)threads, THREADS_PER_BLOCK);
    return 1;
  }
  size_t shared_size = (size_t)((shared_bytes + 127) / 128 * 128);
  void *shared = aligned_alloc(128, shared_size ? shared_size : 128);
  if (!shared)
    return 1;
  memref1 shared_ref = {shared, shared, 0, shared_bytes, 1};
  grid_dim[0] = grid_x;
  grid_dim[1] = grid_y;
  grid_dim[2] = 1;
  pthread_barrier_init(&block_barrier, 0, THREADS_PER_BLOCK);
  for (int w = 0; w < WARPS; ++w)
    pthread_barrier_init(&warps[w].barrier, 0, 32);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  int status = 0;
  for (int64_t by = 0; by < grid_y && !status; ++by)
    for (int64_t bx = 0; bx < grid_x && !status; ++bx) {
      /* Uninitialized shared memory on a GPU holds anything. */
      memset(shared, 0xA5, (size_t)shared_bytes);
      pthread_t threads[THREADS_PER_BLOCK];
      thread_args args[THREADS_PER_BLOCK];
      for (int t = 0; t < THREADS_PER_BLOCK; ++t) {
        args[t] = (thread_args){kernel,  t,           bx,     by,      operands,
                                scalars, &shared_ref, decode, training};
        if (pthread_create(&threads[t], &attr, run_thread, &args[t])) {
          fprintf(stderr, "gpu_emulator: pthread_create failed\n");
          exit(2); /* Threads already started wait on barriers forever. */
        }
      }
      for (int t = 0; t < THREADS_PER_BLOCK; ++t)
        pthread_join(threads[t], 0);
    }
  pthread_attr_destroy(&attr);
  for (int w = 0; w < WARPS; ++w)
    pthread_barrier_destroy(&warps[w].barrier);
  pthread_barrier_destroy(&block_barrier);
  free(shared);
  return status;
}

/* Flat descriptors of `n` buffers of sizes[i] elements. */
static void describe(memref1 *operands, int n, void *const *buffers,
                     const int64_t *sizes) {
  for (int i = 0; i < n; ++i) {
    operands[i].allocated = operands[i].aligned = buffers[i];
    operands[i].offset = 0;
    operands[i].size = sizes[i];
    operands[i].stride = 1;
  }
}

/* See sqa_emu_launch_fn in gpu_abi.h. */
int sqa_emu_launch(sqa_emulated_kernel kernel, int64_t grid_x, int64_t grid_y,
                   int64_t threads, int64_t shared_bytes, void *const *buffers,
                   const int64_t *sizes, const int64_t *scalars) {
  memref1 operands[SQA_NUM_BUFFERS];
  describe(operands, SQA_NUM_BUFFERS, buffers, sizes);
  return run_grid(kernel, 0, 0, grid_x, grid_y, threads, shared_bytes, operands,
                  scalars);
}

/* See sqa_emu_launch_decode_fn in gpu_abi.h. */
int sqa_emu_launch_decode(sqa_emulated_decode_kernel kernel, int64_t grid_x,
                          int64_t grid_y, int64_t threads, int64_t shared_bytes,
                          void *const *buffers, const int64_t *sizes,
                          const int64_t *scalars) {
  memref1 operands[SQA_NUM_DECODE_BUFFERS];
  describe(operands, SQA_NUM_DECODE_BUFFERS, buffers, sizes);
  return run_grid(0, kernel, 0, grid_x, grid_y, threads, shared_bytes, operands,
                  scalars);
}

/* See sqa_emu_launch_training_fn in gpu_abi.h. */
int sqa_emu_launch_training(sqa_emulated_training_kernel kernel, int64_t grid_x,
                            int64_t grid_y, int64_t threads,
                            int64_t shared_bytes, void *const *buffers,
                            const int64_t *sizes, const int64_t *scalars) {
  memref1 operands[SQA_NUM_TRAINING_BUFFERS];
  describe(operands, SQA_NUM_TRAINING_BUFFERS, buffers, sizes);
  return run_grid(0, 0, kernel, grid_x, grid_y, threads, shared_bytes, operands,
                  scalars);
}
