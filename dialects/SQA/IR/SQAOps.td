//===- SQAOps.td - SQA operations --------------------------*- tablegen -*-===//

#ifndef SQA_OPS_TD
#define SQA_OPS_TD

include "SQA/IR/SQABase.td"
include "SQA/IR/SQAAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def SQA_AttentionOp : SQA_Op<"attention", [
    Pure, DestinationStyleOpInterface]> {
  let summary = "scaled dot-product attention over grouped or sparse heads";
  let description = [{
    `softmax(query . key^T * scale + mask) . value`, per head, in layout
    BHSD:

    | operand | shape                     |
    |---------|---------------------------|
    | query   | `[B, Hq, S, D]`           |
    | key     | `[B, Hkv, T, D]`          |
    | value   | `[B, Hkv, T, Dv]`         |
    | init    | `[B, max(Hq, Hkv), S, Dv]`|

    B, S and T may be dynamic; Hq, Hkv, D and Dv must be static. All
    operands share one element type (f32, f16 or bf16); scores, softmax and
    accumulation are computed in f32 and the result is rounded once.

    Head mapping (PyTorch `repeat_interleave` convention; K and V are never
    repeated, the index is computed):
    * Hq >= Hkv (MHA, GQA, MQA, SQA): output head `h` uses query head `h`
      and key/value head `h / (Hq / Hkv)`.
    * Hkv > Hq (reverse SQA): the output has Hkv heads; output head `h` uses
      key/value head `h` and query head `h / (Hkv / Hq)`.
    The larger head count must be a multiple of the smaller.

    `scale` defaults to `1 / sqrt(D)`. `mask` (see `#sqa.mask`) adds causal
    and sliding-window masking. `heads`, when present, records the layer's
    head configuration and must agree with the operand shapes.

    The op is destination-style: `init` provides the result's shape and
    buffer, its values are not read.

    ```mlir
    %r = sqa.attention ins(%q, %k, %v : tensor<2x8x?x64xf32>,
                           tensor<2x4x?x64xf32>, tensor<2x4x?x64xf32>)
                       outs(%init : tensor<2x8x?x64xf32>)
                       {mask = #sqa.mask<causal = true>} -> tensor<2x8x?x64xf32>
    ```
  }];

  let arguments = (ins
    AnyRankedTensor:$query,
    AnyRankedTensor:$key,
    AnyRankedTensor:$value,
    AnyRankedTensor:$init,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<SQA_HeadsAttr>:$heads);
  let results = (outs AnyRankedTensor:$result);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key `,` $value `:` type($query) `,` type($key) `,`
      type($value) `)`
    `outs` `(` $init `:` type($init) `)`
    attr-dict `->` type($result)
  }];

  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;

  let extraClassDeclaration = [{
    RankedTensorType getQueryType() { return getQuery().getType(); }
    RankedTensorType getKeyType() { return getKey().getType(); }
    RankedTensorType getValueType() { return getValue().getType(); }
    RankedTensorType getInitType() { return getInit().getType(); }

    int64_t getNumQueryHeads() { return getQueryType().getDimSize(1); }
    int64_t getNumKVHeads() { return getKeyType().getDimSize(1); }
    int64_t getNumOutputHeads() {
      return std::max(getNumQueryHeads(), getNumKVHeads());
    }
    int64_t getHeadDim() { return getQueryType().getDimSize(3); }
    int64_t getValueHeadDim() { return getValueType().getDimSize(3); }
    bool isReverse() { return getNumKVHeads() > getNumQueryHeads(); }

    /// `scale` if set, else 1 / sqrt(D).
    float getScaleOrDefault();
    /// The mask if it hides anything, else null.
    MaskAttr getEffectiveMask();

    MutableOperandRange getDpsInitsMutable() { return getInitMutable(); }
  }];
}

#endif // SQA_OPS_TD
