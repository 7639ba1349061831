//===- VectorExp2.h - The CPU kernels' vector exp2 ------------*- C++ -*-===//
//
// The exponential of the CPU flash kernels (forward and backward), shared so
// that both recompute exactly the same probabilities.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_TRANSFORMS_VECTOREXP2_H
#define SQA_LIB_TRANSFORMS_VECTOREXP2_H

#include "SQA/Utils/LoweringBuilder.h"

namespace mlir::sqa {

/// 2^x on a vector<N x f32> for x <= 0 (small positive x, as from rounding,
/// are fine): 2^round(x) put into the exponent field times a degree-6
/// Taylor polynomial of 2^f, |f| <= 1/2 (relative error < 2e-7). x is
/// clamped at -125, so -inf gives ~2^-125 (the softmax rules' select turns
/// hidden keys into exact zeros). About a third of the instructions of the
/// general math.exp expansion: no overflow, NaN or denormal handling, which
/// scores shifted by their row maximum (or lse) never need.
Value emitVectorExp2(LoweringBuilder &lb, Value x);

} // namespace mlir::sqa

#endif // SQA_LIB_TRANSFORMS_VECTOREXP2_H
