//===- LowerAttentionReference.cpp - Naive sqa.attention lowering ---------===//
//
// The reference lowering materializes the full score tensor. It favours
// obviousness over speed: every later kernel is checked against it.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERATTENTIONREFERENCE
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

static void yieldValue(OpBuilder &builder, Location loc, Value value) {
  linalg::YieldOp::create(builder, loc, ValueRange{value});
}

namespace {

/// Emits the attention computation in a 5-D head layout [B, A, C, ...]:
/// A = min(Hq, Hkv) heads are shared by both sides and C = max / min heads
/// are the group. The grouped side (query for Hq >= Hkv, key/value for
/// reverse SQA) and the output are reshaped to expose C; the other side's
/// indexing maps omit C, which broadcasts it without a copy.
class ReferenceBuilder {
public:
  ReferenceBuilder(RewriterBase &rewriter, AttentionOp op)
      : b(rewriter), loc(op.getLoc()), op(op), f32(b.getF32Type()) {}

  Value build();

private:
  /// [B, H, X, Y] -> [B, A, C, X, Y].
  Value expandHeads(Value source, OpFoldResult seqLen) {
    auto type = cast<RankedTensorType>(source.getType());
    SmallVector<int64_t> shape = {type.getDimSize(0), numShared, groupSize,
                                  type.getDimSize(2), type.getDimSize(3)};
    SmallVector<OpFoldResult> sizes = {batch, b.getIndexAttr(numShared),
                                       b.getIndexAttr(groupSize), seqLen,
                                       b.getIndexAttr(type.getDimSize(3))};
    SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}, {3}, {4}};
    return tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(shape, type.getElementType()), source,
        reassociation, sizes);
  }

  Value filled(ArrayRef<OpFoldResult> sizes, float value) {
    Value empty = tensor::EmptyOp::create(b, loc, sizes, f32);
    Value constant =
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(value));
    return linalg::FillOp::create(b, loc, ValueRange{constant},
                                  ValueRange{empty})
        .getResult(0);
  }

  Value toF32(OpBuilder &nested, Value value) {
    if (value.getType() == f32)
      return value;
    return arith::ExtFOp::create(nested, loc, f32, value);
  }

  AffineMap map(ArrayRef<unsigned> dims, unsigned numDims) {
    SmallVector<AffineExpr> exprs;
    for (unsigned dim : dims)
      exprs.push_back(b.getAffineDimExpr(dim));
    return AffineMap::get(numDims, 0, exprs, b.getContext());
  }

  Value generic(ValueRange inputs, Value output, ArrayRef<AffineMap> maps,
                ArrayRef<utils::IteratorType> iterators,
                function_ref<void(OpBuilder &, Location, ValueRange)> body) {
    return linalg::GenericOp::create(b, loc, TypeRange{output.getType()},
                                     inputs, ValueRange{output}, maps,
                                     iterators, body)
        .getResult(0);
  }

  Value maskAndScale(Value scores);

  RewriterBase &b;
  Location loc;
  AttentionOp op;
  Type f32;
  bool reverse = false;
  int64_t numShared = 0, groupSize = 0;
  OpFoldResult batch, queryLen, keyLen;
};

} // namespace

/// Scales the scores and sets hidden positions to -inf.
Value ReferenceBuilder::maskAndScale(Value scores) {
  using utils::IteratorType;
  SmallVector<IteratorType> parallel5(5, IteratorType::parallel);
  AffineMap identity = b.getMultiDimIdentityMap(5);
  float scale = op.getScaleOrDefault();
  MaskAttr mask = op.getEffectiveMask();
  // Query row i sits on key diagonal i + offset (0, T - S, or the tile's).
  Value diagonalOffset = mask ? op.buildDiagonalOffset(b, loc) : Value();

  return generic(
      {}, scores, {identity}, parallel5,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value scaleValue =
            arith::ConstantOp::create(nb, l, nb.getF32FloatAttr(scale));
        Value scaled = arith::MulFOp::create(nb, l, args[0], scaleValue);
        if (!mask) {
          yieldValue(nb, l, scaled);
          return;
        }
        LoweringBuilder lb(nb, l);
        Value query = linalg::IndexOp::create(nb, l, 3);
        Value key = linalg::IndexOp::create(nb, l, 4);
        Value visible = isKeyVisible(lb, MaskBounds::get(mask),
                                     lb.add(query, diagonalOffset), key);
        yieldValue(nb, l,
                   lb.select(visible, scaled,
                             lb.f32(-std::numeric_limits<float>::infinity())));
      });
}

Value ReferenceBuilder::build() {
  using utils::IteratorType;
  HeadMapping heads = op.getHeadMapping();
  reverse = heads.isReverse();
  numShared = heads.sharedHeads();
  groupSize = heads.groupSize();
  batch = tensor::getMixedSize(b, loc, op.getQuery(), 0);
  queryLen = tensor::getMixedSize(b, loc, op.getQuery(), 2);
  keyLen = tensor::getMixedSize(b, loc, op.getKey(), 2);
  Type elementType = op.getQueryType().getElementType();

  Value query = op.getQuery(), key = op.getKey(), value = op.getValue();
  if (reverse) {
    key = expandHeads(key, keyLen);
    value = expandHeads(value, keyLen);
  } else {
    query = expandHeads(query, queryLen);
  }
  Value init = expandHeads(op.getInit(), queryLen);

  OpFoldResult shared = b.getIndexAttr(numShared);
  OpFoldResult group = b.getIndexAttr(groupSize);
  SmallVector<OpFoldResult> rowSizes = {batch, shared, group, queryLen};
  SmallVector<OpFoldResult> scoreSizes = {batch, shared, group, queryLen,
                                          keyLen};
  SmallVector<OpFoldResult> accSizes = {batch, shared, group, queryLen,
                                        b.getIndexAttr(op.getValueHeadDim())};

  // scores[b, a, c, s, t] = sum_d q[.., s, d] * k[.., t, d]
  // dims: (b, a, c, s, t, d); the ungrouped side omits c.
  SmallVector<unsigned> groupedQ = {0, 1, 2, 3, 5}, sharedQ = {0, 1, 3, 5};
  SmallVector<unsigned> groupedK = {0, 1, 2, 4, 5}, sharedK = {0, 1, 4, 5};
  SmallVector<IteratorType> qkIterators(5, IteratorType::parallel);
  qkIterators.push_back(IteratorType::reduction);
  Value scores = generic(
      {query, key}, filled(scoreSizes, 0.0f),
      {map(reverse ? sharedQ : groupedQ, 6),
       map(reverse ? groupedK : sharedK, 6), map({0, 1, 2, 3, 4}, 6)},
      qkIterators, [&](OpBuilder &nb, Location l, ValueRange args) {
        Value product = arith::MulFOp::create(nb, l, toF32(nb, args[0]),
                                              toF32(nb, args[1]));
        yieldValue(nb, l, arith::AddFOp::create(nb, l, args[2], product));
      });
  scores = maskAndScale(scores);

  // Row max and exp, with the online softmax's shift and empty-row rules
  // (here applied to the whole row at once).
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  SmallVector<IteratorType> rowReduction(4, IteratorType::parallel);
  rowReduction.push_back(IteratorType::reduction);
  AffineMap scoreMap = b.getMultiDimIdentityMap(5);
  AffineMap rowMap = map({0, 1, 2, 3}, 5);
  float negInf = -std::numeric_limits<float>::infinity();
  Value rowMax = generic(
      {scores}, filled(rowSizes, negInf), {scoreMap, rowMap}, rowReduction,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        yieldValue(nb, l, arith::MaximumFOp::create(nb, l, args[0], args[1]));
      });
  SmallVector<IteratorType> parallel5(5, IteratorType::parallel);
  Value probs =
      generic({scores, rowMax},
              tensor::EmptyOp::create(b, loc, scoreSizes, f32).getResult(),
              {scoreMap, rowMap, scoreMap}, parallel5,
              [&](OpBuilder &nb, Location l, ValueRange args) {
                LoweringBuilder lb(nb, l);
                Softmax::Exponential exp{[&](Value x) { return lb.exp(x); }};
                yieldValue(nb, l,
                           Softmax::probability(
                               lb, args[0], Softmax::shift(lb, args[1]), exp));
              });
  Value rowSum = generic(
      {probs}, filled(rowSizes, 0.0f), {scoreMap, rowMap}, rowReduction,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        yieldValue(nb, l, arith::AddFOp::create(nb, l, args[0], args[1]));
      });

  // acc[b, a, c, s, n] = sum_t p[.., s, t] * v[.., t, n]
  // dims: (b, a, c, s, n, t).
  SmallVector<unsigned> groupedV = {0, 1, 2, 5, 4}, sharedV = {0, 1, 5, 4};
  Value acc = generic(
      {probs, value}, filled(accSizes, 0.0f),
      {map({0, 1, 2, 3, 5}, 6), map(reverse ? groupedV : sharedV, 6),
       map({0, 1, 2, 3, 4}, 6)},
      qkIterators, [&](OpBuilder &nb, Location l, ValueRange args) {
        Value product =
            arith::MulFOp::create(nb, l, args[0], toF32(nb, args[1]));
        yieldValue(nb, l, arith::AddFOp::create(nb, l, args[2], product));
      });

  // out = acc / sum, rounded once; an empty row (sum 0) gives 0.
  Value normalized =
      generic({acc, rowSum}, init, {scoreMap, rowMap, scoreMap}, parallel5,
              [&](OpBuilder &nb, Location l, ValueRange args) {
                LoweringBuilder lb(nb, l);
                Value result =
                    lb.mulF(args[0], Softmax::normalizer(lb, args[1]));
                if (elementType != f32)
                  result = arith::TruncFOp::create(nb, l, elementType, result);
                yieldValue(nb, l, result);
              });

  SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}, {3}, {4}};
  return tensor::CollapseShapeOp::create(b, loc, op.getInitType(), normalized,
                                         reassociation);
}

FailureOr<Value>
mlir::sqa::lowerAttentionToReferenceLinalg(RewriterBase &rewriter,
                                           AttentionOp op) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  return ReferenceBuilder(rewriter, op).build();
}

namespace {
struct LowerAttentionReferencePass
    : public sqa::impl::LowerAttentionReferenceBase<
          LowerAttentionReferencePass> {
  void runOnOperation() override {
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      if (!op.hasPureTensorSemantics()) {
        op.emitOpError("the reference lowering needs tensor semantics; run "
                       "it before bufferization");
        return signalPassFailure();
      }
      FailureOr<Value> replacement =
          lowerAttentionToReferenceLinalg(rewriter, op);
      if (failed(replacement)) {
        op.emitOpError("could not be lowered to the reference computation");
        return signalPassFailure();
      }
      rewriter.replaceOp(op, *replacement);
    }
  }
};
} // namespace
