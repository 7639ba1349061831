//===- SQAOps.td - SQA operations --------------------------*- tablegen -*-===//

#ifndef SQA_OPS_TD
#define SQA_OPS_TD

include "SQA/IR/SQABase.td"
include "SQA/IR/SQAAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/TilingInterface.td"

def SQA_AttentionOp : SQA_Op<"attention", [
    AttrSizedOperandSegments, DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>,
    DeclareOpInterfaceMethods<TilingInterface,
        ["getIterationDomain", "getLoopIteratorTypes",
         "getTiledImplementation", "getResultTilePosition"]>]> {
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

    Size limits (so that every lowering's int64 index math is exact):
    Hq, Hkv <= 65536 and D, Dv <= 65536; every operand's static element
    count, byte size and (for memrefs with a static strided layout) largest
    element offset fit int64; static B, S and T are positive (an empty
    batch or sequence is rejected, not computed; dynamic sizes are checked
    at run time by the callers, e.g. `sqa-aot` libraries).

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

    `diagonal_offset`, when given, is the key position of query row 0's
    diagonal and replaces the one `mask`'s alignment implies (0 or T - S).
    Tiling over query rows sets it, so that a tile of rows [s0, s0 + n)
    keeps the global mask.

    The op is destination-style: `init` provides the result's shape and
    buffer, its values are not read. On tensors it returns the result; after
    bufferization it takes memrefs, writes `init` and returns nothing.

    `lse(%l : tensor<[B, max(Hq, Hkv), S]xf32>)`, optional, is a second
    destination: the per-row logsumexp of the scaled, masked scores in the
    natural-log domain (`-inf` for a row that sees no key), which
    `sqa.attention_backward` takes to recompute the probabilities. With it
    the tensor form returns two results (output, lse). Lowered by the CPU
    kernels and by sqa-lower-attention-to-gpu (an lse epilogue store).

    ```mlir
    %r = sqa.attention ins(%q, %k, %v : tensor<2x8x?x64xf32>,
                           tensor<2x4x?x64xf32>, tensor<2x4x?x64xf32>)
                       outs(%init : tensor<2x8x?x64xf32>)
                       {mask = #sqa.mask<causal = true>} -> tensor<2x8x?x64xf32>
    ```
  }];

  let arguments = (ins
    AnyShaped:$query,
    AnyShaped:$key,
    AnyShaped:$value,
    AnyShaped:$init,
    Optional<AnyShaped>:$lse,
    Optional<Index>:$diagonal_offset,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<SQA_HeadsAttr>:$heads);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key `,` $value `:` type($query) `,` type($key) `,`
      type($value) `)`
    `outs` `(` $init `:` type($init) `)`
    (`lse` `(` $lse^ `:` type($lse) `)`)?
    (`diagonal_offset` `(` $diagonal_offset^ `)`)?
    attr-dict (`->` type($results)^)?
  }];

  // The form without lse keeps its builder signature.
  let builders = [
    OpBuilder<(ins "TypeRange":$results, "Value":$query, "Value":$key,
      "Value":$value, "Value":$init, "Value":$diagonal_offset,
      "FloatAttr":$scale, "MaskAttr":$mask, "HeadsAttr":$heads), [{
      build($_builder, $_state, results, query, key, value, init,
            /*lse=*/Value(), diagonal_offset, scale, mask, heads);
    }]>
  ];

  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;

  let extraClassDeclaration = [{
    ShapedType getQueryType() { return cast<ShapedType>(getQuery().getType()); }
    ShapedType getKeyType() { return cast<ShapedType>(getKey().getType()); }
    ShapedType getValueType() { return cast<ShapedType>(getValue().getType()); }
    ShapedType getInitType() { return cast<ShapedType>(getInit().getType()); }

    int64_t getNumQueryHeads() { return getQueryType().getDimSize(1); }
    int64_t getNumKVHeads() { return getKeyType().getDimSize(1); }
    int64_t getNumOutputHeads() {
      return std::max(getNumQueryHeads(), getNumKVHeads());
    }
    int64_t getHeadDim() { return getQueryType().getDimSize(3); }
    int64_t getValueHeadDim() { return getValueType().getDimSize(3); }
    bool isReverse() { return getNumKVHeads() > getNumQueryHeads(); }
    /// Which query and key/value head each output head uses.
    HeadMapping getHeadMapping() {
      return {getNumQueryHeads(), getNumKVHeads()};
    }

    /// `scale` if set, else 1 / sqrt(D).
    float getScaleOrDefault();
    /// Key position of query row 0's diagonal: `diagonal_offset` if given,
    /// else 0 (top-left) or T - S (bottom-right).
    Value buildDiagonalOffset(OpBuilder &builder, Location loc);
    /// The tensor result, or null with buffer semantics.
    Value getResult();
    /// The mask if it hides anything, else null.
    MaskAttr getEffectiveMask();

    /// The lse tensor result, or null (buffer semantics or no lse).
    Value getLseResult() {
      return getLse() && getNumResults() == 2 ? getResults()[1] : Value();
    }

    /// init, then lse when present (consecutive operands).
    MutableOperandRange getDpsInitsMutable() {
      return MutableOperandRange(getOperation(),
                                 getODSOperandIndexAndLength(3).first,
                                 getLse() ? 2 : 1);
    }
  }];
}

def SQA_AttentionBackwardOp : SQA_Op<"attention_backward", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "gradients of sqa.attention with respect to query, key, value";
  let description = [{
    The exact gradient of `sqa.attention` with the same heads, `mask`,
    `scale` and `diagonal_offset`:

    | operand | shape |
    |---------|-------|
    | query, key, value | as for `sqa.attention` |
    | out, d_out | `[B, max(Hq, Hkv), S, Dv]`: the forward's result and its gradient |
    | lse | `[B, max(Hq, Hkv), S]` f32: the forward's logsumexp (`sqa.attention ... lse(...)`) |
    | d_query, d_key, d_value (inits) | shapes of query, key, value |

    With `P = exp(scale * q.k^T + mask - lse)` (0 for a row whose lse is
    -inf), `Delta = rowsum(d_out * out)` and `dS = P * (d_out.v^T - Delta)`:
    `d_value = P^T.d_out`, `d_query = scale * dS.k`, `d_key = scale * dS^T.q`.
    Grouped heads are reduced, never expanded: the gradient of a key/value
    head sums over every output head that uses it (GQA, MQA, SQA), and for
    reverse SQA the gradient of a query head sums over its key/value heads.
    Arithmetic is f32; each gradient is rounded once to the element type.
    The inits are only written. On tensors the op returns the three
    gradients; on memrefs it writes the inits.
  }];

  let arguments = (ins
    AnyShaped:$query,
    AnyShaped:$key,
    AnyShaped:$value,
    AnyShaped:$out,
    AnyShaped:$d_out,
    AnyShaped:$lse,
    AnyShaped:$d_query,
    AnyShaped:$d_key,
    AnyShaped:$d_value,
    Optional<Index>:$diagonal_offset,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<SQA_HeadsAttr>:$heads);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key `,` $value `,` $out `,` $d_out `,` $lse `:`
      type($query) `,` type($key) `,` type($value) `,` type($out) `,`
      type($d_out) `,` type($lse) `)`
    `outs` `(` $d_query `,` $d_key `,` $d_value `:` type($d_query) `,`
      type($d_key) `,` type($d_value) `)`
    (`diagonal_offset` `(` $diagonal_offset^ `)`)?
    attr-dict (`->` type($results)^)?
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    ShapedType getQueryType() { return cast<ShapedType>(getQuery().getType()); }
    ShapedType getKeyType() { return cast<ShapedType>(getKey().getType()); }
    ShapedType getValueType() { return cast<ShapedType>(getValue().getType()); }
    ShapedType getOutType() { return cast<ShapedType>(getOut().getType()); }
    int64_t getNumQueryHeads() { return getQueryType().getDimSize(1); }
    int64_t getNumKVHeads() { return getKeyType().getDimSize(1); }
    int64_t getNumOutputHeads() {
      return std::max(getNumQueryHeads(), getNumKVHeads());
    }
    int64_t getHeadDim() { return getQueryType().getDimSize(3); }
    int64_t getValueHeadDim() { return getValueType().getDimSize(3); }
    bool isReverse() { return getNumKVHeads() > getNumQueryHeads(); }
    HeadMapping getHeadMapping() {
      return {getNumQueryHeads(), getNumKVHeads()};
    }
    /// `scale` if set, else 1 / sqrt(D) (the forward's rule).
    float getScaleOrDefault();
    /// As AttentionOp::buildDiagonalOffset.
    Value buildDiagonalOffset(OpBuilder &builder, Location loc);
    /// The mask if it hides anything, else null.
    MaskAttr getEffectiveMask();

    MutableOperandRange getDpsInitsMutable() {
      return MutableOperandRange(getOperation(), 6, 3);
    }
  }];
}

def SQA_AttentionLayerOp : SQA_Op<"attention_layer", [
    Pure, AttrSizedOperandSegments, DestinationStyleOpInterface]> {
  let summary = "a whole attention layer: projections, RoPE, attention, output";
  let description = [{
    With `H = heads.total`, `Hq = heads.query`, `Hkv = heads.kv`,
    `d = d_model`, `dh = d / H` and `Hout = max(Hq, Hkv)`:

    | operand | shape |
    |---------|-------|
    | input x | `[B, S, d]` |
    | memory (optional) | `[B, T, d]`: keys and values come from it (cross-attention) |
    | w_q, w_k, w_v | `[d, Hq*dh]`, `[d, Hkv*dh]`, `[d, Hkv*dh]` |
    | w_o | `[Hout*dh, d]` |
    | b_q, b_k, b_v, b_o (each optional) | `[Hq*dh]`, `[Hkv*dh]`, `[Hkv*dh]`, `[d]` |
    | init / result | `[B, S, d]` |

    `q = x w_q + b_q`, `k = m w_k + b_k`, `v = m w_v + b_v` with `m` the
    memory or x; split into heads (head-major columns), RoPE (`rope`) on q
    and k, `sqa.attention` (with `mask` and `scale`, K/V never repeated),
    heads concatenated, `y = o w_o + b_o`. Matmuls accumulate in f32; q, k,
    v and the attention output are rounded to the element type.

    Size limits as for `sqa.attention` (dh <= 65536, static B, S, T
    positive), and every operand's static extent must fit int64 at 4 bytes
    per element (the decomposition makes f32 copies).

    ```mlir
    %y = sqa.attention_layer ins(%x : tensor<?x?x256xf32>)
           weights(%wq, %wk, %wv, %wo : tensor<256x128xf32>, tensor<256x64xf32>,
                   tensor<256x64xf32>, tensor<128x256xf32>)
           outs(%init : tensor<?x?x256xf32>)
           {heads = #sqa.heads<sqa, total = 16>,
            rope = #sqa.rope<kind = rotary>} -> tensor<?x?x256xf32>
    ```
  }];

  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$input,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$memory,
    RankedTensorOf<[F32, F16, BF16]>:$w_q,
    RankedTensorOf<[F32, F16, BF16]>:$w_k,
    RankedTensorOf<[F32, F16, BF16]>:$w_v,
    RankedTensorOf<[F32, F16, BF16]>:$w_o,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_q,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_o,
    RankedTensorOf<[F32, F16, BF16]>:$init,
    SQA_HeadsAttr:$heads,
    OptionalAttr<SQA_RopeAttr>:$rope,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale);
  let results = (outs AnyRankedTensor:$result);

  let assemblyFormat = [{
    `ins` `(` $input `:` type($input) `)`
    (`memory` `(` $memory^ `:` type($memory) `)`)?
    `weights` `(` $w_q `,` $w_k `,` $w_v `,` $w_o `:` type($w_q) `,`
      type($w_k) `,` type($w_v) `,` type($w_o) `)`
    (`bias_q` `(` $b_q^ `:` type($b_q) `)`)?
    (`bias_k` `(` $b_k^ `:` type($b_k) `)`)?
    (`bias_v` `(` $b_v^ `:` type($b_v) `)`)?
    (`bias_o` `(` $b_o^ `:` type($b_o) `)`)?
    `outs` `(` $init `:` type($init) `)`
    attr-dict `->` type($result)
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    int64_t getModelDim() {
      return getInput().getType().getDimSize(2);
    }
    int64_t getHeadDim() { return getModelDim() / getHeads().getTotal(); }
    MutableOperandRange getDpsInitsMutable() { return getInitMutable(); }
  }];
}

def SQA_AttentionLayerBackwardOp : SQA_Op<"attention_layer_backward", [
    Pure, AttrSizedOperandSegments, DestinationStyleOpInterface]> {
  let summary = "gradients of sqa.attention_layer (one training step's backward)";
  let description = [{
    The exact gradients of `sum(y * d_out)`, `y` the result of the
    `sqa.attention_layer` with the same operands and attributes, with
    respect to the input, the memory (when present), every weight and every
    bias the op has:

    | operand | shape |
    |---------|-------|
    | input .. b_o, heads, rope, mask, scale | as for `sqa.attention_layer` |
    | d_out | `[B, S, d]`: the gradient of the layer's output |
    | d_input, d_memory, d_w_*, d_b_* (inits) | the types of input, memory, w_*, b_* |

    `d_memory` is given exactly when `memory` is, `d_b_x` exactly when `b_x`
    is. The forward is recomputed (activation recomputation: q, k, v with
    RoPE, `sqa.attention` with `lse`); then `sqa.attention_backward`, RoPE's
    transpose (rotation by -theta) on dq and dk, and the projections'
    gradients: `dW = X^T dP` and `db = sum dP` over batch and positions,
    `dX = dP W^T` summed over the paths that read X. Arithmetic is f32 with
    q, k, v and the attention output rounded as in the forward; each
    gradient is rounded once. On tensors only; the results follow the
    inits' order.

    ```mlir
    %dx, %dwq, %dwk, %dwv, %dwo = sqa.attention_layer_backward
        ins(%x : tensor<?x?x64xf32>)
        weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>,
                tensor<64x16xf32>, tensor<32x64xf32>)
        d_out(%dy : tensor<?x?x64xf32>)
        outs(%dx0 : tensor<?x?x64xf32>)
        d_weights(%dwq0, %dwk0, %dwv0, %dwo0 : tensor<64x32xf32>,
                  tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>)
        {heads = #sqa.heads<total = 4, query = 2, kv = 1>}
        -> tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>,
           tensor<64x16xf32>, tensor<32x64xf32>
    ```
  }];

  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$input,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$memory,
    RankedTensorOf<[F32, F16, BF16]>:$w_q,
    RankedTensorOf<[F32, F16, BF16]>:$w_k,
    RankedTensorOf<[F32, F16, BF16]>:$w_v,
    RankedTensorOf<[F32, F16, BF16]>:$w_o,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_q,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_o,
    RankedTensorOf<[F32, F16, BF16]>:$d_out,
    RankedTensorOf<[F32, F16, BF16]>:$d_input,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$d_memory,
    RankedTensorOf<[F32, F16, BF16]>:$d_w_q,
    RankedTensorOf<[F32, F16, BF16]>:$d_w_k,
    RankedTensorOf<[F32, F16, BF16]>:$d_w_v,
    RankedTensorOf<[F32, F16, BF16]>:$d_w_o,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$d_b_q,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$d_b_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$d_b_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$d_b_o,
    SQA_HeadsAttr:$heads,
    OptionalAttr<SQA_RopeAttr>:$rope,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $input `:` type($input) `)`
    (`memory` `(` $memory^ `:` type($memory) `)`)?
    `weights` `(` $w_q `,` $w_k `,` $w_v `,` $w_o `:` type($w_q) `,`
      type($w_k) `,` type($w_v) `,` type($w_o) `)`
    (`bias_q` `(` $b_q^ `:` type($b_q) `)`)?
    (`bias_k` `(` $b_k^ `:` type($b_k) `)`)?
    (`bias_v` `(` $b_v^ `:` type($b_v) `)`)?
    (`bias_o` `(` $b_o^ `:` type($b_o) `)`)?
    `d_out` `(` $d_out `:` type($d_out) `)`
    `outs` `(` $d_input `:` type($d_input) `)`
    (`d_memory` `(` $d_memory^ `:` type($d_memory) `)`)?
    `d_weights` `(` $d_w_q `,` $d_w_k `,` $d_w_v `,` $d_w_o `:` type($d_w_q)
      `,` type($d_w_k) `,` type($d_w_v) `,` type($d_w_o) `)`
    (`d_bias_q` `(` $d_b_q^ `:` type($d_b_q) `)`)?
    (`d_bias_k` `(` $d_b_k^ `:` type($d_b_k) `)`)?
    (`d_bias_v` `(` $d_b_v^ `:` type($d_b_v) `)`)?
    (`d_bias_o` `(` $d_b_o^ `:` type($d_b_o) `)`)?
    attr-dict `->` type($results)
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    int64_t getModelDim() {
      return getInput().getType().getDimSize(2);
    }
    int64_t getHeadDim() { return getModelDim() / getHeads().getTotal(); }
    /// d_input through d_b_o: consecutive operands, the last ones.
    MutableOperandRange getDpsInitsMutable() {
      unsigned first = getODSOperandIndexAndLength(11).first;
      return MutableOperandRange(getOperation(), first,
                                 getOperation()->getNumOperands() - first);
    }
  }];
}

def SQA_AttentionLayerDecodeOp : SQA_Op<"attention_layer_decode", [
    AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "one decode step of a whole attention layer against KV caches";
  let description = [{
    The serving step of `sqa.attention_layer`: the `N` new tokens of each
    batch row attend to their row's KV cache. With the names of
    `sqa.attention_layer` and `C` the capacity:

    | operand | shape |
    |---------|-------|
    | input x | `[B, N, d]`: the new tokens |
    | w_q, w_o | `[d, Hq*dh]`, `[Hout*dh, d]` |
    | w_k, w_v (optional, together) | `[d, Hkv*dh]` |
    | b_q, b_k, b_v, b_o (each optional) | as for `sqa.attention_layer` |
    | key_cache, value_cache | `[B, Hkv, C, dh]` memrefs |
    | cache_lens | `[B]` i64 memref: valid tokens of each row before the step |
    | init / result | `[B, N, d]` |

    With `w_k`/`w_v` (self-attention) the new tokens' keys and values are
    projected, RoPE rotates q and k at positions `cache_lens[b] + i` (plus
    the rope's `position_offset`), and `sqa.decode` appends them to the
    caches and attends to the `cache_lens[b] + N` keys of the row. Without
    them (cross-attention) the caches already hold the memory's keys and
    values (`sqa.attention_layer_kv`), nothing is appended and row `b`
    attends to its `cache_lens[b]` keys; RoPE is then rejected (the step
    has no query positions). Heads are merged and projected as in the
    forward. `mask` is read as `sqa.decode` reads it: a restrictive mask
    must be bottom-right aligned.

    The caches are updated in place (this op mixes tensors and buffers and
    is decomposed before bufferization); the caller guarantees
    `0 <= cache_lens[b]` and `cache_lens[b] + N <= C` (with append).

    ```mlir
    %y = sqa.attention_layer_decode ins(%x : tensor<?x?x64xf32>)
           weights(%wq, %wo : tensor<64x32xf32>, tensor<64x64xf32>)
           kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
           cache(%kc, %vc : memref<?x2x?x8xf32>, memref<?x2x?x8xf32>)
           lengths(%lens : memref<?xi64>)
           outs(%init : tensor<?x?x64xf32>)
           {heads = #sqa.heads<sqa, total = 8>,
            mask = #sqa.mask<causal = true, alignment = bottom_right>}
           -> tensor<?x?x64xf32>
    ```
  }];

  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$input,
    RankedTensorOf<[F32, F16, BF16]>:$w_q,
    RankedTensorOf<[F32, F16, BF16]>:$w_o,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$w_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$w_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_q,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_o,
    MemRefOf<[F32, F16, BF16]>:$key_cache,
    MemRefOf<[F32, F16, BF16]>:$value_cache,
    MemRefOf<[I64]>:$cache_lens,
    RankedTensorOf<[F32, F16, BF16]>:$init,
    SQA_HeadsAttr:$heads,
    OptionalAttr<SQA_RopeAttr>:$rope,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<F32Attr>:$scale);
  let results = (outs AnyRankedTensor:$result);

  let assemblyFormat = [{
    `ins` `(` $input `:` type($input) `)`
    `weights` `(` $w_q `,` $w_o `:` type($w_q) `,` type($w_o) `)`
    (`kv_weights` `(` $w_k^ `,` $w_v `:` type($w_k) `,` type($w_v) `)`)?
    (`bias_q` `(` $b_q^ `:` type($b_q) `)`)?
    (`bias_k` `(` $b_k^ `:` type($b_k) `)`)?
    (`bias_v` `(` $b_v^ `:` type($b_v) `)`)?
    (`bias_o` `(` $b_o^ `:` type($b_o) `)`)?
    `cache` `(` $key_cache `,` $value_cache `:` type($key_cache) `,`
      type($value_cache) `)`
    `lengths` `(` $cache_lens `:` type($cache_lens) `)`
    `outs` `(` $init `:` type($init) `)`
    attr-dict `->` type($result)
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    int64_t getModelDim() {
      return getInput().getType().getDimSize(2);
    }
    int64_t getHeadDim() { return getModelDim() / getHeads().getTotal(); }
    /// Self-attention: the new tokens' keys and values are appended.
    bool hasAppend() { return static_cast<bool>(getWK()); }
  }];
}

def SQA_AttentionLayerKVOp : SQA_Op<"attention_layer_kv", [
    Pure, AttrSizedOperandSegments]> {
  let summary = "a cross-attention layer's keys and values of a memory";
  let description = [{
    The key/value half of `sqa.attention_layer` with a memory, computed once
    so that decode steps (`sqa.attention_layer_decode` without `kv_weights`)
    can attend to it: `k = m w_k + b_k`, `v = m w_v + b_v`, split into heads
    (head-major columns), RoPE on k as the forward applies it (memory
    position `t`, unless `queries_only`).

    | operand | shape |
    |---------|-------|
    | memory m | `[B, T, d]` |
    | w_k, w_v | `[d, Hkv*dh]` |
    | b_k, b_v (each optional) | `[Hkv*dh]` |
    | key_init, value_init / results | `[B, Hkv, T, dh]` |

    ```mlir
    %k, %v = sqa.attention_layer_kv ins(%m : tensor<?x?x64xf32>)
               weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
               outs(%ki, %vi : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
               {heads = #sqa.heads<sqa, total = 8>}
               -> tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
    ```
  }];

  let arguments = (ins
    RankedTensorOf<[F32, F16, BF16]>:$memory,
    RankedTensorOf<[F32, F16, BF16]>:$w_k,
    RankedTensorOf<[F32, F16, BF16]>:$w_v,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_k,
    Optional<RankedTensorOf<[F32, F16, BF16]>>:$b_v,
    RankedTensorOf<[F32, F16, BF16]>:$key_init,
    RankedTensorOf<[F32, F16, BF16]>:$value_init,
    SQA_HeadsAttr:$heads,
    OptionalAttr<SQA_RopeAttr>:$rope);
  let results = (outs AnyRankedTensor:$key, AnyRankedTensor:$value);

  let assemblyFormat = [{
    `ins` `(` $memory `:` type($memory) `)`
    `weights` `(` $w_k `,` $w_v `:` type($w_k) `,` type($w_v) `)`
    (`bias_k` `(` $b_k^ `:` type($b_k) `)`)?
    (`bias_v` `(` $b_v^ `:` type($b_v) `)`)?
    `outs` `(` $key_init `,` $value_init `:` type($key_init) `,`
      type($value_init) `)`
    attr-dict `->` type($key) `,` type($value)
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    int64_t getModelDim() {
      return getMemory().getType().getDimSize(2);
    }
    int64_t getHeadDim() { return getModelDim() / getHeads().getTotal(); }
  }];
}

def SQA_DecodeOp : SQA_Op<"decode", [
    AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "attention of new tokens against a KV cache (serving decode)";
  let description = [{
    One decode step against per-row KV caches, on buffers (it updates the
    caches in place), layout BHSD (BSHD arguments are transposed views):

    | operand | shape |
    |---------|-------|
    | query | `[B, Hq, N, D]`: the `N` new query rows of each batch row |
    | key_cache | `[B, Hkv, C, D]` (C = capacity) |
    | value_cache | `[B, Hkv, C, Dv]` |
    | cache_lens | `[B]` i64: valid tokens of each cache row before the step |
    | key_new, value_new (optional, together) | `[B, Hkv, N, D]`, `[B, Hkv, N, Dv]` |
    | out | `[B, max(Hq, Hkv), N, Dv]` |

    With `key_new`/`value_new`, row `b`'s new tokens are first copied into
    its caches at positions `[cache_lens[b], cache_lens[b] + N)` and the row
    attends to `L_b = cache_lens[b] + N` keys; without them (cross-attention
    to a fixed memory) to `L_b = cache_lens[b]` keys. Query row `i` of batch
    row `b` sits at the end of its cache row: its diagonal is key
    `L_b - N + i`, and `mask` (causal, window) is read with
    `isKeyVisible` from there. Decode rows are always aligned to the end of
    their row, so a restrictive mask must say `alignment = bottom_right`
    (for a prefill with S = T both alignments agree). Keys at or past `L_b`
    are never read. A row that sees no key yields 0. `cache_lens` is not
    changed: the caller advances it.

    The caller guarantees `0 <= cache_lens[b]` and `L_b <= C` (the `sqa-aot`
    entry layer checks it and returns a status code). Heads, scale and the
    head mapping are those of `sqa.attention`; the same size limits apply.

    ```mlir
    sqa.decode query(%q : memref<?x8x?x64xf32>)
        cache(%kc, %vc : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
        lengths(%lens : memref<?xi64>)
        append(%kn, %vn : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
        outs(%out : memref<?x8x?x64xf32>)
        {mask = #sqa.mask<causal = true, alignment = bottom_right>}
    ```
  }];

  let arguments = (ins
    AnyMemRef:$query,
    AnyMemRef:$key_cache,
    AnyMemRef:$value_cache,
    MemRefOf<[I64]>:$cache_lens,
    Optional<AnyMemRef>:$key_new,
    Optional<AnyMemRef>:$value_new,
    AnyMemRef:$out,
    OptionalAttr<F32Attr>:$scale,
    OptionalAttr<SQA_MaskAttr>:$mask,
    OptionalAttr<SQA_HeadsAttr>:$heads);

  let assemblyFormat = [{
    `query` `(` $query `:` type($query) `)`
    `cache` `(` $key_cache `,` $value_cache `:` type($key_cache) `,`
      type($value_cache) `)`
    `lengths` `(` $cache_lens `:` type($cache_lens) `)`
    (`append` `(` $key_new^ `,` $value_new `:` type($key_new) `,`
      type($value_new) `)`)?
    `outs` `(` $out `:` type($out) `)`
    attr-dict
  }];

  let hasVerifier = 1;

  let extraClassDeclaration = [{
    MemRefType getQueryType() { return getQuery().getType(); }
    MemRefType getKeyCacheType() { return getKeyCache().getType(); }
    MemRefType getValueCacheType() { return getValueCache().getType(); }
    MemRefType getOutType() { return getOut().getType(); }
    int64_t getNumQueryHeads() { return getQueryType().getDimSize(1); }
    int64_t getNumKVHeads() { return getKeyCacheType().getDimSize(1); }
    int64_t getHeadDim() { return getQueryType().getDimSize(3); }
    int64_t getValueHeadDim() { return getValueCacheType().getDimSize(3); }
    bool hasAppend() { return static_cast<bool>(getKeyNew()); }
    HeadMapping getHeadMapping() {
      return {getNumQueryHeads(), getNumKVHeads()};
    }
    /// `scale` if set, else 1 / sqrt(D).
    float getScaleOrDefault();
    /// The mask if it hides anything, else null.
    MaskAttr getEffectiveMask();
  }];
}

#endif // SQA_OPS_TD
