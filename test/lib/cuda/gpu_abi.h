/* gpu_abi.h - the GPU kernel calling convention, as the C test doubles see it.
 *
 * Read from include/sqa/Transforms/GPUKernelABI.def (compile with
 * -I<repo>/include), so that the fake driver and the emulator runtime follow
 * the lowering's parameter list instead of restating it.
 */
#ifndef SQA_TEST_GPU_ABI_H
#define SQA_TEST_GPU_ABI_H

#include <stdint.h>

/* One buffer's memref descriptor, word by word. */
typedef struct {
#define SQA_GPU_MEMREF_WORD(name, c_type) c_type name;
#include "sqa/Transforms/GPUKernelABI.def"
} sqa_gpu_memref;

enum {
#define SQA_GPU_MEMREF_WORD(name, c_type) SQA_WORD_##name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_MEMREF_WORDS
};

enum {
#define SQA_GPU_BUFFER(Name, c_name) SQA_BUFFER_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_BUFFERS
};

enum {
#define SQA_GPU_SCALAR(Name, c_name) SQA_SCALAR_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_SCALARS
};

/* Kernel parameter words: the buffers' descriptors, then the scalars. */
enum { SQA_PARAMETER_WORDS = SQA_NUM_BUFFERS * SQA_MEMREF_WORDS + SQA_NUM_SCALARS };

/* The emulated kernel (--sqa-emulate-gpu-kernels): the kernel's parameters,
 * each buffer as a pointer to its descriptor, plus the shared memory. */
typedef void (*sqa_emulated_kernel)(
#define SQA_GPU_BUFFER(Name, c_name) sqa_gpu_memref *,
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_SCALAR(Name, c_name) int64_t,
#include "sqa/Transforms/GPUKernelABI.def"
    sqa_gpu_memref *shared);

/* gpu_emulator.c's entry: runs the grid (grid_x, grid_y) of blocks of
 * `threads` threads, one block at a time, with buffers[i] holding sizes[i]
 * elements and the scalars in ABI order. Returns 0 on success. */
typedef int (*sqa_emu_launch_fn)(sqa_emulated_kernel kernel, int64_t grid_x,
                                 int64_t grid_y, int64_t threads,
                                 int64_t shared_bytes, void *const *buffers,
                                 const int64_t *sizes, const int64_t *scalars);

/* The decode kernels' lists (one parameter block for all three). */
enum {
#define SQA_GPU_DECODE_BUFFER(Name, c_name) SQA_DECODE_BUFFER_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_DECODE_BUFFERS
};
enum {
#define SQA_GPU_DECODE_SCALAR(Name, c_name) SQA_DECODE_SCALAR_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_DECODE_SCALARS
};

/* An emulated decode kernel: GPUKernelABI.def's decode lists plus the
 * shared memory. */
typedef void (*sqa_emulated_decode_kernel)(
#define SQA_GPU_DECODE_BUFFER(Name, c_name) sqa_gpu_memref *,
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_DECODE_SCALAR(Name, c_name) int64_t,
#include "sqa/Transforms/GPUKernelABI.def"
    sqa_gpu_memref *shared);

/* gpu_emulator.c's entry for decode kernels, as sqa_emu_launch_fn with the
 * decode lists (an unused buffer may be NULL with size 0). */
typedef int (*sqa_emu_launch_decode_fn)(sqa_emulated_decode_kernel kernel,
                                        int64_t grid_x, int64_t grid_y,
                                        int64_t threads, int64_t shared_bytes,
                                        void *const *buffers,
                                        const int64_t *sizes,
                                        const int64_t *scalars);

/* The training kernels' lists (forward with lse, dK/dV, dQ). */
enum {
#define SQA_GPU_TRAINING_BUFFER(Name, c_name) SQA_TRAINING_BUFFER_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_TRAINING_BUFFERS
};
enum {
#define SQA_GPU_TRAINING_SCALAR(Name, c_name) SQA_TRAINING_SCALAR_##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  SQA_NUM_TRAINING_SCALARS
};

/* An emulated training kernel: GPUKernelABI.def's training lists plus the
 * shared memory. */
typedef void (*sqa_emulated_training_kernel)(
#define SQA_GPU_TRAINING_BUFFER(Name, c_name) sqa_gpu_memref *,
#include "sqa/Transforms/GPUKernelABI.def"
#define SQA_GPU_TRAINING_SCALAR(Name, c_name) int64_t,
#include "sqa/Transforms/GPUKernelABI.def"
    sqa_gpu_memref *shared);

/* gpu_emulator.c's entry for training kernels, as sqa_emu_launch_fn with
 * the training lists (an unused buffer may be NULL with size 0). */
typedef int (*sqa_emu_launch_training_fn)(sqa_emulated_training_kernel kernel,
                                          int64_t grid_x, int64_t grid_y,
                                          int64_t threads, int64_t shared_bytes,
                                          void *const *buffers,
                                          const int64_t *sizes,
                                          const int64_t *scalars);

#endif /* SQA_TEST_GPU_ABI_H */
