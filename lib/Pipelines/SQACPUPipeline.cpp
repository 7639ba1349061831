//===- SQACPUPipeline.cpp - sqa to LLVM on the CPU ------------------------===//

#include "sqa/Pipelines/Pipelines.h"
#include "sqa/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_SQACPUPIPELINE
#include "sqa/Pipelines/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;

void sqa::buildCPUPipeline(OpPassManager &pm,
                           const SQACPUPipelineOptions &options) {
  bool flash = options.attentionKernel != "reference";
  pm.addPass(createDecomposeAttentionLayer());
  if (flash) {
    TileAttentionOptions tileOptions;
    tileOptions.queryTile = options.queryTile;
    pm.addPass(createTileAttention(tileOptions));
  } else {
    pm.addPass(createLowerAttentionReference());
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  bufferization::OneShotBufferizePassOptions bufferizeOptions;
  bufferizeOptions.bufferizeFunctionBoundaries = true;
  bufferizeOptions.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  bufferizeOptions.bufferAlignment = options.bufferAlignment;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferizeOptions));
  bufferization::buildBufferDeallocationPipeline(pm);

  LowerProjectionsOptions projectionOptions;
  projectionOptions.vectorWidth = options.vectorWidth;
  pm.addPass(createLowerProjections(projectionOptions));
  if (flash) {
    LowerFlashAttentionOptions flashOptions;
    flashOptions.vectorWidth = options.vectorWidth;
    flashOptions.kvBlock = options.kvBlock;
    flashOptions.rowsPerKernel = options.rowsPerKernel;
    flashOptions.vectorsPerKernel = options.vectorsPerKernel;
    pm.addPass(createLowerFlashAttention(flashOptions));
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createForallToParallelLoopPass());
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(createDynamicOpenMPSchedule());

  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertVectorToLLVMPass());
  // Before scf-to-cf: the OpenMP loop bodies sit in memref.alloca_scope,
  // which must still have a single block when it is lowered.
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  if (options.emitCInterface)
    pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

namespace {
struct SQACPUPipelinePass
    : public sqa::impl::SQACPUPipelineBase<SQACPUPipelinePass> {
  using Base::Base;

  sqa::SQACPUPipelineOptions getOptions() const {
    sqa::SQACPUPipelineOptions options;
    options.emitCInterface = emitCInterface;
    options.bufferAlignment = bufferAlignment;
    options.attentionKernel = attentionKernel;
    options.vectorWidth = vectorWidth;
    options.queryTile = queryTile;
    options.kvBlock = kvBlock;
    options.rowsPerKernel = rowsPerKernel;
    options.vectorsPerKernel = vectorsPerKernel;
    return options;
  }

  // The nested pipeline's dialects must be loaded before this pass runs,
  // since a running pass may not load dialects.
  void getDependentDialects(DialectRegistry &registry) const override {
    OpPassManager pm(ModuleOp::getOperationName());
    sqa::buildCPUPipeline(pm, getOptions());
    pm.getDependentDialects(registry);
  }

  void runOnOperation() override {
    if (attentionKernel != "flash" && attentionKernel != "reference") {
      emitError(getOperation()->getLoc())
          << "attention-kernel must be 'flash' or 'reference', got '"
          << attentionKernel << "'";
      return signalPassFailure();
    }
    OpPassManager pm(ModuleOp::getOperationName());
    sqa::buildCPUPipeline(pm, getOptions());
    if (failed(runPipeline(pm, getOperation())))
      signalPassFailure();
  }
};
} // namespace
