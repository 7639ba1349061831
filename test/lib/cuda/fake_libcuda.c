/* fake_libcuda.c - a stand-in libcuda.so.1 that runs sqa kernels on the CPU.
 *
 * For machines without a GPU: built as libcuda.so.1 and found through
 * LD_LIBRARY_PATH, it lets an `sqa-aot --target cuda` library and the Python
 * tools (cuda_driver.py, check_cuda.py) run unchanged. "Device" memory is
 * host memory; cuModuleLoadData only checks for an ELF cubin; cuLaunchKernel
 * runs the kernel of the same name from the emulated kernel library named by
 * $SQA_FAKE_CUDA_KERNELS (sqa-opt --sqa-emulate-gpu-kernels + gpu_emulator.c,
 * see check_gpu_emulated.py), synchronously. It checks what a real driver
 * would reject: dynamic shared memory above 48 KiB without
 * cuFuncSetAttribute, and the kernel's parameter layout, which it reads from
 * GPUKernelABI.def (build with -I<repo>/include); the emulator checks the
 * block size. The device reports itself as sm_90.
 */
#include "gpu_abi.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
enum {
  OK = 0,
  INVALID_VALUE = 1,
  OUT_OF_MEMORY = 2,
  NOT_INITIALIZED = 3,
  INVALID_IMAGE = 200,
  NOT_FOUND = 500,
  LAUNCH_FAILED = 719,
  INVALID_HANDLE = 400
};

struct fake_function {
  void *kernel;
  int max_dynamic_shared;
  /* A decode kernel (its name says so): GPUKernelABI.def's decode lists. */
  int decode;
  /* A training kernel (forward with lse, dK/dV, dQ): the training lists. */
  int training;
};

static int initialized;
static int context_token;
static __thread void *current_context;
static void *kernels;
static sqa_emu_launch_fn launch;
static sqa_emu_launch_decode_fn launch_decode;
static sqa_emu_launch_training_fn launch_training;

static const char *error_name(CUresult r) {
  switch (r) {
  case OK: return "CUDA_SUCCESS";
  case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
  case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
  case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
  case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
  case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
  case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
  case LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
  default: return "CUDA_ERROR_UNKNOWN";
  }
}

CUresult cuGetErrorName(CUresult r, const char **s) { *s = error_name(r); return OK; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = error_name(r); return OK; }
CUresult cuInit(unsigned flags) { (void)flags; initialized = 1; return OK; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) {
  if (!initialized) return NOT_INITIALIZED;
  *n = 1;
  return OK;
}
CUresult cuDeviceGet(int *d, int ordinal) {
  if (ordinal != 0) return INVALID_VALUE;
  *d = 0;
  return OK;
}
CUresult cuDeviceGetName(char *name, int len, int d) {
  (void)d;
  snprintf(name, (size_t)len, "sqa fake CUDA device (CPU emulator)");
  return OK;
}
CUresult cuDeviceGetAttribute(int *value, int attribute, int d) {
  (void)d;
  switch (attribute) {
  case 75: *value = 9; return OK;          /* compute capability major */
  case 76: *value = 0; return OK;          /* minor */
  case 97: *value = 227 * 1024; return OK; /* max shared memory per block opt-in */
  case 16: *value = 1; return OK;          /* multiprocessor count */
  default: *value = 0; return OK;
  }
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int d) { (void)d; *bytes = (size_t)1 << 32; return OK; }
CUresult cuDeviceTotalMem(size_t *bytes, int d) { return cuDeviceTotalMem_v2(bytes, d); }
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  *free_bytes = *total = (size_t)1 << 32;
  return OK;
}
CUresult cuMemGetInfo(size_t *f, size_t *t) { return cuMemGetInfo_v2(f, t); }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { (void)d; *ctx = &context_token; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return OK; }
CUresult cuDevicePrimaryCtxRelease(int d) { (void)d; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { current_context = ctx; return OK; }
CUresult cuCtxGetCurrent(void **ctx) { *ctx = current_context; return OK; }
CUresult cuCtxGetDevice(int *d) {
  if (!current_context) return INVALID_VALUE;
  *d = 0;
  return OK;
}
CUresult cuCtxSynchronize(void) { return OK; }

CUresult cuMemAlloc_v2(uint64_t *ptr, size_t bytes) {
  void *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) return OUT_OF_MEMORY;
  *ptr = (uint64_t)(uintptr_t)p;
  return OK;
}
CUresult cuMemAlloc(uint64_t *ptr, size_t bytes) { return cuMemAlloc_v2(ptr, bytes); }
/* Stream-ordered allocation: work runs synchronously, so it is immediate. */
CUresult cuMemAllocAsync(uint64_t *ptr, size_t bytes, void *stream) {
  (void)stream;
  return cuMemAlloc_v2(ptr, bytes);
}
CUresult cuMemFreeAsync(uint64_t ptr, void *stream) {
  (void)stream;
  free((void *)(uintptr_t)ptr);
  return OK;
}
CUresult cuMemFree_v2(uint64_t ptr) { free((void *)(uintptr_t)ptr); return OK; }
CUresult cuMemFree(uint64_t ptr) { return cuMemFree_v2(ptr); }
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n) {
  memcpy((void *)(uintptr_t)dst, src, n);
  return OK;
}
CUresult cuMemcpyHtoD(uint64_t d, const void *s, size_t n) { return cuMemcpyHtoD_v2(d, s, n); }
CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n) {
  memcpy(dst, (const void *)(uintptr_t)src, n);
  return OK;
}
CUresult cuMemcpyDtoH(void *d, uint64_t s, size_t n) { return cuMemcpyDtoH_v2(d, s, n); }
CUresult cuMemsetD8_v2(uint64_t dst, unsigned char value, size_t n) {
  memset((void *)(uintptr_t)dst, value, n);
  return OK;
}
CUresult cuMemsetD8(uint64_t d, unsigned char v, size_t n) { return cuMemsetD8_v2(d, v, n); }

/* Streams and events: work runs synchronously at launch. */
static int stream_token;
CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = &stream_token; return OK; }
CUresult cuStreamSynchronize(void *s) { (void)s; return OK; }
CUresult cuStreamDestroy_v2(void *s) { (void)s; return OK; }
CUresult cuStreamDestroy(void *s) { (void)s; return OK; }
CUresult cuEventCreate(void **e, unsigned flags) {
  (void)flags;
  *e = calloc(1, sizeof(double));
  return *e ? OK : OUT_OF_MEMORY;
}
CUresult cuEventRecord(void *e, void *s) {
  (void)s;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  *(double *)e = t.tv_sec * 1e3 + t.tv_nsec / 1e6;
  return OK;
}
CUresult cuEventSynchronize(void *e) { (void)e; return OK; }
CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
  *ms = (float)(*(double *)end - *(double *)start);
  return OK;
}
CUresult cuEventDestroy_v2(void *e) { free(e); return OK; }
CUresult cuEventDestroy(void *e) { free(e); return OK; }

CUresult cuModuleLoadData(void **module, const void *image) {
  if (!current_context) return INVALID_VALUE;
  if (memcmp(image, "\177ELF", 4) != 0) {
    fprintf(stderr, "fake libcuda: the module image is not an ELF cubin\n");
    return INVALID_IMAGE;
  }
  if (!kernels) {
    const char *path = getenv("SQA_FAKE_CUDA_KERNELS");
    if (!path || !(kernels = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
      fprintf(stderr, "fake libcuda: cannot load $SQA_FAKE_CUDA_KERNELS (%s)\n",
              path ? dlerror() : "unset");
      return INVALID_IMAGE;
    }
    launch = (sqa_emu_launch_fn)dlsym(kernels, "sqa_emu_launch");
    launch_decode =
        (sqa_emu_launch_decode_fn)dlsym(kernels, "sqa_emu_launch_decode");
    launch_training =
        (sqa_emu_launch_training_fn)dlsym(kernels, "sqa_emu_launch_training");
    if (!launch || !launch_decode || !launch_training)
      return INVALID_IMAGE;
  }
  *module = kernels;
  return OK;
}

CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
  char symbol[512];
  snprintf(symbol, sizeof symbol, "_mlir_ciface_%s", name);
  void *kernel = dlsym(module, symbol);
  if (!kernel) return NOT_FOUND;
  struct fake_function *f = calloc(1, sizeof *f);
  f->kernel = kernel;
  f->max_dynamic_shared = 48 * 1024;
  f->decode = strstr(name, "_decode_kernel_") != 0 ||
              strstr(name, "_decode_append_kernel_") != 0;
  f->training = strstr(name, "_kernel_lse_") != 0 ||
                strstr(name, "_kernel_backward_") != 0;
  *function = f;
  return OK;
}

CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  struct fake_function *f = function;
  if (attribute == 8) { /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    if (value > 227 * 1024) return INVALID_VALUE;
    f->max_dynamic_shared = value;
  }
  return OK;
}

CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                        unsigned bx, unsigned by, unsigned bz, unsigned shared,
                        void *stream, void **params, void **extra) {
  (void)stream;
  struct fake_function *f = function;
  if (!f || !params || extra) return INVALID_VALUE;
  if (by != 1 || bz != 1 || gz != 1 || gx == 0 || gy == 0 || gy > 65535) {
    fprintf(stderr, "fake libcuda: unexpected launch geometry (%u,%u,%u) x (%u,%u,%u)\n",
            gx, gy, gz, bx, by, bz);
    return INVALID_VALUE;
  }
  if ((int)shared > f->max_dynamic_shared) {
    fprintf(stderr, "fake libcuda: %u bytes of dynamic shared memory without "
            "cuFuncSetAttribute (limit %d)\n", shared, f->max_dynamic_shared);
    return INVALID_VALUE;
  }
  if (f->decode) {
    void *buffers[SQA_NUM_DECODE_BUFFERS];
    int64_t sizes[SQA_NUM_DECODE_BUFFERS], scalars[SQA_NUM_DECODE_SCALARS];
    for (int i = 0; i < SQA_NUM_DECODE_BUFFERS; ++i) {
      void **words = params + i * SQA_MEMREF_WORDS;
      sqa_gpu_memref m;
#define SQA_GPU_MEMREF_WORD(name, c_type)                                      \
  m.name = *(c_type *)words[SQA_WORD_##name];
#include "sqa/Transforms/GPUKernelABI.def"
      /* k_new and v_new are NULL without an append. */
      if (m.offset != 0 || m.stride != 1 || m.size < 0 ||
          (!m.aligned) != (m.size == 0)) {
        fprintf(stderr, "fake libcuda: bad decode memref parameter %d\n", i);
        return INVALID_VALUE;
      }
      buffers[i] = m.aligned;
      sizes[i] = m.size;
    }
    for (int i = 0; i < SQA_NUM_DECODE_SCALARS; ++i)
      scalars[i] =
          *(int64_t *)params[SQA_NUM_DECODE_BUFFERS * SQA_MEMREF_WORDS + i];
    return launch_decode((sqa_emulated_decode_kernel)f->kernel, gx, gy, bx,
                         shared, buffers, sizes, scalars)
               ? LAUNCH_FAILED
               : OK;
  }
  if (f->training) {
    void *buffers[SQA_NUM_TRAINING_BUFFERS];
    int64_t sizes[SQA_NUM_TRAINING_BUFFERS], scalars[SQA_NUM_TRAINING_SCALARS];
    for (int i = 0; i < SQA_NUM_TRAINING_BUFFERS; ++i) {
      void **words = params + i * SQA_MEMREF_WORDS;
      sqa_gpu_memref m;
#define SQA_GPU_MEMREF_WORD(name, c_type)                                      \
  m.name = *(c_type *)words[SQA_WORD_##name];
#include "sqa/Transforms/GPUKernelABI.def"
      /* The forward with lse leaves the backward's buffers NULL. */
      if (m.offset != 0 || m.stride != 1 || m.size < 0 ||
          (!m.aligned) != (m.size == 0)) {
        fprintf(stderr, "fake libcuda: bad training memref parameter %d\n", i);
        return INVALID_VALUE;
      }
      buffers[i] = m.aligned;
      sizes[i] = m.size;
    }
    for (int i = 0; i < SQA_NUM_TRAINING_SCALARS; ++i)
      scalars[i] =
          *(int64_t *)params[SQA_NUM_TRAINING_BUFFERS * SQA_MEMREF_WORDS + i];
    return launch_training((sqa_emulated_training_kernel)f->kernel, gx, gy, bx,
                           shared, buffers, sizes, scalars)
               ? LAUNCH_FAILED
               : OK;
  }
  /* params[i] points to parameter word i (GPUKernelABI.def's order). */
  void *buffers[SQA_NUM_BUFFERS];
  int64_t sizes[SQA_NUM_BUFFERS], scalars[SQA_NUM_SCALARS];
  for (int i = 0; i < SQA_NUM_BUFFERS; ++i) {
    void **words = params + i * SQA_MEMREF_WORDS;
    sqa_gpu_memref m;
#define SQA_GPU_MEMREF_WORD(name, c_type) m.name = *(c_type *)words[SQA_WORD_##name];
#include "sqa/Transforms/GPUKernelABI.def"
    if (m.offset != 0 || m.stride != 1 || m.size <= 0 || !m.aligned) {
      fprintf(stderr, "fake libcuda: bad memref parameter %d\n", i);
      return INVALID_VALUE;
    }
    buffers[i] = m.aligned;
    sizes[i] = m.size;
  }
  for (int i = 0; i < SQA_NUM_SCALARS; ++i)
    scalars[i] = *(int64_t *)params[SQA_NUM_BUFFERS * SQA_MEMREF_WORDS + i];
  return launch((sqa_emulated_kernel)f->kernel, gx, gy, bx, shared, buffers,
                sizes, scalars)
             ? LAUNCH_FAILED
             : OK;
}
