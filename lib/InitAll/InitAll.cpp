//===- InitAll.cpp - Register sqa-mlir's dialects and passes --------------===//

#include "sqa/InitAll.h"

#include "SQA/IR/SQADialect.h"
#include "sqa/Pipelines/Pipelines.h"
#include "sqa/Transforms/BufferizableOpInterfaceImpl.h"
#include "sqa/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

void mlir::sqa::registerAllDialects(DialectRegistry &registry) {
  registry.insert<SQADialect>();
  // Upstream dialects and their external interface models (bufferization,
  // tiling, conversion to LLVM), which our pipelines rely on.
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registerBufferizableOpInterfaceExternalModels(registry);
  // gpu-module-to-binary translates kernels to LLVM IR inside the pipeline.
  mlir::registerAllToLLVMIRTranslations(registry);
}

void mlir::sqa::registerAllPasses() {
  mlir::registerAllPasses();
  registerSQATransformsPasses();
  registerSQAPipelinesPasses();
}
