//===- LoweringBuilder.cpp - The IR domain of the attention rules ---------===//

#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/TypeUtilities.h"

#include <limits>

using namespace mlir;
using namespace mlir::sqa;

Value LoweringBuilder::index(int64_t value) {
  return arith::ConstantIndexOp::create(builder, loc, value);
}
Value LoweringBuilder::add(Value x, Value y) {
  return builder.createOrFold<arith::AddIOp>(loc, x, y);
}
Value LoweringBuilder::sub(Value x, Value y) {
  return builder.createOrFold<arith::SubIOp>(loc, x, y);
}
Value LoweringBuilder::mul(Value x, Value y) {
  return builder.createOrFold<arith::MulIOp>(loc, x, y);
}
Value LoweringBuilder::floorDiv(Value x, int64_t y) {
  if (y == 1)
    return x;
  return builder.createOrFold<arith::FloorDivSIOp>(loc, x, index(y));
}
Value LoweringBuilder::ceilDiv(Value x, int64_t y) {
  if (y == 1)
    return x;
  return builder.createOrFold<arith::CeilDivSIOp>(loc, x, index(y));
}
Value LoweringBuilder::divU(Value x, int64_t y) {
  if (y == 1)
    return x;
  return builder.createOrFold<arith::DivUIOp>(loc, x, index(y));
}
Value LoweringBuilder::divU(Value x, Value y) {
  return builder.createOrFold<arith::DivUIOp>(loc, x, y);
}
Value LoweringBuilder::remU(Value x, int64_t y) { return remU(x, index(y)); }
Value LoweringBuilder::remU(Value x, Value y) {
  return builder.createOrFold<arith::RemUIOp>(loc, x, y);
}
Value LoweringBuilder::minS(Value x, Value y) {
  return builder.createOrFold<arith::MinSIOp>(loc, x, y);
}
Value LoweringBuilder::maxS(Value x, Value y) {
  return builder.createOrFold<arith::MaxSIOp>(loc, x, y);
}
Value LoweringBuilder::cmp(arith::CmpIPredicate predicate, Value x, Value y) {
  return builder.createOrFold<arith::CmpIOp>(loc, predicate, x, y);
}
Value LoweringBuilder::andI(Value x, Value y) {
  return builder.createOrFold<arith::AndIOp>(loc, x, y);
}
Value LoweringBuilder::orI(Value x, Value y) {
  return builder.createOrFold<arith::OrIOp>(loc, x, y);
}
Value LoweringBuilder::trueValue() {
  return arith::ConstantIntOp::create(builder, loc, 1, 1);
}
Value LoweringBuilder::select(Value condition, Value x, Value y) {
  return builder.createOrFold<arith::SelectOp>(loc, condition, x, y);
}

Value LoweringBuilder::f32(float value) {
  return arith::ConstantOp::create(builder, loc,
                                   builder.getF32FloatAttr(value));
}
Value LoweringBuilder::floatLike(Value like, double value) {
  Type type = like.getType();
  auto elementType = cast<FloatType>(getElementTypeOrSelf(type));
  TypedAttr attr = builder.getFloatAttr(elementType, value);
  if (auto shaped = dyn_cast<ShapedType>(type))
    attr = DenseElementsAttr::get(shaped, attr);
  return arith::ConstantOp::create(builder, loc, attr);
}
Value LoweringBuilder::addF(Value x, Value y) {
  return arith::AddFOp::create(builder, loc, x, y);
}
Value LoweringBuilder::subF(Value x, Value y) {
  return arith::SubFOp::create(builder, loc, x, y);
}
Value LoweringBuilder::mulF(Value x, Value y) {
  return arith::MulFOp::create(builder, loc, x, y);
}
Value LoweringBuilder::divF(Value x, Value y) {
  return arith::DivFOp::create(builder, loc, x, y);
}
Value LoweringBuilder::maxF(Value x, Value y) {
  return arith::MaxNumFOp::create(builder, loc, x, y);
}
Value LoweringBuilder::fma(Value x, Value y, Value z) {
  auto contract = arith::FastMathFlags::contract;
  return arith::AddFOp::create(
      builder, loc, arith::MulFOp::create(builder, loc, x, y, contract), z,
      contract);
}
Value LoweringBuilder::exp(Value x) {
  return math::ExpOp::create(builder, loc, x);
}
Value LoweringBuilder::exp2Approx(Value x) {
  Type intType = builder.getI32Type();
  if (auto vector = dyn_cast<VectorType>(x.getType()))
    intType = vector.clone(intType);
  x = arith::MaxNumFOp::create(builder, loc, x, floatLike(x, -125.0),
                               arith::FastMathFlags::nnan);
  Value n = math::RoundEvenOp::create(builder, loc, x);
  Value f = subF(x, n);
  static constexpr double ln2 = 0.6931471805599453;
  double coefficient[7];
  coefficient[0] = 1.0;
  for (int k = 1; k <= 6; ++k)
    coefficient[k] = coefficient[k - 1] * ln2 / k;
  Value p = floatLike(x, coefficient[6]);
  for (int k = 5; k >= 0; --k)
    p = math::FmaOp::create(builder, loc, p, f, floatLike(x, coefficient[k]));
  TypedAttr shift = builder.getI32IntegerAttr(23);
  if (auto vector = dyn_cast<VectorType>(intType))
    shift = DenseElementsAttr::get(vector, shift);
  Value exponent = arith::ShLIOp::create(
      builder, loc, arith::FPToSIOp::create(builder, loc, intType, n),
      arith::ConstantOp::create(builder, loc, shift));
  Value bits = arith::AddIOp::create(
      builder, loc, arith::BitcastOp::create(builder, loc, intType, p),
      exponent);
  return arith::BitcastOp::create(builder, loc, x.getType(), bits);
}
Value LoweringBuilder::dim(Value memref, int64_t d) {
  return memref::DimOp::create(builder, loc, memref, d);
}
Value LoweringBuilder::load(Value memref, ValueRange indices) {
  return memref::LoadOp::create(builder, loc, memref, indices);
}
void LoweringBuilder::store(Value value, Value memref, ValueRange indices) {
  memref::StoreOp::create(builder, loc, value, memref, indices);
}
Value LoweringBuilder::log(Value x) {
  return math::LogOp::create(builder, loc, x);
}
Value LoweringBuilder::isNegInf(Value x) {
  return arith::CmpFOp::create(
      builder, loc, arith::CmpFPredicate::OEQ, x,
      floatLike(x, -std::numeric_limits<double>::infinity()));
}
Value LoweringBuilder::isPositive(Value x) {
  return arith::CmpFOp::create(builder, loc, arith::CmpFPredicate::OGT, x,
                               floatLike(x, 0.0));
}
Value LoweringBuilder::toF32(Value x) {
  Type f32Type = builder.getF32Type();
  Type type = x.getType();
  if (getElementTypeOrSelf(type) == f32Type)
    return x;
  if (auto shaped = dyn_cast<ShapedType>(type))
    return arith::ExtFOp::create(builder, loc, shaped.clone(f32Type), x);
  return arith::ExtFOp::create(builder, loc, f32Type, x);
}

void LoweringBuilder::forLoop(Value lb, Value ub, int64_t step,
                              function_ref<void(Value)> body) {
  forLoop(lb, ub, index(step), body);
}
void LoweringBuilder::forLoop(Value lb, Value ub, Value step,
                              function_ref<void(Value)> body) {
  auto loop = scf::ForOp::create(builder, loc, lb, ub, step);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(loop.getBody());
  body(loop.getInductionVar());
}
SmallVector<Value> LoweringBuilder::forLoop(
    Value lb, Value ub, int64_t step, ValueRange init,
    function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  return forLoop(lb, ub, index(step), init, body);
}
SmallVector<Value> LoweringBuilder::forLoop(
    Value lb, Value ub, Value step, ValueRange init,
    function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  auto loop = scf::ForOp::create(builder, loc, lb, ub, step, init);
  {
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToStart(loop.getBody());
    SmallVector<Value> next =
        body(loop.getInductionVar(), loop.getRegionIterArgs());
    scf::YieldOp::create(builder, loc, next);
  }
  return loop.getResults();
}
void LoweringBuilder::ifThen(Value condition, function_ref<void()> thenBody) {
  auto ifOp = scf::IfOp::create(builder, loc, condition,
                                /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(ifOp.thenBlock());
  thenBody();
}
void LoweringBuilder::ifThenElse(Value condition, function_ref<void()> thenBody,
                                 function_ref<void()> elseBody) {
  auto ifOp = scf::IfOp::create(builder, loc, condition,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(ifOp.thenBlock());
  thenBody();
  builder.setInsertionPointToStart(ifOp.elseBlock());
  elseBody();
}
SmallVector<Value>
LoweringBuilder::ifThenElse(Value condition, TypeRange types,
                            function_ref<SmallVector<Value>()> thenBody,
                            function_ref<SmallVector<Value>()> elseBody) {
  auto ifOp = scf::IfOp::create(builder, loc, types, condition,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(builder, loc, thenBody());
  builder.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(builder, loc, elseBody());
  return SmallVector<Value>(ifOp.getResults());
}
