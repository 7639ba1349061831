//===- SQAAttrs.cpp - SQA attributes --------------------------------------===//

#include "SQA/IR/SQAAttrs.h"
#include "SQA/IR/AttentionRules.h"
#include "SQA/IR/SQADialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::sqa;

#include "SQA/IR/SQAEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "SQA/IR/SQAAttrs.cpp.inc"

void SQADialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "SQA/IR/SQAAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// MaskAttr
//===----------------------------------------------------------------------===//

LogicalResult MaskAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               bool causal, MaskAlignment alignment,
                               int64_t windowLeft, int64_t windowRight) {
  if (windowLeft < -1)
    return emitError() << "window_left must be -1 (unbounded) or >= 0, got "
                       << windowLeft;
  if (windowRight < -1)
    return emitError() << "window_right must be -1 (unbounded) or >= 0, got "
                       << windowRight;
  // Kernels add the bounds to key positions in int64; a wider window sees
  // every key of any sequence they can index, which -1 already says.
  for (auto [name, bound] :
       {std::pair<StringRef, int64_t>{"window_left", windowLeft},
        {"window_right", windowRight}})
    if (bound > kMaxWindow)
      return emitError() << name << " (" << bound << ") exceeds " << kMaxWindow
                         << " (2^40); use -1 for an unbounded window";
  return success();
}

int64_t MaskAttr::getEffectiveRightBound() const {
  // Causal hides every key after the diagonal, which subsumes any window
  // extending to the right of it.
  if (getCausal())
    return 0;
  return getWindowRight();
}

bool MaskAttr::isVisible(int64_t queryPos, int64_t keyPos, int64_t queryLen,
                         int64_t keyLen) const {
  ScalarDomain d;
  return isKeyVisible(d, MaskBounds::get(*this),
                      queryPos + getDiagonalOffset(queryLen, keyLen), keyPos);
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

LogicalResult RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               RopeKind kind, llvm::APFloat baseValue,
                               llvm::APFloat factorValue,
                               int64_t originalMaxPositions,
                               int64_t positionOffset, bool queriesOnly) {
  double base = baseValue.convertToDouble();
  double factor = factorValue.convertToDouble();
  if (!(base > 0.0) || !std::isfinite(base))
    return emitError() << "rope base must be a positive finite number, got "
                       << base;
  if (!(factor >= 1.0) || !std::isfinite(factor))
    return emitError() << "rope factor must be a finite number >= 1, got "
                       << factor;
  if (originalMaxPositions <= 0)
    return emitError() << "rope original_max_positions must be positive, got "
                       << originalMaxPositions;
  if (positionOffset < 0)
    return emitError() << "rope position_offset must be >= 0, got "
                       << positionOffset;
  // Added to sequence positions in int64 at run time.
  if (positionOffset > kMaxPositionOffset)
    return emitError() << "rope position_offset (" << positionOffset
                       << ") exceeds " << kMaxPositionOffset << " (2^40)";
  return success();
}

//===----------------------------------------------------------------------===//
// Head configurations
//===----------------------------------------------------------------------===//

std::string mlir::sqa::verifyHeadCounts(const HeadCounts &counts) {
  std::string message;
  llvm::raw_string_ostream os(message);
  if (counts.total <= 0)
    os << "total heads must be positive, got " << counts.total;
  else if (counts.query <= 0)
    os << "query heads must be positive, got " << counts.query;
  else if (counts.kv <= 0)
    os << "key/value heads must be positive, got " << counts.kv;
  else if (counts.total > kMaxHeads)
    os << "total heads (" << counts.total << ") exceed the supported maximum ("
       << kMaxHeads << ")";
  else if (counts.query > counts.total)
    os << "query heads (" << counts.query << ") must not exceed total heads ("
       << counts.total << ")";
  else if (counts.kv > counts.total)
    os << "key/value heads (" << counts.kv << ") must not exceed total heads ("
       << counts.total << ")";
  else if (counts.query >= counts.kv && counts.query % counts.kv != 0)
    os << "query heads (" << counts.query
       << ") must be a multiple of key/value heads (" << counts.kv << ")";
  else if (counts.kv > counts.query && counts.kv % counts.query != 0)
    os << "key/value heads (" << counts.kv
       << ") must be a multiple of query heads (" << counts.query << ")";
  return message;
}

std::optional<HeadCounts>
mlir::sqa::resolveHeadPreset(HeadVariant variant, int64_t total,
                             std::optional<int64_t> groups,
                             std::string &error) {
  llvm::raw_string_ostream os(error);
  StringRef name = stringifyHeadVariant(variant);
  if (total <= 0) {
    os << "total heads must be positive, got " << total;
    return std::nullopt;
  }
  if (groups && variant != HeadVariant::GQA) {
    os << "preset '" << name << "' takes no group count";
    return std::nullopt;
  }
  // Presets that split H need it divisible by the split.
  auto needDivisible = [&](int64_t divisor) {
    if (total % divisor == 0)
      return true;
    os << "preset '" << name << "' needs total heads (" << total
       << ") divisible by " << divisor;
    return false;
  };

  HeadCounts counts{total, 0, 0};
  switch (variant) {
  case HeadVariant::MHA:
    counts.query = counts.kv = total;
    break;
  case HeadVariant::GQA:
    if (!groups) {
      os << "preset 'gqa' needs a group count";
      return std::nullopt;
    }
    if (*groups <= 1 || *groups >= total) {
      os << "preset 'gqa' needs 1 < groups (" << *groups << ") < total heads ("
         << total << ")";
      return std::nullopt;
    }
    counts.query = total;
    counts.kv = *groups;
    break;
  case HeadVariant::MQA:
    counts.query = total;
    counts.kv = 1;
    break;
  case HeadVariant::SQA:
    if (!needDivisible(4))
      return std::nullopt;
    counts.query = total / 2;
    counts.kv = total / 4;
    break;
  case HeadVariant::SSQA:
    if (!needDivisible(2))
      return std::nullopt;
    counts.query = counts.kv = total / 2;
    break;
  case HeadVariant::XSQA:
    if (!needDivisible(4))
      return std::nullopt;
    counts.query = counts.kv = total / 4;
    break;
  case HeadVariant::XSMQA:
    if (!needDivisible(4))
      return std::nullopt;
    counts.query = total / 4;
    counts.kv = 1;
    break;
  case HeadVariant::RSQA:
    if (!needDivisible(4))
      return std::nullopt;
    counts.query = total / 4;
    counts.kv = total / 2;
    break;
  }
  std::string invalid = verifyHeadCounts(counts);
  if (!invalid.empty()) {
    os << "preset '" << name << "': " << invalid;
    return std::nullopt;
  }
  return counts;
}

//===----------------------------------------------------------------------===//
// HeadsAttr
//===----------------------------------------------------------------------===//

LogicalResult HeadsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t total, int64_t query, int64_t kv) {
  std::string invalid = verifyHeadCounts({total, query, kv});
  if (!invalid.empty())
    return emitError() << invalid;
  return success();
}

HeadsAttr HeadsAttr::getPreset(function_ref<InFlightDiagnostic()> emitError,
                               MLIRContext *context, HeadVariant variant,
                               int64_t total, std::optional<int64_t> groups) {
  std::string error;
  std::optional<HeadCounts> counts =
      resolveHeadPreset(variant, total, groups, error);
  if (!counts) {
    emitError() << error;
    return {};
  }
  return HeadsAttr::getChecked(emitError, context, counts->total, counts->query,
                               counts->kv);
}

// #sqa.heads<[preset ,] key = value (, key = value)*>
Attribute HeadsAttr::parse(AsmParser &parser, Type) {
  SMLoc loc = parser.getCurrentLocation();
  auto emitError = [&]() { return parser.emitError(loc); };
  if (parser.parseLess())
    return {};

  std::optional<HeadVariant> variant;
  std::optional<int64_t> total, query, kv, groups;
  bool first = true;
  do {
    SMLoc keyLoc = parser.getCurrentLocation();
    StringRef key;
    if (parser.parseKeyword(&key))
      return {};
    // Only the first entry may be a bare preset name.
    if (failed(parser.parseOptionalEqual())) {
      if (!first) {
        parser.emitError(keyLoc) << "expected '=' after '" << key << "'";
        return {};
      }
      first = false;
      variant = symbolizeHeadVariant(key);
      if (!variant) {
        parser.emitError(keyLoc)
            << "unknown head preset '" << key
            << "'; expected mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa or rsqa";
        return {};
      }
      continue;
    }
    first = false;
    std::optional<int64_t> *slot =
        llvm::StringSwitch<std::optional<int64_t> *>(key)
            .Case("total", &total)
            .Case("query", &query)
            .Case("kv", &kv)
            .Case("groups", &groups)
            .Default(nullptr);
    if (!slot) {
      parser.emitError(keyLoc) << "unknown head parameter '" << key
                               << "'; expected total, query, kv or groups";
      return {};
    }
    if (slot->has_value()) {
      parser.emitError(keyLoc) << "head parameter '" << key << "' given twice";
      return {};
    }
    int64_t value;
    if (parser.parseInteger(value))
      return {};
    *slot = value;
  } while (succeeded(parser.parseOptionalComma()));
  if (parser.parseGreater())
    return {};

  if (!total) {
    parser.emitError(loc) << "head configuration needs 'total'";
    return {};
  }
  MLIRContext *context = parser.getContext();
  if (variant) {
    if (query || kv) {
      parser.emitError(loc)
          << "preset '" << stringifyHeadVariant(*variant)
          << "' fixes query and kv; give only total"
          << (*variant == HeadVariant::GQA ? " and groups" : "");
      return {};
    }
    return HeadsAttr::getPreset(emitError, context, *variant, *total, groups);
  }
  if (groups) {
    parser.emitError(loc) << "'groups' is only meaningful with the gqa preset";
    return {};
  }
  if (!query || !kv) {
    parser.emitError(loc)
        << "head configuration needs 'query' and 'kv' (or a preset name)";
    return {};
  }
  return HeadsAttr::getChecked(emitError, context, *total, *query, *kv);
}

void HeadsAttr::print(AsmPrinter &printer) const {
  printer << "<total = " << getTotal() << ", query = " << getQuery()
          << ", kv = " << getKv() << ">";
}
