//===- OuterProductLoop.h - Register-tile FMA loop shared by kernels -*- C++
//-*-===//
//
// The inner loop of every CPU micro-kernel here (Q.K^T, P.V, projection
// GEMMs): an mr x nr tile of vector accumulators updated by broadcast-FMA
// outer products along a reduction dimension.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_TRANSFORMS_OUTERPRODUCTLOOP_H
#define SQA_LIB_TRANSFORMS_OUTERPRODUCTLOOP_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mlir::sqa {

/// Emits `scf.for k = lb to ub` carrying `init` (mr * nr vectors of
/// `vectorType`, row-major: accumulator [i * nr + v]). Each step loads nr
/// vectors with `loadVector(k, v)` and mr f32 scalars with
/// `loadScalar(k, i)`, broadcasts each scalar and issues one vector.fma per
/// (row, vector). Returns the final accumulators.
SmallVector<Value>
emitOuterProductLoop(OpBuilder &b, Location loc, Value lb, Value ub,
                     ValueRange init, int64_t mr, int64_t nr,
                     VectorType vectorType,
                     function_ref<Value(Value k, int64_t v)> loadVector,
                     function_ref<Value(Value k, int64_t i)> loadScalar);

} // namespace mlir::sqa

#endif // SQA_LIB_TRANSFORMS_OUTERPRODUCTLOOP_H
