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
/// indexing maps omit C, which broadcasts it without a copy. OpTy is
/// sqa.attention (build) or sqa.attention_backward (buildBackward).
template <typename OpTy> class ReferenceBuilder {
public:
  ReferenceBuilder(RewriterBase &rewriter, OpTy op)
      : b(rewriter), loc(op.getLoc()), op(op), f32(b.getF32Type()) {}

  SmallVector<Value> build();
  SmallVector<Value> buildBackward();

private:
  /// [B, H, X, Y] -> [B, A, C, X, Y], or [B, H, X] -> [B, A, C, X].
  Value expandHeads(Value source, OpFoldResult seqLen) {
    auto type = cast<RankedTensorType>(source.getType());
    SmallVector<int64_t> shape = {type.getDimSize(0), numShared, groupSize,
                                  type.getDimSize(2)};
    SmallVector<OpFoldResult> sizes = {batch, b.getIndexAttr(numShared),
                                       b.getIndexAttr(groupSize), seqLen};
    SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}, {3}};
    if (type.getRank() == 4) {
      shape.push_back(type.getDimSize(3));
      sizes.push_back(b.getIndexAttr(type.getDimSize(3)));
      reassociation.push_back({4});
    }
    return tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(shape, type.getElementType()), source,
        reassociation, sizes);
  }
  /// The inverse of expandHeads.
  Value collapseHeads(Value source, Type type) {
    SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}, {3}};
    if (cast<RankedTensorType>(source.getType()).getRank() == 5)
      reassociation.push_back({4});
    return tensor::CollapseShapeOp::create(b, loc, type, source, reassociation);
  }
  /// Sets the head layout fields from the op.
  void setUp() {
    HeadMapping heads = op.getHeadMapping();
    reverse = heads.isReverse();
    numShared = heads.sharedHeads();
    groupSize = heads.groupSize();
    batch = tensor::getMixedSize(b, loc, op.getQuery(), 0);
    queryLen = tensor::getMixedSize(b, loc, op.getQuery(), 2);
    keyLen = tensor::getMixedSize(b, loc, op.getKey(), 2);
  }
  /// Q.K^T in f32 [B, A, C, S, T] (the grouped query or key view given),
  /// scaled and masked.
  Value scaledScores(Value query, Value key);
  /// out[...] = sum over the reduction dims of x * y: dims of the iteration
  /// space are (b, a, c, i, j, r) with `reduced` naming the reduction dims
  /// besides r (5).
  Value contract(Value x, ArrayRef<unsigned> xDims, Value y,
                 ArrayRef<unsigned> yDims, ArrayRef<unsigned> outDims,
                 ArrayRef<OpFoldResult> outSizes, ArrayRef<unsigned> reduced);
  /// `value` (f32) rounded into `init` (same shape).
  Value roundInto(Value value, Value init);

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
  AffineMap rowMap4() { return b.getMultiDimIdentityMap(4); }

  RewriterBase &b;
  Location loc;
  OpTy op;
  Type f32;
  bool reverse = false;
  int64_t numShared = 0, groupSize = 0;
  OpFoldResult batch, queryLen, keyLen;
};

} // namespace

/// Scales the scores and sets hidden positions to -inf.
template <typename OpTy>
Value ReferenceBuilder<OpTy>::maskAndScale(Value scores) {
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

template <typename OpTy>
Value ReferenceBuilder<OpTy>::scaledScores(Value query, Value key) {
  using utils::IteratorType;
  SmallVector<OpFoldResult> scoreSizes = {batch, b.getIndexAttr(numShared),
                                          b.getIndexAttr(groupSize), queryLen,
                                          keyLen};
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
  return maskAndScale(scores);
}

template <typename OpTy>
Value ReferenceBuilder<OpTy>::contract(Value x, ArrayRef<unsigned> xDims,
                                       Value y, ArrayRef<unsigned> yDims,
                                       ArrayRef<unsigned> outDims,
                                       ArrayRef<OpFoldResult> outSizes,
                                       ArrayRef<unsigned> reduced) {
  using utils::IteratorType;
  SmallVector<IteratorType> iterators(6, IteratorType::parallel);
  iterators[5] = IteratorType::reduction;
  for (unsigned dim : reduced)
    iterators[dim] = IteratorType::reduction;
  return generic({x, y}, filled(outSizes, 0.0f),
                 {map(xDims, 6), map(yDims, 6), map(outDims, 6)}, iterators,
                 [&](OpBuilder &nb, Location l, ValueRange args) {
                   Value product = arith::MulFOp::create(
                       nb, l, toF32(nb, args[0]), toF32(nb, args[1]));
                   yieldValue(nb, l,
                              arith::AddFOp::create(nb, l, args[2], product));
                 });
}

template <typename OpTy>
Value ReferenceBuilder<OpTy>::roundInto(Value value, Value init) {
  int64_t rank = cast<RankedTensorType>(init.getType()).getRank();
  Type elementType = cast<RankedTensorType>(init.getType()).getElementType();
  AffineMap identity = b.getMultiDimIdentityMap(rank);
  return generic(
      {value}, init, {identity, identity},
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value result = args[0];
        if (elementType != f32)
          result = arith::TruncFOp::create(nb, l, elementType, result);
        yieldValue(nb, l, result);
      });
}

template <typename OpTy> SmallVector<Value> ReferenceBuilder<OpTy>::build() {
  using utils::IteratorType;
  setUp();
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
  SmallVector<IteratorType> qkIterators(5, IteratorType::parallel);
  qkIterators.push_back(IteratorType::reduction);
  Value scores = scaledScores(query, key);
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

  SmallVector<Value> results = {collapseHeads(normalized, op.getInitType())};
  if (Value lseInit = op.getLse()) {
    // lse = max + log(sum), -inf for an empty row.
    Value lse =
        generic({rowMax, rowSum}, expandHeads(lseInit, queryLen),
                {rowMap4(), rowMap4(), rowMap4()},
                SmallVector<IteratorType>(4, IteratorType::parallel),
                [&](OpBuilder &nb, Location l, ValueRange args) {
                  LoweringBuilder lb(nb, l);
                  yieldValue(nb, l, Softmax::logSumExp(lb, args[0], args[1]));
                });
    results.push_back(collapseHeads(lse, lseInit.getType()));
  }
  return results;
}

/// The exact gradient, from the forward's lse (P is recomputed, never
/// stored by the forward). f32 throughout, each gradient rounded once.
template <typename OpTy>
SmallVector<Value> ReferenceBuilder<OpTy>::buildBackward() {
  using utils::IteratorType;
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  setUp();
  Value query = op.getQuery(), key = op.getKey(), value = op.getValue();
  if (reverse) {
    key = expandHeads(key, keyLen);
    value = expandHeads(value, keyLen);
  } else {
    query = expandHeads(query, queryLen);
  }
  Value out = expandHeads(op.getOut(), queryLen);
  Value dOut = expandHeads(op.getDOut(), queryLen);
  Value lse = expandHeads(op.getLse(), queryLen);

  OpFoldResult shared = b.getIndexAttr(numShared);
  OpFoldResult group = b.getIndexAttr(groupSize);
  OpFoldResult headDim = b.getIndexAttr(op.getHeadDim());
  OpFoldResult valueDim = b.getIndexAttr(op.getValueHeadDim());
  SmallVector<OpFoldResult> rowSizes = {batch, shared, group, queryLen};
  SmallVector<OpFoldResult> scoreSizes = {batch, shared, group, queryLen,
                                          keyLen};
  AffineMap scoreMap = b.getMultiDimIdentityMap(5);
  AffineMap rowMap = map({0, 1, 2, 3}, 5);
  SmallVector<IteratorType> parallel5(5, IteratorType::parallel);

  // P = exp(s - lse): the forward's probabilities, 0 where hidden or empty.
  Value scores = scaledScores(query, key);
  Value probs =
      generic({scores, lse},
              tensor::EmptyOp::create(b, loc, scoreSizes, f32).getResult(),
              {scoreMap, rowMap, scoreMap}, parallel5,
              [&](OpBuilder &nb, Location l, ValueRange args) {
                LoweringBuilder lb(nb, l);
                Softmax::Exponential exp{[&](Value x) { return lb.exp(x); }};
                yieldValue(nb, l,
                           Softmax::probabilityFromLogSumExp(lb, args[0],
                                                             args[1], exp));
              });

  // Delta[b, a, c, s] = sum_n dO * O; dims (b, a, c, s, n).
  SmallVector<IteratorType> rowReduction(4, IteratorType::parallel);
  rowReduction.push_back(IteratorType::reduction);
  Value delta = generic(
      {dOut, out}, filled(rowSizes, 0.0f), {scoreMap, scoreMap, rowMap},
      rowReduction, [&](OpBuilder &nb, Location l, ValueRange args) {
        Value product = arith::MulFOp::create(nb, l, toF32(nb, args[0]),
                                              toF32(nb, args[1]));
        yieldValue(nb, l, arith::AddFOp::create(nb, l, args[2], product));
      });

  // dP[.., s, t] = sum_n dO[.., s, n] * v[.., t, n]; dims (b, a, c, s, t, n).
  SmallVector<unsigned> groupedV = {0, 1, 2, 4, 5}, sharedV = {0, 1, 4, 5};
  Value dProbs =
      contract(dOut, {0, 1, 2, 3, 5}, value, reverse ? groupedV : sharedV,
               {0, 1, 2, 3, 4}, scoreSizes, {});

  // dS = P * (dP - Delta) * scale: the gradient of the raw scores q.k^T.
  float scale = op.getScaleOrDefault();
  Value dScores =
      generic({probs, dProbs, delta},
              tensor::EmptyOp::create(b, loc, scoreSizes, f32).getResult(),
              {scoreMap, scoreMap, rowMap, scoreMap}, parallel5,
              [&](OpBuilder &nb, Location l, ValueRange args) {
                LoweringBuilder lb(nb, l);
                yieldValue(nb, l,
                           lb.mulF(Softmax::scoreGradient(lb, args[0], args[1],
                                                          args[2]),
                                   lb.f32(scale)));
              });

  // The key/value side: dims (b, a, c, t, n, s). Without reverse the group
  // dim c is reduced (every output head of a kv head adds to its gradient).
  SmallVector<unsigned> kvOut = reverse ? SmallVector<unsigned>{0, 1, 2, 3, 4}
                                        : SmallVector<unsigned>{0, 1, 3, 4};
  SmallVector<unsigned> kvReduced =
      reverse ? SmallVector<unsigned>{} : SmallVector<unsigned>{2};
  auto kvSizes = [&](OpFoldResult dim) {
    return reverse
               ? SmallVector<OpFoldResult>{batch, shared, group, keyLen, dim}
               : SmallVector<OpFoldResult>{batch, shared, keyLen, dim};
  };
  // dV[.., t, n] = sum_s P[.., s, t] * dO[.., s, n].
  Value dValue = contract(probs, {0, 1, 2, 5, 3}, dOut, {0, 1, 2, 5, 4}, kvOut,
                          kvSizes(valueDim), kvReduced);
  // dK[.., t, d] = sum_s dS[.., s, t] * q[.., s, d].
  SmallVector<unsigned> groupedQ = {0, 1, 2, 5, 4}, sharedQ = {0, 1, 5, 4};
  Value dKey =
      contract(dScores, {0, 1, 2, 5, 3}, query, reverse ? sharedQ : groupedQ,
               kvOut, kvSizes(headDim), kvReduced);
  // dQ[.., s, d] = sum_t dS[.., s, t] * k[.., t, d]; dims (b, a, c, s, d, t).
  // For reverse SQA the group dim c is reduced.
  SmallVector<unsigned> groupedK = {0, 1, 2, 5, 4}, sharedK = {0, 1, 5, 4};
  SmallVector<unsigned> qOut = reverse ? SmallVector<unsigned>{0, 1, 3, 4}
                                       : SmallVector<unsigned>{0, 1, 2, 3, 4};
  SmallVector<OpFoldResult> qSizes =
      reverse
          ? SmallVector<OpFoldResult>{batch, shared, queryLen, headDim}
          : SmallVector<OpFoldResult>{batch, shared, group, queryLen, headDim};
  Value dQuery = contract(
      dScores, {0, 1, 2, 3, 5}, key, reverse ? groupedK : sharedK, qOut, qSizes,
      reverse ? SmallVector<unsigned>{2} : SmallVector<unsigned>{});

  // Round into the inits (grouped sides through their [B, A, C, ...] view).
  auto finish = [&](Value gradient, Value init, bool grouped) {
    if (!grouped)
      return roundInto(gradient, init);
    return collapseHeads(
        roundInto(gradient,
                  expandHeads(init, tensor::getMixedSize(b, loc, init, 2))),
        init.getType());
  };
  return {finish(dQuery, op.getDQuery(), !reverse),
          finish(dKey, op.getDKey(), reverse),
          finish(dValue, op.getDValue(), reverse)};
}

FailureOr<SmallVector<Value>>
mlir::sqa::lowerAttentionToReferenceLinalg(RewriterBase &rewriter,
                                           AttentionOp op) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  return ReferenceBuilder<AttentionOp>(rewriter, op).build();
}

FailureOr<SmallVector<Value>>
mlir::sqa::lowerAttentionBackwardToReferenceLinalg(RewriterBase &rewriter,
                                                   AttentionBackwardOp op) {
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  return ReferenceBuilder<AttentionBackwardOp>(rewriter, op).buildBackward();
}

namespace {
struct LowerAttentionReferencePass
    : public sqa::impl::LowerAttentionReferenceBase<
          LowerAttentionReferencePass> {
  using Base::Base;

  template <typename OpTy, typename Lower> LogicalResult lowerAll(Lower lower) {
    SmallVector<OpTy> ops;
    getOperation()->walk([&](OpTy op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (OpTy op : ops) {
      if (!op.hasPureTensorSemantics())
        return op.emitOpError("the reference lowering needs tensor "
                              "semantics; run it before bufferization");
      FailureOr<SmallVector<Value>> replacements = lower(rewriter, op);
      if (failed(replacements))
        return op.emitOpError(
            "could not be lowered to the reference computation");
      rewriter.replaceOp(op, *replacements);
    }
    return success();
  }

  void runOnOperation() override {
    if ((!backwardOnly &&
         failed(lowerAll<AttentionOp>(lowerAttentionToReferenceLinalg))) ||
        failed(lowerAll<AttentionBackwardOp>(
            lowerAttentionBackwardToReferenceLinalg)))
      signalPassFailure();
  }
};
} // namespace
