//===- VectorExp2.cpp - The CPU kernels' vector exp2 ----------------------===//

#include "VectorExp2.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::sqa;

Value mlir::sqa::emitVectorExp2(LoweringBuilder &lb, Value x) {
  OpBuilder &b = lb.getBuilder();
  Location loc = lb.getLoc();
  auto vecType = cast<VectorType>(x.getType());
  auto intType = VectorType::get(vecType.getShape(), b.getI32Type());
  // max without NaN handling: one vmaxps.
  x = arith::MaxNumFOp::create(b, loc, x, lb.floatLike(x, -125.0),
                               arith::FastMathFlags::nnan);
  Value n = math::RoundEvenOp::create(b, loc, x);
  Value f = lb.subF(x, n);
  static constexpr double ln2 = 0.6931471805599453;
  double coefficient[7];
  coefficient[0] = 1.0;
  for (int k = 1; k <= 6; ++k)
    coefficient[k] = coefficient[k - 1] * ln2 / k;
  Value p = lb.floatLike(x, coefficient[6]);
  for (int k = 5; k >= 0; --k)
    p = math::FmaOp::create(b, loc, p, f, lb.floatLike(x, coefficient[k]));
  Value exponent = arith::ShLIOp::create(
      b, loc, arith::FPToSIOp::create(b, loc, intType, n),
      arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(intType, b.getI32IntegerAttr(23))));
  Value bits = arith::AddIOp::create(
      b, loc, arith::BitcastOp::create(b, loc, intType, p), exponent);
  return arith::BitcastOp::create(b, loc, vecType, bits);
}
