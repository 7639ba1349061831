//===- SQAAttrs.h - SQA attributes ------------------------------*- C++ -*-===//

#ifndef SQA_IR_SQAATTRS_H
#define SQA_IR_SQAATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Support/LLVM.h"

#include <optional>
#include <string>

#include "SQA/IR/SQAEnums.h.inc"

namespace mlir::sqa {

/// Head counts of one configuration, independent of any MLIR context so that
/// drivers can resolve and report configurations before building IR.
struct HeadCounts {
  int64_t total = 0;
  int64_t query = 0;
  int64_t kv = 0;
};

/// Limits on what the kernels index, so that their int64 index math cannot
/// overflow (docs/design.md, "Size limits"): head counts and head dims fit
/// 16 bits, so a product of heads, head dim and one sequence length stays
/// below 2^32 times that length; window bounds and RoPE position offsets
/// are added to sequence positions, so they stay far below 2^63.
constexpr int64_t kMaxHeads = int64_t(1) << 16;
constexpr int64_t kMaxHeadDim = int64_t(1) << 16;
constexpr int64_t kMaxWindow = int64_t(1) << 40;
constexpr int64_t kMaxPositionOffset = int64_t(1) << 40;

/// Checks that the counts are positive, at most kMaxHeads, that neither exceeds
/// `total`, and that the larger of query/kv is a multiple of the smaller.
/// Returns an empty string on success, else a message naming the numbers.
std::string verifyHeadCounts(const HeadCounts &counts);

/// Resolves a named preset from the baseline head count (and the group count
/// for GQA). On failure returns std::nullopt and sets `error`.
std::optional<HeadCounts> resolveHeadPreset(HeadVariant variant, int64_t total,
                                            std::optional<int64_t> groups,
                                            std::string &error);

} // namespace mlir::sqa

namespace mlir {
/// RoPE parameters (base, factor) are f64 literals in the IR.
template <> struct FieldParser<llvm::APFloat> {
  static FailureOr<llvm::APFloat> parse(AsmParser &parser) {
    double value;
    if (parser.parseFloat(value))
      return failure();
    return llvm::APFloat(value);
  }
};
} // namespace mlir

#define GET_ATTRDEF_CLASSES
#include "SQA/IR/SQAAttrs.h.inc"

#endif // SQA_IR_SQAATTRS_H
