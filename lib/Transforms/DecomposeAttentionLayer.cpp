//===- DecomposeAttentionLayer.cpp - Layer -> matmuls + attention ---------===//

#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_DECOMPOSEATTENTIONLAYER
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

class LayerBuilder {
public:
  LayerBuilder(RewriterBase &rewriter, AttentionLayerOp op)
      : b(rewriter), loc(op.getLoc()), op(op), f32(b.getF32Type()),
        f64(b.getF64Type()),
        elementType(op.getInput().getType().getElementType()) {}

  Value build();

private:
  AffineMap map(ArrayRef<AffineExpr> exprs, unsigned numDims) {
    return AffineMap::get(numDims, 0, exprs, b.getContext());
  }
  AffineExpr dim(unsigned i) { return b.getAffineDimExpr(i); }
  AffineExpr cst(int64_t v) { return b.getAffineConstantExpr(v); }
  Value yield(OpBuilder &nb, Location l, Value v) {
    linalg::YieldOp::create(nb, l, ValueRange{v});
    return v;
  }

  /// f32 [B, L, n] = input [B, L, d] x weight [d, n]: a batch matmul whose
  /// weight map has no batch dim (a broadcast, not a copy).
  Value project(Value input, Value weight) {
    int64_t n = cast<ShapedType>(weight.getType()).getDimSize(1);
    SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, input, 0),
                                       tensor::getMixedSize(b, loc, input, 1),
                                       b.getIndexAttr(n)};
    Value empty = tensor::EmptyOp::create(b, loc, sizes, f32);
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    Value acc =
        linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{empty})
            .getResult(0);
    SmallVector<Attribute> maps = {
        AffineMapAttr::get(map({dim(0), dim(1), dim(3)}, 4)),
        AffineMapAttr::get(map({dim(3), dim(2)}, 4)),
        AffineMapAttr::get(map({dim(0), dim(1), dim(2)}, 4))};
    NamedAttribute indexingMaps(b.getStringAttr("indexing_maps"),
                                b.getArrayAttr(maps));
    return linalg::BatchMatmulOp::create(b, loc, TypeRange{acc.getType()},
                                         ValueRange{input, weight},
                                         ValueRange{acc}, {indexingMaps})
        .getResult(0);
  }
  Value toF32(OpBuilder &nb, Location l, Value v) {
    return v.getType() == f32 ? v : arith::ExtFOp::create(nb, l, f32, v);
  }
  Value fromF32(OpBuilder &nb, Location l, Value v) {
    return elementType == f32 ? v
                              : arith::TruncFOp::create(nb, l, elementType, v);
  }

  Value splitHeads(Value projected, Value bias, OpFoldResult len,
                   int64_t numHeads, bool applyRope);
  Value ropeBase(OpFoldResult queryLen, OpFoldResult keyLen);

  RewriterBase &b;
  Location loc;
  AttentionLayerOp op;
  Type f32, f64, elementType;
  OpFoldResult batch;
  int64_t headDim = 0;
  Value base; // f64 RoPE base in effect (dynamic for NTK)
};

} // namespace

/// The RoPE base; dynamic NTK scales it when the longest position exceeds
/// the trained context.
Value LayerBuilder::ropeBase(OpFoldResult queryLen, OpFoldResult keyLen) {
  RopeAttr rope = op.getRopeAttr();
  auto f64c = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v)).getResult();
  };
  Value staticBase = f64c(rope.getBaseValue());
  if (rope.getKind() != RopeKind::DynamicNTK)
    return staticBase;
  Value longest = arith::MaxSIOp::create(
      b, loc, getValueOrCreateConstantIndexOp(b, loc, queryLen),
      getValueOrCreateConstantIndexOp(b, loc, keyLen));
  Value lastPos = arith::AddIOp::create(
      b, loc, longest,
      arith::ConstantIndexOp::create(b, loc, rope.getPositionOffset()));
  Value length = arith::SIToFPOp::create(
      b, loc, f64, arith::IndexCastOp::create(b, loc, b.getI64Type(), lastPos));
  double factor = rope.getFactorValue();
  double maxPos = static_cast<double>(rope.getOriginalMaxPositions());
  // base * ((factor * L / max) - (factor - 1)) ^ (d / (d - 2))
  Value ratio = arith::SubFOp::create(
      b, loc, arith::MulFOp::create(b, loc, f64c(factor / maxPos), length),
      f64c(factor - 1.0));
  Value scaled = arith::MulFOp::create(
      b, loc, staticBase,
      math::PowFOp::create(b, loc, ratio,
                           f64c(double(headDim) / double(headDim - 2))));
  Value exceeds = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                        length, f64c(maxPos));
  return arith::SelectOp::create(b, loc, exceeds, scaled, staticBase);
}

/// f32 [B, L, nh*dh] (+ bias) -> element type [B, nh, L, dh], with RoPE.
Value LayerBuilder::splitHeads(Value projected, Value bias, OpFoldResult len,
                               int64_t numHeads, bool applyRope) {
  using utils::IteratorType;
  int64_t half = headDim / 2;
  // Rope pairs (i, i + dh/2) are read through two maps into a [.., 2, dh/2]
  // view of the same tensor; without rope the view is plain [.., dh].
  bool pairs = applyRope;
  SmallVector<int64_t> inner =
      pairs ? SmallVector<int64_t>{2, half} : SmallVector<int64_t>{headDim};
  auto innerSizes = [&]() {
    SmallVector<OpFoldResult> sizes;
    for (int64_t s : inner)
      sizes.push_back(b.getIndexAttr(s));
    return sizes;
  };
  unsigned rank = 3 + inner.size();
  auto staticOr = [](OpFoldResult size) {
    return getConstantIntValue(size).value_or(ShapedType::kDynamic);
  };
  SmallVector<int64_t> viewShape = {staticOr(batch), staticOr(len), numHeads};
  viewShape.append(inner);
  SmallVector<OpFoldResult> viewSizes = {batch, len, b.getIndexAttr(numHeads)};
  viewSizes.append(innerSizes());
  // Only the static last dim is split: memref.expand_shape with two dynamic
  // sizes in one group crashes MLIR 22's expand-strided-metadata.
  SmallVector<ReassociationIndices> viewReassoc = {{0}, {1}, {}};
  for (unsigned i = 2; i < rank; ++i)
    viewReassoc[2].push_back(i);
  Value view = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(viewShape, f32), projected, viewReassoc,
      viewSizes);
  Value biasView;
  if (bias) {
    SmallVector<int64_t> biasShape = {numHeads};
    biasShape.append(inner);
    SmallVector<OpFoldResult> biasSizes = {b.getIndexAttr(numHeads)};
    biasSizes.append(innerSizes());
    SmallVector<ReassociationIndices> biasReassoc(1);
    for (unsigned i = 0; i < 1 + inner.size(); ++i)
      biasReassoc[0].push_back(i);
    biasView = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(biasShape, elementType), bias,
        biasReassoc, biasSizes);
  }

  // Output [B, nh, L, inner...]; iteration dims (b, h, l, inner...).
  SmallVector<OpFoldResult> outSizes = {batch, b.getIndexAttr(numHeads), len};
  outSizes.append(innerSizes());
  Value empty = tensor::EmptyOp::create(b, loc, outSizes, elementType);
  SmallVector<AffineExpr> innerDims;
  for (unsigned i = 3; i < rank; ++i)
    innerDims.push_back(dim(i));
  // Indexing map into the projection view (leading dims b, l, h) or the
  // bias view (leading dim h); with a pair index, into one rope half.
  auto innerMap = [&](ArrayRef<AffineExpr> leading,
                      std::optional<int64_t> pairIndex) {
    SmallVector<AffineExpr> exprs(leading.begin(), leading.end());
    if (pairIndex) {
      exprs.push_back(cst(*pairIndex));
      exprs.push_back(dim(4));
    } else {
      exprs.append(innerDims);
    }
    return map(exprs, rank);
  };
  auto viewMap = [&](std::optional<int64_t> pairIndex) {
    return innerMap({dim(0), dim(2), dim(1)}, pairIndex);
  };
  auto biasMap = [&](std::optional<int64_t> pairIndex) {
    return innerMap({dim(1)}, pairIndex);
  };
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  if (pairs) {
    inputs = {view, view};
    maps = {viewMap(0), viewMap(1)};
    if (biasView) {
      inputs.append({biasView, biasView});
      maps.append({biasMap(0), biasMap(1)});
    }
  } else {
    inputs = {view};
    maps = {viewMap(std::nullopt)};
    if (biasView) {
      inputs.push_back(biasView);
      maps.push_back(biasMap(std::nullopt));
    }
  }
  maps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<IteratorType> iterators(rank, IteratorType::parallel);

  RopeAttr rope = op.getRopeAttr();
  Value result =
      linalg::GenericOp::create(
          b, loc, TypeRange{empty.getType()}, inputs, ValueRange{empty}, maps,
          iterators,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            if (!pairs) {
              Value x = args[0];
              if (biasView)
                x = arith::AddFOp::create(nb, l, x, toF32(nb, l, args[1]));
              yield(nb, l, fromF32(nb, l, x));
              return;
            }
            Value x1 = args[0], x2 = args[1];
            if (biasView) {
              x1 = arith::AddFOp::create(nb, l, x1, toF32(nb, l, args[2]));
              x2 = arith::AddFOp::create(nb, l, x2, toF32(nb, l, args[3]));
            }
            auto f64c = [&](double v) {
              return arith::ConstantOp::create(nb, l, nb.getF64FloatAttr(v))
                  .getResult();
            };
            auto indexToF64 = [&](Value index) {
              return arith::SIToFPOp::create(
                  nb, l, f64,
                  arith::IndexCastOp::create(nb, l, nb.getI64Type(), index));
            };
            // angle = (offset + l) [/ factor] * base^(-2i/dh), in f64 so
            // that long positions keep their phase.
            Value pos = arith::AddFOp::create(
                nb, l, indexToF64(linalg::IndexOp::create(nb, l, 2)),
                f64c(static_cast<double>(rope.getPositionOffset())));
            if (rope.getKind() == RopeKind::Linear)
              pos = arith::DivFOp::create(nb, l, pos,
                                          f64c(rope.getFactorValue()));
            Value exponent = arith::MulFOp::create(
                nb, l, indexToF64(linalg::IndexOp::create(nb, l, 4)),
                f64c(-2.0 / static_cast<double>(headDim)));
            Value invFreq = math::PowFOp::create(nb, l, base, exponent);
            Value angle = arith::MulFOp::create(nb, l, pos, invFreq);
            Value cos = arith::TruncFOp::create(
                nb, l, f32, math::CosOp::create(nb, l, angle));
            Value sin = arith::TruncFOp::create(
                nb, l, f32, math::SinOp::create(nb, l, angle));
            // First half: x1 cos - x2 sin; second half: x2 cos + x1 sin.
            Value first = arith::SubFOp::create(
                nb, l, arith::MulFOp::create(nb, l, x1, cos),
                arith::MulFOp::create(nb, l, x2, sin));
            Value second = arith::AddFOp::create(
                nb, l, arith::MulFOp::create(nb, l, x2, cos),
                arith::MulFOp::create(nb, l, x1, sin));
            Value isFirst =
                arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq,
                                      linalg::IndexOp::create(nb, l, 3),
                                      arith::ConstantIndexOp::create(nb, l, 0));
            yield(nb, l,
                  fromF32(
                      nb, l,
                      arith::SelectOp::create(nb, l, isFirst, first, second)));
          })
          .getResult(0);
  if (!pairs)
    return result;
  SmallVector<ReassociationIndices> merge = {{0}, {1}, {2}, {3, 4}};
  return tensor::CollapseShapeOp::create(b, loc, result, merge);
}

Value LayerBuilder::build() {
  using utils::IteratorType;
  HeadsAttr heads = op.getHeads();
  headDim = op.getHeadDim();
  int64_t outHeads = heads.getOutputHeads();
  Value input = op.getInput();
  Value source = op.getMemory() ? op.getMemory() : input;
  batch = tensor::getMixedSize(b, loc, input, 0);
  OpFoldResult queryLen = tensor::getMixedSize(b, loc, input, 1);
  OpFoldResult keyLen = tensor::getMixedSize(b, loc, source, 1);
  RopeAttr rope = op.getRopeAttr();
  if (rope)
    base = ropeBase(queryLen, keyLen);

  Value query = splitHeads(project(input, op.getWQ()), op.getBQ(), queryLen,
                           heads.getQuery(), rope != nullptr);
  bool ropeKeys = rope && !rope.getQueriesOnly();
  Value key = splitHeads(project(source, op.getWK()), op.getBK(), keyLen,
                         heads.getKv(), ropeKeys);
  Value value = splitHeads(project(source, op.getWV()), op.getBV(), keyLen,
                           heads.getKv(), /*applyRope=*/false);

  SmallVector<OpFoldResult> attnSizes = {batch, b.getIndexAttr(outHeads),
                                         queryLen, b.getIndexAttr(headDim)};
  Value attnInit = tensor::EmptyOp::create(b, loc, attnSizes, elementType);
  auto attention = AttentionOp::create(
      b, loc, TypeRange{attnInit.getType()}, query, key, value, attnInit,
      /*diagonal_offset=*/Value(), op.getScaleAttr(), op.getMaskAttr(), heads);

  // [B, Hout, S, dh] -> [B, S, Hout, dh] -> [B, S, Hout*dh].
  SmallVector<OpFoldResult> mergedSizes = {
      batch, queryLen, b.getIndexAttr(outHeads), b.getIndexAttr(headDim)};
  Value mergedInit = tensor::EmptyOp::create(b, loc, mergedSizes, elementType);
  Value merged = linalg::GenericOp::create(
                     b, loc, TypeRange{mergedInit.getType()},
                     ValueRange{attention.getResult()}, ValueRange{mergedInit},
                     {map({dim(0), dim(2), dim(1), dim(3)}, 4),
                      b.getMultiDimIdentityMap(4)},
                     SmallVector<IteratorType>(4, IteratorType::parallel),
                     [&](OpBuilder &nb, Location l, ValueRange args) {
                       yield(nb, l, args[0]);
                     })
                     .getResult(0);
  SmallVector<ReassociationIndices> concatHeads = {{0}, {1}, {2, 3}};
  Value concatenated =
      tensor::CollapseShapeOp::create(b, loc, merged, concatHeads);
  Value output = project(concatenated, op.getWO());

  // Bias and rounding, straight into the destination.
  SmallVector<Value> inputs = {output};
  SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(3)};
  if (Value bias = op.getBO()) {
    inputs.push_back(bias);
    maps.push_back(map({dim(2)}, 3));
  }
  maps.push_back(b.getMultiDimIdentityMap(3));
  return linalg::GenericOp::create(
             b, loc, TypeRange{op.getInit().getType()}, inputs,
             ValueRange{op.getInit()}, maps,
             SmallVector<IteratorType>(3, IteratorType::parallel),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               Value y = args[0];
               if (inputs.size() == 2)
                 y = arith::AddFOp::create(nb, l, y, toF32(nb, l, args[1]));
               yield(nb, l, fromF32(nb, l, y));
             })
      .getResult(0);
}

namespace {
struct DecomposeAttentionLayerPass
    : public sqa::impl::DecomposeAttentionLayerBase<
          DecomposeAttentionLayerPass> {
  void runOnOperation() override {
    SmallVector<AttentionLayerOp> ops;
    getOperation()->walk([&](AttentionLayerOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionLayerOp op : ops) {
      rewriter.setInsertionPoint(op);
      Value replacement = LayerBuilder(rewriter, op).build();
      rewriter.replaceOp(op, replacement);
    }
  }
};
} // namespace
