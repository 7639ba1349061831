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

    Attention is currently lowered by `sqa-lower-attention-reference`.
  }];
  let options = [
    Option<"emitCInterface", "emit-c-interface", "bool", /*default=*/"true",
           "Emit `_mlir_ciface_` wrappers for every function (C-callable "
           "entry points taking memref descriptors)">,
    Option<"bufferAlignment", "buffer-alignment", "uint64_t",
           /*default=*/"64",
           "Alignment in bytes of buffers allocated by bufferization">
  ];
}

#endif // SQA_PIPELINES_PASSES_TD
