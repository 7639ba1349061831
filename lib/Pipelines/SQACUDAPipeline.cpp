//===- SQACUDAPipeline.cpp - sqa to CUDA kernels and host code ------------===//

#include "sqa/Pipelines/Pipelines.h"

#include "NestedPipelinePass.h"
#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringSwitch.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_SQACUDAPIPELINE
#include "sqa/Pipelines/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;

/// The PTX ISA version (x10) that first supports each chip LLVM 22's NVPTX
/// back end knows from sm_80 on; an older one makes the back end abort.
static std::optional<unsigned> minPTXVersion(StringRef chip) {
  return llvm::StringSwitch<std::optional<unsigned>>(chip)
      .Case("sm_80", 70)
      .Case("sm_86", 71)
      .Case("sm_87", 74)
      .Cases({"sm_89", "sm_90"}, 78)
      .Case("sm_90a", 80)
      .Cases({"sm_100", "sm_100a", "sm_101", "sm_101a"}, 86)
      .Cases({"sm_120", "sm_120a"}, 87)
      .Cases({"sm_103", "sm_103a", "sm_121", "sm_121a", "sm_100f", "sm_101f",
              "sm_103f", "sm_120f", "sm_121f"},
             88)
      .Cases({"sm_88", "sm_110", "sm_110a", "sm_110f"}, 90)
      .Default(std::nullopt);
}

std::string
sqa::verifyCUDAPipelineOptions(const SQACUDAPipelineOptions &options) {
  StringRef chipName = options.chip;
  unsigned version = 0;
  if (!chipName.consume_front("sm_") ||
      chipName.take_while(llvm::isDigit).getAsInteger(10, version) ||
      version < 80)
    return "chip must be sm_80 or later (cp.async, bf16 tensor cores), got '" +
           options.chip + "'";
  std::optional<unsigned> minPTX = minPTXVersion(options.chip);
  if (!minPTX)
    return "chip '" + options.chip +
           "' is not an architecture LLVM's NVPTX back end knows (sm_80, "
           "sm_86, sm_87, sm_89, sm_90, sm_90a, sm_100, sm_120, ...)";
  // Features are a comma-separated list of +ptxNN (the only NVPTX features
  // besides the chip); the highest one enabled is the PTX version.
  unsigned ptx = 0;
  SmallVector<StringRef> features;
  StringRef(options.features).split(features, ',', -1, /*KeepEmpty=*/false);
  for (StringRef feature : features) {
    StringRef name = feature.trim();
    unsigned version = 0;
    bool enable = name.consume_front("+");
    if ((!enable && !name.consume_front("-")) || !name.consume_front("ptx") ||
        name.getAsInteger(10, version) || version < 32 || version > 90)
      return "features must be a comma-separated list of +ptxNN (32 <= NN "
             "<= 90), got '" +
             options.features + "'";
    if (enable)
      ptx = std::max(ptx, version);
  }
  if (ptx < *minPTX)
    return "chip " + options.chip + " needs +ptx" + std::to_string(*minPTX) +
           " or later in features, got '" + options.features + "'";
  if (options.optLevel > 3)
    return "opt-level must be in [0, 3], got " +
           std::to_string(options.optLevel);
  if (options.format != "isa" && options.format != "bin" &&
      options.format != "fatbin")
    return "format must be isa, bin or fatbin, got '" + options.format + "'";
  // sqa-lower-attention-to-gpu checks these per kernel (tensor-core
  // kernels need kv-block % 16 == 0; the f32 SIMT kernel ignores the other
  // two); the pipeline refuses values no kernel takes, and bounds kv-block
  // so that shared-memory sizes stay in int64.
  if (std::string error =
          checkOptionRange("kv-block", options.kvBlock, 1, kMaxBlock);
      !error.empty())
    return error;
  if (!llvm::is_contained({0, 1, 2, 4}, options.headsPerBlock))
    return "heads-per-block must be 0 (automatic), 1, 2 or 4, got " +
           std::to_string(options.headsPerBlock);
  if (options.rowsPerWarp != 16 && options.rowsPerWarp != 32)
    return "rows-per-warp must be 16 or 32, got " +
           std::to_string(options.rowsPerWarp);
  return "";
}

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
  pm.addPass(createLowerDecodeToGPU());
  LowerAttentionBackwardToGPUOptions backwardOptions;
  backwardOptions.tensorCores = options.backwardTensorCores;
  pm.addPass(createLowerAttentionBackwardToGPU(backwardOptions));
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
    : public sqa::NestedPipelinePass<
          SQACUDAPipelinePass,
          sqa::impl::SQACUDAPipelineBase<SQACUDAPipelinePass>,
          sqa::SQACUDAPipelineOptions, sqa::buildCUDAPipeline,
          sqa::verifyCUDAPipelineOptions> {
  using NestedPipelinePass::NestedPipelinePass;

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
    options.backwardTensorCores = backwardTensorCores;
    return options;
  }
};
} // namespace
