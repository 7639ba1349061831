//===- LoweringBuilder.h - The IR domain of the attention rules -----------===//
//
// One builder vocabulary for every sqa lowering: folding index arithmetic,
// f32 arithmetic on scalars or vectors (constants splat to the other
// operand's type), and structured loops and branches. It is also the IR
// domain of the templates in SQA/IR/AttentionRules.h, so a rule evaluated
// here emits exactly what it computes at compile time.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_UTILS_LOWERINGBUILDER_H
#define SQA_UTILS_LOWERINGBUILDER_H

#include "SQA/IR/AttentionRules.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir::sqa {

class LoweringBuilder {
public:
  using Int = Value;
  using Bool = Value;
  using Float = Value;

  LoweringBuilder(OpBuilder &builder, Location loc)
      : builder(builder), loc(loc) {}

  OpBuilder &getBuilder() { return builder; }
  Location getLoc() const { return loc; }

  // Index arithmetic; constant operands fold.
  Value index(int64_t value);
  Value add(Value x, Value y);
  Value add(Value x, int64_t y) { return y == 0 ? x : add(x, index(y)); }
  Value sub(Value x, Value y);
  Value mul(Value x, Value y);
  Value mul(Value x, int64_t y) { return y == 1 ? x : mul(x, index(y)); }
  Value floorDiv(Value x, int64_t y);
  Value ceilDiv(Value x, int64_t y);
  /// Unsigned division and remainder, for values known non-negative (cheaper
  /// than the floor forms).
  Value divU(Value x, int64_t y);
  Value divU(Value x, Value y);
  Value remU(Value x, int64_t y);
  Value remU(Value x, Value y);
  Value minS(Value x, Value y);
  Value maxS(Value x, Value y);
  Value cmp(arith::CmpIPredicate predicate, Value x, Value y);
  Value slt(Value x, Value y) { return cmp(arith::CmpIPredicate::slt, x, y); }
  Value sle(Value x, Value y) { return cmp(arith::CmpIPredicate::sle, x, y); }
  Value sgt(Value x, Value y) { return cmp(arith::CmpIPredicate::sgt, x, y); }
  Value sge(Value x, Value y) { return cmp(arith::CmpIPredicate::sge, x, y); }
  Value andI(Value x, Value y);
  Value orI(Value x, Value y);
  Value trueValue();
  Value select(Value condition, Value x, Value y);

  // f32 arithmetic on scalars or vectors.
  Value f32(float value);
  /// A constant of `like`'s type (splat for vectors).
  Value floatLike(Value like, double value);
  Value addF(Value x, Value y);
  Value subF(Value x, Value y);
  Value mulF(Value x, Value y);
  Value divF(Value x, Value y);
  /// Maximum that need not propagate NaN: scores are finite or -inf by
  /// construction.
  Value maxF(Value x, Value y);
  /// x * y + z, contractible into one FMA by the back end.
  Value fma(Value x, Value y, Value z);
  Value exp(Value x);
  /// 2^x for x <= 0 (scalar or vector f32): 2^round(x) put into the
  /// exponent field times a degree-6 Taylor polynomial of 2^f, |f| <= 1/2
  /// (relative error < 2e-7). x is clamped at -125, so -inf gives ~2^-125,
  /// not 0 (OnlineSoftmax's Exponential{zeroAtNegInf = false} guards it).
  /// No overflow, NaN or denormal handling: scores shifted by their row
  /// maximum never need it. The CPU kernels' exponential.
  Value exp2Approx(Value x);
  Value log(Value x);
  Value isNegInf(Value x);
  Value isPositive(Value x);
  Value selectF(Value condition, Value x, Value y) {
    return select(condition, x, y);
  }
  /// `x` as f32 (extended from f16/bf16; f32 unchanged).
  Value toF32(Value x);

  // Buffers: a dimension's size, scalar loads and stores.
  Value dim(Value memref, int64_t d);
  Value load(Value memref, ValueRange indices);
  void store(Value value, Value memref, ValueRange indices);

  // Structured control flow; bodies build at the start of their region.
  void forLoop(Value lb, Value ub, int64_t step,
               function_ref<void(Value)> body);
  void forLoop(Value lb, Value ub, Value step, function_ref<void(Value)> body);
  /// A loop carrying `init`; `body` returns the next values.
  SmallVector<Value>
  forLoop(Value lb, Value ub, int64_t step, ValueRange init,
          function_ref<SmallVector<Value>(Value, ValueRange)> body);
  SmallVector<Value>
  forLoop(Value lb, Value ub, Value step, ValueRange init,
          function_ref<SmallVector<Value>(Value, ValueRange)> body);
  void ifThen(Value condition, function_ref<void()> thenBody);
  void ifThenElse(Value condition, function_ref<void()> thenBody,
                  function_ref<void()> elseBody);
  SmallVector<Value> ifThenElse(Value condition, TypeRange types,
                                function_ref<SmallVector<Value>()> thenBody,
                                function_ref<SmallVector<Value>()> elseBody);

private:
  OpBuilder &builder;
  Location loc;
};

} // namespace mlir::sqa

#endif // SQA_UTILS_LOWERINGBUILDER_H
