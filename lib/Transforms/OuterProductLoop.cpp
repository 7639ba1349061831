//===- OuterProductLoop.cpp - Register-tile FMA loop shared by kernels ----===//

#include "OuterProductLoop.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

SmallVector<Value> mlir::sqa::emitOuterProductLoop(
    OpBuilder &b, Location loc, Value lb, Value ub, ValueRange init, int64_t mr,
    int64_t nr, VectorType vectorType,
    function_ref<Value(Value, int64_t)> loadVector,
    function_ref<Value(Value, int64_t)> loadScalar) {
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(b, loc, lb, ub, one, init);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value k = loop.getInductionVar();
  ValueRange accs = loop.getRegionIterArgs();
  SmallVector<Value> vectors;
  for (int64_t v = 0; v < nr; ++v)
    vectors.push_back(loadVector(k, v));
  SmallVector<Value> next;
  for (int64_t i = 0; i < mr; ++i) {
    Value scalar =
        vector::BroadcastOp::create(b, loc, vectorType, loadScalar(k, i));
    for (int64_t v = 0; v < nr; ++v)
      next.push_back(
          vector::FMAOp::create(b, loc, scalar, vectors[v], accs[i * nr + v]));
  }
  scf::YieldOp::create(b, loc, next);
  return loop.getResults();
}
