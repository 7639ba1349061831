//===- TensorCoreBackward.h - mma.sync kernels of the GPU backward -*- C++ -*-//
//
// The f16/bf16 kernel bodies of sqa-lower-attention-backward-to-gpu: the
// five GEMMs of FlashAttention-2's backward on m16n8k16 mma.sync with f32
// accumulation. The pass decides when they apply and builds the launches;
// this file builds only the kernels.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_TENSORCOREBACKWARD_H
#define SQA_TRANSFORMS_TENSORCOREBACKWARD_H

#include "SQA/IR/AttentionRules.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::sqa {

struct TensorCoreBackwardSpec {
  Type elementType;
  int64_t headDim, valueDim;
  HeadMapping heads;
  MaskAttr mask;
  float scale;
};

/// Threads per block (4 warps), and the keys (dK/dV kernel) or query rows
/// (dQ kernel) of a block: 16 per warp, the M of one MMA.
constexpr int64_t kTensorCoreBackwardThreads = 128;
constexpr int64_t kTensorCoreBackwardRows = 64;

/// Whether the tensor-core kernels take this configuration: f16 or bf16,
/// head dims multiples of 16 (whole MMA tiles) and at most 128 (the dK and
/// dV accumulators live in registers).
bool supportsTensorCoreBackward(Type elementType, int64_t headDim,
                                int64_t valueDim);

/// Dynamic shared memory of the dK/dV (`keyValue`) or dQ kernel.
int64_t tensorCoreBackwardSharedBytes(const TensorCoreBackwardSpec &spec,
                                      bool keyValue);

/// Build the body of `func` (GPUKernelABI.def's training parameter list):
/// dK/dV, a block per (batch, kv head, 64 keys); dQ, a block per (batch,
/// query head, 64 rows).
void buildTensorCoreKeyValueKernel(ImplicitLocOpBuilder &b,
                                   const TensorCoreBackwardSpec &spec,
                                   gpu::GPUFuncOp func);
void buildTensorCoreQueryKernel(ImplicitLocOpBuilder &b,
                                const TensorCoreBackwardSpec &spec,
                                gpu::GPUFuncOp func);

} // namespace mlir::sqa

#endif // SQA_TRANSFORMS_TENSORCOREBACKWARD_H
