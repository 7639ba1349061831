//===- Pipelines.h - SQA named pipelines ------------------------*- C++ -*-===//

#ifndef SQA_PIPELINES_PIPELINES_H
#define SQA_PIPELINES_PIPELINES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <string>

namespace mlir::sqa {

#define GEN_PASS_DECL
#include "sqa/Pipelines/Passes.h.inc"

/// Checks every option against its valid set (include/sqa/Transforms/
/// OptionLimits.h). Returns "" if all are valid, else a message naming the
/// option and its value. The pipeline passes run it first; drivers that call
/// the builders directly should too.
std::string verifyCPUPipelineOptions(const SQACPUPipelineOptions &options);
std::string verifyCUDAPipelineOptions(const SQACUDAPipelineOptions &options);

/// Appends the CPU pipeline to `pm`, which must be anchored on builtin.module.
void buildCPUPipeline(OpPassManager &pm, const SQACPUPipelineOptions &options);

/// Appends the CUDA pipeline to `pm` (anchored on builtin.module): the
/// kernel stage then the binary stage below.
void buildCUDAPipeline(OpPassManager &pm,
                       const SQACUDAPipelineOptions &options);
/// Bufferization and `sqa-lower-attention-to-gpu`: the module then holds
/// `gpu.module @sqa_kernels` and host `gpu.launch_func`s.
void buildCUDAKernelPipeline(OpPassManager &pm,
                             const SQACUDAPipelineOptions &options);
/// NVVM target, kernel and host lowering, and serialization to `format`.
void buildCUDABinaryPipeline(OpPassManager &pm,
                             const SQACUDAPipelineOptions &options);

#define GEN_PASS_REGISTRATION
#include "sqa/Pipelines/Passes.h.inc"

} // namespace mlir::sqa

#endif // SQA_PIPELINES_PIPELINES_H
