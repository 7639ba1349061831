//===- SQAAttrs.td - SQA attributes ------------------------*- tablegen -*-===//

#ifndef SQA_ATTRS_TD
#define SQA_ATTRS_TD

include "SQA/IR/SQABase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def SQA_MaskAlignment : I32EnumAttr<"MaskAlignment",
    "where the diagonal of a causal or window mask starts", [
      I32EnumAttrCase<"TopLeft", 0, "top_left">,
      I32EnumAttrCase<"BottomRight", 1, "bottom_right">
    ]> {
  let cppNamespace = "::mlir::sqa";
  let genSpecializedAttr = 0;
}

def SQA_HeadVariant : I32EnumAttr<"HeadVariant",
    "named head configurations", [
      I32EnumAttrCase<"MHA", 0, "mha">,
      I32EnumAttrCase<"GQA", 1, "gqa">,
      I32EnumAttrCase<"MQA", 2, "mqa">,
      I32EnumAttrCase<"SQA", 3, "sqa">,
      I32EnumAttrCase<"SSQA", 4, "ssqa">,
      I32EnumAttrCase<"XSQA", 5, "xsqa">,
      I32EnumAttrCase<"XSMQA", 6, "xsmqa">,
      I32EnumAttrCase<"RSQA", 7, "rsqa">
    ]> {
  let cppNamespace = "::mlir::sqa";
  let genSpecializedAttr = 0;
}

def SQA_RopeKind : I32EnumAttr<"RopeKind",
    "rotary position embedding scheme", [
      I32EnumAttrCase<"Rotary", 0, "rotary">,
      I32EnumAttrCase<"Linear", 1, "linear">,
      I32EnumAttrCase<"DynamicNTK", 2, "dynamic_ntk">
    ]> {
  let cppNamespace = "::mlir::sqa";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

def SQA_RopeAttr : SQA_Attr<"Rope", "rope"> {
  let summary = "rotary position embedding of an attention layer";
  let description = [{
    RoPE in the `rotate_half` convention (HF Llama, GPT-NeoX), applied to q
    and k after the head split (to q only with `queries_only`, as RxT's
    memory cross-attention does). For i < d/2 the pair (x[i], x[i + d/2])
    is rotated by `p * base^(-2i/d)` at position `p = position_offset + row`.

    * `rotary`: as above.
    * `linear`: positions divided by `factor` (position interpolation).
    * `dynamic_ntk`: when `L = position_offset + max(S, T)` exceeds
      `original_max_positions`, the base becomes
      `base * (factor * L / original_max_positions - (factor - 1))^(d / (d - 2))`.

    `position_offset` is at most 2^40 (added to positions in int64).

    ```mlir
    #sqa.rope<kind = rotary, base = 10000.0>
    #sqa.rope<kind = dynamic_ntk, factor = 2.0, original_max_positions = 1024>
    ```
  }];
  let parameters = (ins
    "::mlir::sqa::RopeKind":$kind,
    DefaultValuedParameter<"::llvm::APFloat", "::llvm::APFloat(10000.0)">:$base,
    DefaultValuedParameter<"::llvm::APFloat", "::llvm::APFloat(1.0)">:$factor,
    DefaultValuedParameter<"int64_t", "2048">:$original_max_positions,
    DefaultValuedParameter<"int64_t", "0">:$position_offset,
    DefaultValuedParameter<"bool", "false">:$queries_only);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    double getBaseValue() const { return getBase().convertToDouble(); }
    double getFactorValue() const { return getFactor().convertToDouble(); }
  }];
}

//===----------------------------------------------------------------------===//
// MaskAttr
//===----------------------------------------------------------------------===//

def SQA_MaskAttr : SQA_Attr<"Mask", "mask"> {
  let summary = "causal and sliding-window mask, without an S x T tensor";
  let description = [{
    Which keys a query may attend to. With S queries and T keys, query row
    `i` sits on the key diagonal `i + offset`, where `offset` is 0 for
    `top_left` alignment (PyTorch `is_causal`) and `T - S` for
    `bottom_right` alignment (FlashAttention >= 2.1, KV-cache prefill); the
    two agree when S = T. Key `j` is visible to query `i` iff

    * `causal` is false or `j <= i + offset`, and
    * `window_left` is -1 or `j >= i + offset - window_left`, and
    * `window_right` is -1 or `j <= i + offset + window_right`.

    -1 means unbounded on that side; a bound is at most 2^40 (kernels add
    it to key positions in int64). A query row that sees no key yields
    zeros, never NaN.

    ```mlir
    #sqa.mask<causal = true, alignment = bottom_right>
    #sqa.mask<window_left = 128, window_right = 0>
    ```
  }];
  let parameters = (ins
    DefaultValuedParameter<"bool", "false">:$causal,
    DefaultValuedParameter<"::mlir::sqa::MaskAlignment",
                           "::mlir::sqa::MaskAlignment::TopLeft">:$alignment,
    DefaultValuedParameter<"int64_t", "-1">:$window_left,
    DefaultValuedParameter<"int64_t", "-1">:$window_right);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True if the mask hides any key at all.
    bool isRestrictive() const {
      return getCausal() || getWindowLeft() >= 0 || getWindowRight() >= 0;
    }
    /// The right bound relative to the diagonal that takes effect, or -1.
    int64_t getEffectiveRightBound() const;
    /// Key position of query row 0's diagonal: 0 or `keyLen - queryLen`.
    int64_t getDiagonalOffset(int64_t queryLen, int64_t keyLen) const {
      return getAlignment() == MaskAlignment::BottomRight ? keyLen - queryLen
                                                          : 0;
    }
    /// Scalar semantics, the single source of truth for tests and oracles.
    bool isVisible(int64_t queryPos, int64_t keyPos, int64_t queryLen,
                   int64_t keyLen) const;
  }];
}

//===----------------------------------------------------------------------===//
// HeadsAttr
//===----------------------------------------------------------------------===//

def SQA_HeadsAttr : SQA_Attr<"Heads", "heads"> {
  let summary = "head configuration of an attention layer";
  let description = [{
    `total` is the baseline head count H that splits the model dimension
    (d_head = d_model / H); `query` and `kv` are the query heads Hq and the
    key/value heads Hkv. The larger of Hq and Hkv must be a multiple of the
    smaller; `total` is at most 65536. Written either with numbers or as a
    named preset that resolves
    to numbers from `total` (and `groups` for GQA):

    | preset  | query | kv     |
    |---------|-------|--------|
    | `mha`   | H     | H      |
    | `gqa`   | H     | groups |
    | `mqa`   | H     | 1      |
    | `sqa`   | H/2   | H/4    |
    | `ssqa`  | H/2   | H/2    |
    | `xsqa`  | H/4   | H/4    |
    | `xsmqa` | H/4   | 1      |
    | `rsqa`  | H/4   | H/2    |

    ```mlir
    #sqa.heads<total = 16, query = 8, kv = 4>
    #sqa.heads<ssqa, total = 16>           // prints as query = 8, kv = 8
    #sqa.heads<gqa, total = 16, groups = 4>
    ```
  }];
  let parameters = (ins "int64_t":$total, "int64_t":$query, "int64_t":$kv);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Resolves a named preset; emits through `emitError` on failure.
    static HeadsAttr getPreset(
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError,
        ::mlir::MLIRContext *context, HeadVariant variant, int64_t total,
        std::optional<int64_t> groups = std::nullopt);
    /// Reverse SQA: more key/value heads than query heads.
    bool isReverse() const { return getKv() > getQuery(); }
    /// Heads of the attention output: max(Hq, Hkv).
    int64_t getOutputHeads() const { return std::max(getQuery(), getKv()); }
  }];
}

//===----------------------------------------------------------------------===//
// GPULaunchAttr
//===----------------------------------------------------------------------===//

def SQA_GPULaunchAttr : SQA_Attr<"GPULaunch", "gpu_launch"> {
  let summary = "launch geometry of a kernel written by sqa-lower-attention-to-gpu";
  let description = [{
    Attached to each generated `gpu.func` (as `sqa.gpu_launch`) so that the
    launcher that `sqa-aot` generates, and the test doubles, compute the
    same grid as the lowering: `threads` per block; grid x =
    `ceil(q_len / rows_per_block) * batch`; grid y =
    `output_heads / heads_per_block`; `shared_memory_bytes` of dynamic
    shared memory. The kernel's parameters follow
    `include/sqa/Transforms/GPUKernelABI.def`.

    ```mlir
    #sqa.gpu_launch<threads = 128, rows_per_block = 32, heads_per_block = 2,
                    output_heads = 8, shared_memory_bytes = 46080>
    ```
  }];
  let parameters = (ins "int64_t":$threads, "int64_t":$rows_per_block,
                        "int64_t":$heads_per_block, "int64_t":$output_heads,
                        "int64_t":$shared_memory_bytes);
  let assemblyFormat = "`<` struct(params) `>`";
  let extraClassDeclaration = [{
    /// Grid x for `batch` rows of `queryLen` queries (no overflow check).
    int64_t getGridX(int64_t batch, int64_t queryLen) const {
      return (queryLen + getRowsPerBlock() - 1) / getRowsPerBlock() * batch;
    }
    int64_t getGridY() const { return getOutputHeads() / getHeadsPerBlock(); }
  }];
}

#endif // SQA_ATTRS_TD
