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

/* Which of GPUKernelABI.def's lists a kernel takes (its name says so). */
enum kernel_kind {
  FORWARD_KERNEL,
  DECODE_KERNEL,  /* append, split, merge */
  TRAINING_KERNEL /* forward with lse, dK/dV, dQ */
};

struct fake_function {
  void *kernel;
  int max_dynamic_shared;
  enum kernel_kind kind;
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
  if (strstr(name, "_decode_kernel_") || strstr(name, "_decode_append_kernel_"))
    f->kind = DECODE_KERNEL;
  else if (strstr(name, "_kernel_lse_") || strstr(name, "_kernel_backward_"))
    f->kind = TRAINING_KERNEL;
  else
    f->kind = FORWARD_KERNEL;
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

/* Reads a launch's parameters (params[i] points to parameter word i, in
 * GPUKernelABI.def's order: each buffer's memref words, then the scalars)
 * into buffers, sizes and scalars; 0 (after a message) for a malformed
 * memref. The forward's buffers are never empty; a decode or training buffer
 * may be NULL with size 0 (k_new and v_new without an append, the backward's
 * buffers in the forward with lse). */
static int read_parameters(void **params, int num_buffers, int num_scalars,
                           int may_be_empty, const char *kind, void **buffers,
                           int64_t *sizes, int64_t *scalars) {
  for (int i = 0; i < num_buffers; ++i) {
    void **words = params + i * SQA_MEMREF_WORDS;
    sqa_gpu_memref m;
#define SQA_GPU_MEMREF_WORD(name, c_type)                                      \
  m.name = *(c_type *)words[SQA_WORD_##name];
#include "sqa/Transforms/GPUKernelABI.def"
    int present =
        may_be_empty ? (!m.aligned) == (m.size == 0) : m.size > 0 && m.aligned;
    if (m.offset != 0 || m.stride != 1 || m.size < 0 || !present) {
      fprintf(stderr, "fake libcuda: bad %smemref parameter %d\n", kind, i);
      return 0;
    }
    buffers[i] = m.aligned;
    sizes[i] = m.size;
  }
  for (int i = 0; i < num_scalars; ++i)
    scalars[i] = *(int64_t *)params[num_buffers * SQA_MEMREF_WORDS + i];
  return 1;
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
  enum { MAX_BUFFERS = 16, MAX_SCALARS = 64 };
  _Static_assert(SQA_NUM_BUFFERS <= MAX_BUFFERS &&
                     SQA_NUM_DECODE_BUFFERS <= MAX_BUFFERS &&
                     SQA_NUM_TRAINING_BUFFERS <= MAX_BUFFERS,
                 "raise MAX_BUFFERS");
  _Static_assert(SQA_NUM_SCALARS <= MAX_SCALARS &&
                     SQA_NUM_DECODE_SCALARS <= MAX_SCALARS &&
                     SQA_NUM_TRAINING_SCALARS <= MAX_SCALARS,
                 "raise MAX_SCALARS");
  void *buffers[MAX_BUFFERS];
  int64_t sizes[MAX_BUFFERS], scalars[MAX_SCALARS];
  int failed;
  switch (f->kind) {
  case DECODE_KERNEL:
    if (!read_parameters(params, SQA_NUM_DECODE_BUFFERS, SQA_NUM_DECODE_SCALARS,
                         1, "decode ", buffers, sizes, scalars))
      return INVALID_VALUE;
    failed = launch_decode((sqa_emulated_decode_kernel)f->kernel, gx, gy, bx,
                           shared, buffers, sizes, scalars);
    break;
  case TRAINING_KERNEL:
    if (!read_parameters(params, SQA_NUM_TRAINING_BUFFERS,
                         SQA_NUM_TRAINING_SCALARS, 1, "training ", buffers,
                         sizes, scalars))
      return INVALID_VALUE;
    failed = launch_training((sqa_emulated_training_kernel)f->kernel, gx, gy,
                             bx, shared, buffers, sizes, scalars);
    break;
  default:
    if (!read_parameters(params, SQA_NUM_BUFFERS, SQA_NUM_SCALARS, 0, "",
                         buffers, sizes, scalars))
      return INVALID_VALUE;
    failed = launch((sqa_emulated_kernel)f->kernel, gx, gy, bx, shared, buffers,
                    sizes, scalars);
    break;
  }
  return failed ? LAUNCH_FAILED : OK;
}
