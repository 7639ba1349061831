//===- OptionLimits.h - Valid ranges of kernel-shape options ---*- C++ -*-===//
//
// One place for the ranges that sqa-tile-attention, sqa-lower-projections
// and the pipelines accept (docs/design.md, "Size limits"). The kernels
// unroll mr x nr register tiles and compute block bounds in int64; outside
// these ranges they would take unbounded time to build or overflow.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_OPTIONLIMITS_H
#define SQA_TRANSFORMS_OPTIONLIMITS_H

#include "mlir/IR/Operation.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

namespace mlir::sqa {

/// f32 lanes per vector (8 for AVX2, 16 for AVX-512; 64 leaves room).
constexpr int64_t kMaxVectorWidth = 64;
/// Rows (mr) and vectors per row (nr) of an unrolled micro-kernel.
constexpr int64_t kMaxRowsPerKernel = 32;
constexpr int64_t kMaxVectorsPerKernel = 16;
/// Query rows per tile, keys per block, GEMM cache blocks (kc, nc).
constexpr int64_t kMaxQueryTile = int64_t(1) << 16;
constexpr int64_t kMaxBlock = int64_t(1) << 16;

/// "" if `lo <= value <= hi`, else "NAME must be in [lo, hi], got VALUE".
inline std::string checkOptionRange(llvm::StringRef name, int64_t value,
                                    int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi)
    return "";
  std::string message;
  llvm::raw_string_ostream(message)
      << name << " must be in [" << lo << ", " << hi << "], got " << value;
  return message;
}

/// Emits the first non-empty `checkOptionRange` message at `op`'s location;
/// failure if there was one.
inline LogicalResult emitOptionErrors(Operation *op,
                                      llvm::ArrayRef<std::string> errors) {
  for (const std::string &error : errors)
    if (!error.empty())
      return emitError(op->getLoc()) << error;
  return success();
}

} // namespace mlir::sqa

#endif // SQA_TRANSFORMS_OPTIONLIMITS_H
