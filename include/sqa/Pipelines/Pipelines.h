//===- Pipelines.h - SQA named pipelines ------------------------*- C++ -*-===//

#ifndef SQA_PIPELINES_PIPELINES_H
#define SQA_PIPELINES_PIPELINES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::sqa {

#define GEN_PASS_DECL
#include "sqa/Pipelines/Passes.h.inc"

/// Appends the CPU pipeline to `pm`, which must be anchored on builtin.module.
void buildCPUPipeline(OpPassManager &pm, const SQACPUPipelineOptions &options);

#define GEN_PASS_REGISTRATION
#include "sqa/Pipelines/Passes.h.inc"

} // namespace mlir::sqa

#endif // SQA_PIPELINES_PIPELINES_H
