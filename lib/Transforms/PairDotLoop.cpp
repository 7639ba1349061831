//===- PairDotLoop.cpp - Register-tile bf16 pair-dot loop -----------------===//

#include "PairDotLoop.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

using namespace mlir;

SmallVector<Value>
mlir::sqa::emitPairDotLoop(OpBuilder &b, Location loc, Value lb, Value ub,
                           ValueRange init, int64_t mr, int64_t nr,
                           function_ref<Value(Value, int64_t)> loadPairs,
                           function_ref<Value(Value, int64_t)> loadScalarPair) {
  auto accType = cast<VectorType>(init.front().getType());
  int64_t lanes = accType.getNumElements();
  auto pairType = VectorType::get({2 * lanes}, b.getBF16Type());
  auto wordType = VectorType::get({lanes}, b.getI32Type());
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(b, loc, lb, ub, one, init);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value k = loop.getInductionVar();
  ValueRange accs = loop.getRegionIterArgs();
  SmallVector<Value> vectors;
  for (int64_t v = 0; v < nr; ++v)
    vectors.push_back(loadPairs(k, v));
  SmallVector<Value> next;
  for (int64_t i = 0; i < mr; ++i) {
    // One 32-bit broadcast puts the pair in every lane (vpbroadcastd).
    Value words =
        vector::BroadcastOp::create(b, loc, wordType, loadScalarPair(k, i));
    Value pairs = vector::BitCastOp::create(b, loc, pairType, words);
    for (int64_t v = 0; v < nr; ++v)
      next.push_back(x86vector::DotBF16Op::create(
          b, loc, accType, accs[i * nr + v], vectors[v], pairs));
  }
  scf::YieldOp::create(b, loc, next);
  return loop.getResults();
}
