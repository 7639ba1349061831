//===- SQACPUPipeline.cpp - sqa to LLVM on the CPU ------------------------===//

#include "sqa/Pipelines/Pipelines.h"

#include "NestedPipelinePass.h"
#include "sqa/Transforms/OptionLimits.h"
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
#include "llvm/Support/MathExtras.h"

#include <algorithm>

namespace mlir::sqa {
#define GEN_PASS_DEF_SQACPUPIPELINE
#include "sqa/Pipelines/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;

std::string
sqa::verifyCPUPipelineOptions(const SQACPUPipelineOptions &options) {
  if (options.attentionKernel != "flash" &&
      options.attentionKernel != "reference")
    return "attention-kernel must be 'flash' or 'reference', got '" +
           options.attentionKernel + "'";
  uint64_t alignment = options.bufferAlignment;
  if (!llvm::isPowerOf2_64(alignment) || alignment > (uint64_t(1) << 30))
    return "buffer-alignment must be a power of two in [1, 2^30], got " +
           std::to_string(alignment);
  for (std::string error :
       {checkOptionRange("vector-width", options.vectorWidth, 1,
                         kMaxVectorWidth),
        checkOptionRange("query-tile", options.queryTile, 1, kMaxQueryTile),
        checkOptionRange("backward-query-block", options.backwardQueryBlock,
                         1, kMaxQueryTile),
        checkOptionRange("kv-block", options.kvBlock, 1, kMaxBlock),
        checkOptionRange("mr", options.rowsPerKernel, 1, kMaxRowsPerKernel),
        checkOptionRange("nr", options.vectorsPerKernel, 1,
                         kMaxVectorsPerKernel)})
    if (!error.empty())
      return error;
  // The flash kernel's score block is whole micro-kernel columns.
  int64_t chunk = options.vectorWidth * options.vectorsPerKernel;
  if (options.attentionKernel == "flash" && options.kvBlock % chunk != 0)
    return "kv-block (" + std::to_string(options.kvBlock) +
           ") must be a multiple of nr * vector-width (" +
           std::to_string(chunk) + ")";
  return "";
}

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
    flashOptions.bf16Dot = options.bf16Dot;
    pm.addPass(createLowerFlashAttention(flashOptions));
    // Decode splits hold whole softmax blocks and at most ~2048 keys (the
    // pass cuts them smaller when there are few items to share): each item
    // restarts the hardware prefetcher's streams, and at 16k keys 32/8/128
    // and 32/32/128 took 1.03-1.06x as long with at most 512.
    LowerDecodeSplitKVOptions decodeOptions;
    decodeOptions.vectorWidth = options.vectorWidth;
    // Built before the options are verified (dependent dialects): keep the
    // arithmetic safe for any value; the passes check their own ranges.
    int64_t block =
        (std::clamp<int64_t>(options.kvBlock, 4, kMaxBlock) + 3) / 4 * 4;
    decodeOptions.kvBlock = block;
    decodeOptions.splitKeys = (2048 + block - 1) / block * block;
    pm.addPass(createLowerDecodeSplitKV(decodeOptions));
    LowerFlashAttentionBackwardOptions backwardOptions;
    backwardOptions.vectorWidth = options.vectorWidth;
    // Keys of a backward block along lanes: the flash kv-block is a
    // multiple of the vector width.
    backwardOptions.kvBlock = options.kvBlock;
    // Register tiles as the forward's (--cpu-mr, --cpu-nr); rows per block
    // its own.
    backwardOptions.queryBlock = options.backwardQueryBlock;
    backwardOptions.rowsPerKernel = options.rowsPerKernel;
    backwardOptions.vectorsPerKernel = options.vectorsPerKernel;
    pm.addPass(createLowerFlashAttentionBackward(backwardOptions));
  } else {
    pm.addPass(createLowerDecodeReference());
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
  // x86vector: the flash kernel's bf16 dot products (bf16-dot).
  ConvertVectorToLLVMPassOptions vectorToLLVMOptions;
  vectorToLLVMOptions.x86Vector = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVMOptions));
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
    : public sqa::NestedPipelinePass<
          SQACPUPipelinePass, sqa::impl::SQACPUPipelineBase<SQACPUPipelinePass>,
          sqa::SQACPUPipelineOptions, sqa::buildCPUPipeline,
          sqa::verifyCPUPipelineOptions> {
  using NestedPipelinePass::NestedPipelinePass;

  sqa::SQACPUPipelineOptions getOptions() const {
    sqa::SQACPUPipelineOptions options;
    options.emitCInterface = emitCInterface;
    options.bufferAlignment = bufferAlignment;
    options.attentionKernel = attentionKernel;
    options.vectorWidth = vectorWidth;
    options.queryTile = queryTile;
    options.backwardQueryBlock = backwardQueryBlock;
    options.kvBlock = kvBlock;
    options.rowsPerKernel = rowsPerKernel;
    options.vectorsPerKernel = vectorsPerKernel;
    options.bf16Dot = bf16Dot;
    return options;
  }
};
} // namespace
