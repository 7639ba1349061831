//===- SQACUDAPipeline.cpp - sqa to CUDA kernels and host code ------------===//

#include "sqa/Pipelines/Pipelines.h"
#include "sqa/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_SQACUDAPIPELINE
#include "sqa/Pipelines/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;

void sqa::buildCUDAKernelPipeline(OpPassManager &pm,
                                  const SQACUDAPipelineOptions &options) {
  pm.addPass(createCanonicalizerPass());
  bufferization::OneShotBufferizePassOptions bufferizeOptions;
  bufferizeOptions.bufferizeFunctionBoundaries = true;
  bufferizeOptions.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferizeOptions));
  bufferization::buildBufferDeallocationPipeline(pm);
  LowerAttentionToGPUOptions gpuOptions;
  gpuOptions.kvBlock = options.kvBlock;
  gpuOptions.headsPerBlock = options.headsPerBlock;
  gpuOptions.rowsPerWarp = options.rowsPerWarp;
  pm.addPass(createLowerAttentionToGPU(gpuOptions));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void sqa::buildCUDABinaryPipeline(OpPassManager &pm,
                                  const SQACUDAPipelineOptions &options) {
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));

  // Kernels.
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createConvertNVGPUToNVVMPass());
  kernels.addPass(createSCFToControlFlowPass());
  kernels.addPass(memref::createExpandStridedMetadataPass());
  kernels.addPass(createLowerAffinePass());
  kernels.addPass(createConvertGpuOpsToNVVMOps());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());

  // Host code.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());

  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = options.toolkit;
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void sqa::buildCUDAPipeline(OpPassManager &pm,
                            const SQACUDAPipelineOptions &options) {
  buildCUDAKernelPipeline(pm, options);
  buildCUDABinaryPipeline(pm, options);
}

namespace {
struct SQACUDAPipelinePass
    : public sqa::impl::SQACUDAPipelineBase<SQACUDAPipelinePass> {
  using Base::Base;

  sqa::SQACUDAPipelineOptions getOptions() const {
    sqa::SQACUDAPipelineOptions options;
    options.chip = chip;
    options.features = features;
    options.optLevel = optLevel;
    options.format = format;
    options.toolkit = toolkit;
    options.kvBlock = kvBlock;
    options.headsPerBlock = headsPerBlock;
    options.rowsPerWarp = rowsPerWarp;
    return options;
  }

  void getDependentDialects(DialectRegistry &registry) const override {
    OpPassManager pm(ModuleOp::getOperationName());
    sqa::buildCUDAPipeline(pm, getOptions());
    pm.getDependentDialects(registry);
  }

  void runOnOperation() override {
    StringRef chipName = chip;
    unsigned version = 0;
    if (!chipName.consume_front("sm_") ||
        chipName.take_while(llvm::isDigit).getAsInteger(10, version) ||
        version < 80) {
      emitError(getOperation()->getLoc())
          << "chip must be sm_80 or later (cp.async, bf16 tensor cores), got '"
          << chip << "'";
      return signalPassFailure();
    }
    if (format != "isa" && format != "bin" && format != "fatbin") {
      emitError(getOperation()->getLoc())
          << "format must be isa, bin or fatbin, got '" << format << "'";
      return signalPassFailure();
    }
    OpPassManager pm(ModuleOp::getOperationName());
    sqa::buildCUDAPipeline(pm, getOptions());
    if (failed(runPipeline(pm, getOperation())))
      signalPassFailure();
  }
};
} // namespace
