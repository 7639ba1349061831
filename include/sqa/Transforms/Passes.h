//===- Passes.h - SQA transformation passes ---------------------*- C++ -*-===//

#ifndef SQA_TRANSFORMS_PASSES_H
#define SQA_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewriterBase;
namespace sqa {
class AttentionOp;
class AttentionBackwardOp;

#define GEN_PASS_DECL
#include "sqa/Transforms/Passes.h.inc"

/// Builds the naive reference computation of `op` at the rewriter's insertion
/// point and returns the values that replace its results (output, and lse
/// when the op has one).
FailureOr<SmallVector<Value>>
lowerAttentionToReferenceLinalg(RewriterBase &rewriter, AttentionOp op);

/// The same for sqa.attention_backward: returns (d_query, d_key, d_value).
FailureOr<SmallVector<Value>>
lowerAttentionBackwardToReferenceLinalg(RewriterBase &rewriter,
                                        AttentionBackwardOp op);

#define GEN_PASS_REGISTRATION
#include "sqa/Transforms/Passes.h.inc"

} // namespace sqa
} // namespace mlir

#endif // SQA_TRANSFORMS_PASSES_H
