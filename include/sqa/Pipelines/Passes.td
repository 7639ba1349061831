//===- Passes.td - SQA named pipelines ---------------------*- tablegen -*-===//
//
// Pipelines are passes with options (the tpp-mlir PassBundles pattern), so
// that `--sqa-cpu-pipeline{...}` parses like any pass and the options live in
// TableGen. Each runs a nested pass manager built by a public C++ builder
// that the AOT driver reuses.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_PIPELINES_PASSES_TD
#define SQA_PIPELINES_PASSES_TD

include "mlir/Pass/PassBase.td"

def SQACPUPipeline : Pass<"sqa-cpu-pipeline", "::mlir::ModuleOp"> {
  let summary = "Lower a module using sqa ops to the LLVM dialect for the host";
  let description = [{
    The one entry point from `sqa` (and func/arith/tensor/linalg) to the LLVM
    dialect on the CPU: attention lowering, one-shot bufferization across
    function boundaries (identity layouts, so the C interface sees plain
    strided memrefs), buffer deallocation, loops, and conversion to LLVM.
    The result runs under `mlir-runner` and the ExecutionEngine, or goes
    through `mlir-translate --mlir-to-llvmir` into an object file.

    Attention (`attention-kernel=flash`, the default) is tiled over batch,
    head groups and query blocks (`sqa-tile-attention`), the tiles run in
    parallel on OpenMP threads (`scf.forall` -> `scf.parallel` ->
    `convert-scf-to-openmp`; the thread count comes from OMP_NUM_THREADS),
    and each tile becomes FlashAttention-2 vector loops
    (`sqa-lower-flash-attention`). `attention-kernel=reference` uses the
    naive `sqa-lower-attention-reference` instead (single-threaded, S x T
    memory): the oracle for tests and benchmarks. Code that uses the flash
    kernel needs the OpenMP runtime (libomp) at run time.
  }];
  let options = [
    Option<"emitCInterface", "emit-c-interface", "bool", /*default=*/"true",
           "Emit `_mlir_ciface_` wrappers for every function (C-callable "
           "entry points taking memref descriptors)">,
    Option<"bufferAlignment", "buffer-alignment", "uint64_t",
           /*default=*/"64",
           "Alignment in bytes of buffers allocated by bufferization">,
    Option<"attentionKernel", "attention-kernel", "std::string",
           /*default=*/"\"flash\"",
           "How to lower sqa.attention: flash (tiled, vectorized, "
           "multi-threaded) or reference (naive, the oracle)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector: 8 for AVX2, 16 for AVX-512">,
    // 128 rows: at S = T = 16384, D = 128 a 64-row tile re-streams each
    // head's 16 MiB of packed K/V from beyond the L3 twice as often and ran
    // 12% below S = 4096; 128 is as fast at 4096 and within 5% at 16384.
    Option<"queryTile", "query-tile", "int64_t", /*default=*/"128",
           "Query rows per parallel tile of the forward">,
    // The backward keeps 64: its per-tile dK/dV partials and packed blocks
    // made 128-row blocks 12-14% slower (D = 64 and 128, S = 4096).
    Option<"backwardQueryBlock", "backward-query-block", "int64_t",
           /*default=*/"64", "Query rows per block of the CPU backward">,
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per block of the online softmax">,
    Option<"rowsPerKernel", "mr", "int64_t", /*default=*/"4",
           "Keys / value columns per flash micro-kernel">,
    Option<"vectorsPerKernel", "nr", "int64_t", /*default=*/"2",
           "Vectors of query rows per flash micro-kernel">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "bf16 attention: Q.K^T and P.V with AVX-512 BF16 vdpbf16ps "
           "(needs vector-width 16; sqa-aot sets it for CPUs with "
           "avx512bf16)">
  ];
}

def SQACUDAPipeline : Pass<"sqa-cuda-pipeline", "::mlir::ModuleOp"> {
  let summary = "Lower a module using sqa.attention to CUDA kernels (cubin) "
                "and LLVM host code";
  let description = [{
    Bufferizes (as the CPU pipeline does), lowers every `sqa.attention` to
    a FlashAttention-2 kernel and its `gpu.launch_func`
    (`sqa-lower-attention-to-gpu`: tensor cores through `nvgpu` for f16
    and bf16, a SIMT kernel for f32), attaches an NVVM target, lowers the
    kernels with `convert-nvgpu-to-nvvm` and `convert-gpu-to-nvvm`, the host
    code with `gpu-to-llvm`, and serializes the kernels with
    `gpu-module-to-binary` (`format=isa` gives PTX without a CUDA toolkit;
    `bin` and `fatbin` run ptxas from `toolkit`).

    The host code calls the `mgpu*` runtime functions of upstream's
    CUDA runtime wrappers; `sqa-aot --target cuda` instead embeds the
    kernel in a library with its own launcher over the CUDA driver API.
    Tensor-core kernels need sm_80 or later.
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90\"",
           "Target GPU architecture (sm_80 or later)">,
    Option<"features", "features", "std::string", /*default=*/"\"+ptx80\"",
           "PTX features; sm_90 needs +ptx78 or later">,
    Option<"optLevel", "opt-level", "unsigned", /*default=*/"3",
           "Optimization level of the NVPTX backend and ptxas">,
    Option<"format", "format", "std::string", /*default=*/"\"bin\"",
           "Serialization: isa (PTX), bin (cubin) or fatbin">,
    Option<"toolkit", "toolkit", "std::string", /*default=*/"\"\"",
           "CUDA toolkit path for ptxas (default: PATH, then /usr/local/cuda)">,
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per shared-memory tile">,
    Option<"headsPerBlock", "heads-per-block", "int64_t", /*default=*/"0",
           "Output heads per thread block (0: largest of 4, 2, 1 that "
           "divides the heads per key/value head)">,
    Option<"rowsPerWarp", "rows-per-warp", "int64_t", /*default=*/"16",
           "Query rows per warp on tensor cores (16 or 32)">,
    Option<"backwardTensorCores", "backward-tensor-cores", "bool",
           /*default=*/"true",
           "mma.sync backward kernels for f16/bf16 where the head dims allow">
  ];
}

#endif // SQA_PIPELINES_PASSES_TD
