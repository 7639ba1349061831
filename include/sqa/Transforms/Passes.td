//===- Passes.td - SQA transformation passes ---------------*- tablegen -*-===//

#ifndef SQA_TRANSFORMS_PASSES_TD
#define SQA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerAttentionReference : Pass<"sqa-lower-attention-reference"> {
  let summary = "Lower sqa.attention to naive linalg on tensors (the oracle)";
  let description = [{
    Rewrites every `sqa.attention` into `linalg.generic` ops on tensors that
    materialize the scores `[B, Hkv, G, S, T]` in f32: Q.K^T * scale, the
    mask as -inf, a row max, exp, a row sum and P.V, then one normalization
    and one rounding to the element type. Grouped heads are a reshape of the
    query (or, for reverse SQA, of key and value) into `[B, Hkv, G, ...]`
    and an indexing map that omits `G` on the other side: K and V are never
    repeated. A query row that sees no key yields 0, never NaN.

    This is the in-compiler oracle for the tiled kernels, not a fast path:
    it needs O(B * H * S * T) memory.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // SQA_TRANSFORMS_PASSES_TD
