//===- AttentionConfig.cpp - Configurations, kernel modules, C sources ----===//

#include "DriverSupport.h"
#include "sqa/AOT/AttentionLibrary.h"

#include "SQA/IR/SQADialect.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

StringRef aot::stringifyElementKind(ElementKind kind) {
  switch (kind) {
  case ElementKind::F32:
    return "f32";
  case ElementKind::F16:
    return "f16";
  case ElementKind::BF16:
    return "bf16";
  }
  llvm_unreachable("unknown element kind");
}

std::optional<ElementKind> aot::parseElementKind(StringRef text) {
  return llvm::StringSwitch<std::optional<ElementKind>>(text)
      .Case("f32", ElementKind::F32)
      .Case("f16", ElementKind::F16)
      .Case("bf16", ElementKind::BF16)
      .Default(std::nullopt);
}

float AttentionConfig::effectiveScale() const {
  return scale ? *scale : 1.0f / std::sqrt(static_cast<float>(headDim));
}

static bool isCIdentifier(StringRef name) {
  if (name.empty() || llvm::isDigit(name.front()))
    return false;
  return llvm::all_of(name,
                      [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

ArrayRef<StringRef> aot::supportedChips() {
  static const StringRef chips[] = {"sm_80", "sm_86", "sm_87",
                                    "sm_89", "sm_90", "sm_90a"};
  return chips;
}

/// Elements of a layer's largest static operand (a weight matrix), or
/// nullopt if its byte size overflows int64.
static std::optional<int64_t>
largestLayerOperandBytes(const AttentionConfig &config) {
  std::optional<int64_t> modelDim =
      llvm::checkedMul(config.heads.total, config.headDim);
  std::optional<int64_t> width = llvm::checkedMul(
      std::max(config.heads.query, config.heads.kv), config.headDim);
  if (!modelDim || !width)
    return std::nullopt;
  std::optional<int64_t> elements = llvm::checkedMul(*modelDim, *width);
  return elements ? llvm::checkedMul(*elements, int64_t(4)) : std::nullopt;
}

std::string AttentionConfig::validate() const {
  std::string message;
  llvm::raw_string_ostream os(message);
  std::string invalidHeads = verifyHeadCounts(heads);
  if (!invalidHeads.empty())
    os << invalidHeads;
  else if (heads.total > kMaxHeads)
    os << "at most " << kMaxHeads << " heads are supported, got "
       << heads.total;
  else if (headDim <= 0)
    os << "head dim must be positive, got " << headDim;
  else if (valueHeadDim <= 0)
    os << "value head dim must be positive, got " << valueHeadDim;
  else if (headDim > kMaxHeadDim || valueHeadDim > kMaxHeadDim)
    os << "head dims of at most " << kMaxHeadDim << " are supported, got "
       << headDim << " and " << valueHeadDim;
  else if (windowLeft < -1 || windowRight < -1)
    os << "window bounds must be -1 (unbounded) or >= 0, got " << windowLeft
       << "," << windowRight;
  else if (scale && !std::isfinite(*scale))
    os << "scale must be finite, got " << *scale;
  else if (!isCIdentifier(name))
    os << "name '" << name << "' is not a C identifier";
  else if (target == Target::CUDA && layer)
    os << "--layer is not available for --target cuda yet (attention only)";
  else if (target == Target::CUDA && elementKind != ElementKind::F32 &&
           (headDim % 16 != 0 || valueHeadDim % 16 != 0))
    os << "CUDA tensor-core kernels need head dims that are multiples of 16, "
          "got "
       << headDim << " and " << valueHeadDim << " (f32 has no such limit)";
  else if (target == Target::CUDA &&
           !llvm::is_contained(supportedChips(), StringRef(chip)))
    os << "unsupported --chip '" << chip << "'; expected one of "
       << llvm::join(supportedChips(), ", ");
  else if (layer && valueHeadDim != headDim)
    os << "a layer has one head dim; value head dim (" << valueHeadDim
       << ") must equal head dim (" << headDim << ")";
  else if (layer && layout != Layout::BHSD)
    os << "--layout applies to attention libraries; a layer takes x as "
          "[B, S, d_model]";
  else if (layer && !largestLayerOperandBytes(*this))
    os << "the layer's weights (d_model " << heads.total << " x " << headDim
       << " by up to " << std::max(heads.query, heads.kv) << " x " << headDim
       << ") overflow int64 bytes";
  else if (layer && layer->rope && headDim % 2 != 0)
    os << "RoPE needs an even head dim, got " << headDim;
  else if (layer && layer->rope &&
           (!(layer->ropeBase > 0) || !std::isfinite(layer->ropeBase) ||
            !(layer->ropeFactor >= 1) || !std::isfinite(layer->ropeFactor) ||
            layer->ropeOriginalMaxPositions <= 0 ||
            layer->ropePositionOffset < 0))
    os << "invalid RoPE parameters: base must be > 0, factor >= 1, "
          "original max positions > 0, offset >= 0";
  else if (layer && layer->ropeQueriesOnly && !layer->crossAttention)
    os << "--rope-queries-only is for cross-attention (--cross-attention)";
  return message;
}

std::string AttentionConfig::describe() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (!variant.empty())
    os << "variant=" << variant << " ";
  os << "heads=" << heads.total << " q_heads=" << heads.query
     << " kv_heads=" << heads.kv << " out_heads=" << outputHeads()
     << " head_dim=" << headDim << " value_head_dim=" << valueHeadDim
     << " dtype=" << stringifyElementKind(elementKind)
     << " layout=" << (layout == Layout::BHSD ? "bhsd" : "bshd") << " causal="
     << (causal ? stringifyMaskAlignment(alignment) : StringRef("none"))
     << " window=" << windowLeft << "," << windowRight;
  // The alignment places windows too: record it whenever a mask applies.
  if (causal || windowLeft >= 0 || windowRight >= 0)
    os << " alignment=" << stringifyMaskAlignment(alignment);
  os << " scale=" << llvm::formatv("{0:e}", effectiveScale());
  if (target == Target::CUDA)
    os << " target=cuda chip=" << chip;
  if (layer) {
    os << " layer=" << (layer->crossAttention ? "cross" : "self")
       << " d_model=" << modelDim() << " rope="
       << (layer->rope ? stringifyRopeKind(*layer->rope) : StringRef("none"));
    if (layer->rope)
      os << " rope_base=" << llvm::formatv("{0:e}", layer->ropeBase)
         << " rope_factor=" << llvm::formatv("{0:e}", layer->ropeFactor)
         << " rope_original_max=" << layer->ropeOriginalMaxPositions
         << " rope_offset=" << layer->ropePositionOffset
         << " rope_queries_only=" << (layer->ropeQueriesOnly ? 1 : 0);
    os << " bias=" << (layer->biasQ ? "q" : "") << (layer->biasK ? "k" : "")
       << (layer->biasV ? "v" : "") << (layer->biasO ? "o" : "");
  }
  return text;
}
