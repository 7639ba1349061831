//===- PairDotLoop.h - Register-tile bf16 pair-dot loop ---------*- C++ -*-===//
//
// The bf16 counterpart of OuterProductLoop.h for CPUs with AVX-512 BF16: an
// mr x nr tile of f32 vector accumulators updated along a reduction
// dimension taken two elements at a time by vdpbf16ps
// (x86vector.avx512.dot), which adds a[2l] * b[2l] + a[2l+1] * b[2l+1] to
// lane l exactly (bf16 products fit in f32) with one f32 rounding.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_TRANSFORMS_PAIRDOTLOOP_H
#define SQA_LIB_TRANSFORMS_PAIRDOTLOOP_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mlir::sqa {

/// Emits `scf.for k = lb to ub` (k counts pairs) carrying `init` (mr * nr
/// vector<Wxf32>, accumulator [i * nr + v]). Each step loads nr
/// vector<2Wxbf16> with `loadPairs(k, v)` (lane l's pair at 2l, 2l+1) and mr
/// i32 scalars with `loadScalarPair(k, i)` (a bf16 pair, the first element
/// in the low half), broadcasts each pair to every lane and issues one
/// x86vector.avx512.dot per (row, vector).
SmallVector<Value>
emitPairDotLoop(OpBuilder &b, Location loc, Value lb, Value ub, ValueRange init,
                int64_t mr, int64_t nr,
                function_ref<Value(Value k, int64_t v)> loadPairs,
                function_ref<Value(Value k, int64_t i)> loadScalarPair);

} // namespace mlir::sqa

#endif // SQA_LIB_TRANSFORMS_PAIRDOTLOOP_H
