//===- DecomposeAttentionLayer.cpp - Layer -> matmuls + attention ---------===//

#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_DECOMPOSEATTENTIONLAYER
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

/// What the layer ops share: the forward's operands and attributes (absent
/// ones null; the decode step has no memory, the memory K/V op no w_q, w_o).
struct LayerParts {
  Value input, memory, wQ, wK, wV, wO, bQ, bK, bV, bO;
  HeadsAttr heads;
  RopeAttr rope;
  MaskAttr mask;
  FloatAttr scale;

  template <typename OpTy> static LayerParts of(OpTy op) {
    return {op.getInput(),    op.getMemory(),   op.getWQ(),    op.getWK(),
            op.getWV(),       op.getWO(),       op.getBQ(),    op.getBK(),
            op.getBV(),       op.getBO(),       op.getHeads(), op.getRopeAttr(),
            op.getMaskAttr(), op.getScaleAttr()};
  }
  static LayerParts of(AttentionLayerDecodeOp op) {
    return {op.getInput(),    Value(),          op.getWQ(),    op.getWK(),
            op.getWV(),       op.getWO(),       op.getBQ(),    op.getBK(),
            op.getBV(),       op.getBO(),       op.getHeads(), op.getRopeAttr(),
            op.getMaskAttr(), op.getScaleAttr()};
  }
  /// The memory is the rows the keys and values are projected from.
  static LayerParts of(AttentionLayerKVOp op) {
    Value memory = op.getMemory();
    return {memory,        memory,           Value(),    op.getWK(), op.getWV(),
            Value(),       Value(),          op.getBK(), op.getBV(), Value(),
            op.getHeads(), op.getRopeAttr(), MaskAttr(), FloatAttr()};
  }
  RopeAttr getRopeAttr() { return rope; }
};

class LayerBuilder {
public:
  LayerBuilder(RewriterBase &rewriter, Location loc, LayerParts op)
      : b(rewriter), loc(loc), op(op), f32(b.getF32Type()), f64(b.getF64Type()),
        elementType(cast<ShapedType>(op.input.getType()).getElementType()),
        headDim(cast<ShapedType>(op.input.getType()).getDimSize(2) /
                op.heads.getTotal()) {}

  /// The layer's output, written into `init`.
  Value build(Value init);
  /// The gradients of AttentionLayerBackwardOp, in its inits' order.
  SmallVector<Value> buildBackward(AttentionLayerBackwardOp backward);
  /// One decode step: the output, written into the decode op's init; the
  /// caches are appended to in place.
  Value buildDecode(AttentionLayerDecodeOp decode);
  /// The memory's keys and values, written into the K/V op's inits.
  std::pair<Value, Value> buildKeysValues(AttentionLayerKVOp kv);

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
  /// With `acc` (f32 [B, L, n]) the product is added to it: the backward
  /// sums the q, k, v paths' input gradients that way.
  Value project(Value input, Value weight, Value acc = {}) {
    int64_t n = cast<ShapedType>(weight.getType()).getDimSize(1);
    if (!acc) {
      SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, input, 0),
                                         tensor::getMixedSize(b, loc, input, 1),
                                         b.getIndexAttr(n)};
      acc = zeros(tensor::EmptyOp::create(b, loc, sizes, f32));
    }
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
  Value zeros(Value tensor) {
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    return linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{tensor})
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
                   int64_t numHeads, bool applyRope, Value rowStart = {});
  Value ropeBase(OpFoldResult queryLen, OpFoldResult keyLen);
  Value ntkBase(OpBuilder &nb, Location l, Value lastPos);
  Value rotate(OpBuilder &nb, Location l, Value x1, Value x2, bool transpose,
               Value start = {});

  /// The recomputed forward up to the attention output.
  struct Forward {
    Value query, key, value, attention, lse, concatenated;
  };
  Forward forward(bool withLse);
  Value concatHeads(Value attention, OpFoldResult len);
  Value outputInto(Value concatenated, Value init);
  Value mergeHeads(Value heads, OpFoldResult len, bool inverseRope);
  Value transposeWeight(Value weight);
  Value weightGradient(Value input, Value grad, Value init);
  Value biasGradient(Value grad, Value init);
  Value accumulator(Value init);
  Value roundInto(Value acc, Value init);

  RewriterBase &b;
  Location loc;
  LayerParts op;
  Type f32, f64, elementType;
  OpFoldResult batch;
  int64_t headDim;
  OpFoldResult queryLen, keyLen;
  Value base;    // f64 RoPE base in effect (dynamic for NTK); null: per row
  Value longest; // index: a decode row's new tokens (per-row dynamic NTK)
};

} // namespace

/// The RoPE base; dynamic NTK scales it when the longest position exceeds
/// the trained context.
Value LayerBuilder::ropeBase(OpFoldResult queryLen, OpFoldResult keyLen) {
  RopeAttr rope = op.getRopeAttr();
  auto f64c = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v)).getResult();
  };
  if (rope.getKind() != RopeKind::DynamicNTK)
    return f64c(rope.getBaseValue());
  Value longest = arith::MaxSIOp::create(
      b, loc, getValueOrCreateConstantIndexOp(b, loc, queryLen),
      getValueOrCreateConstantIndexOp(b, loc, keyLen));
  Value lastPos = arith::AddIOp::create(
      b, loc, longest,
      arith::ConstantIndexOp::create(b, loc, rope.getPositionOffset()));
  return ntkBase(b, loc,
                 arith::IndexCastOp::create(b, loc, b.getI64Type(), lastPos));
}

/// Dynamic NTK's base for the last position `lastPos` (i64): scaled once
/// it exceeds the trained context.
Value LayerBuilder::ntkBase(OpBuilder &nb, Location l, Value lastPos) {
  RopeAttr rope = op.getRopeAttr();
  auto f64c = [&](double v) {
    return arith::ConstantOp::create(nb, l, nb.getF64FloatAttr(v)).getResult();
  };
  Value staticBase = f64c(rope.getBaseValue());
  Value length = arith::SIToFPOp::create(nb, l, f64, lastPos);
  double factor = rope.getFactorValue();
  double maxPos = static_cast<double>(rope.getOriginalMaxPositions());
  // base * ((factor * L / max) - (factor - 1)) ^ (d / (d - 2))
  Value ratio = arith::SubFOp::create(
      nb, l, arith::MulFOp::create(nb, l, f64c(factor / maxPos), length),
      f64c(factor - 1.0));
  Value scaled = arith::MulFOp::create(
      nb, l, staticBase,
      math::PowFOp::create(nb, l, ratio,
                           f64c(double(headDim) / double(headDim - 2))));
  Value exceeds = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                        length, f64c(maxPos));
  return arith::SelectOp::create(nb, l, exceeds, scaled, staticBase);
}

/// The element of rope half `linalg.index 3` of the pair (x1, x2) at
/// position `linalg.index 2` (plus the row's `start`, i64, in a decode
/// step) and frequency `linalg.index 4`, rotated by the RoPE angle, or by
/// its negative (the transpose, for gradients). The one definition of the
/// angle for the forward, the backward and the decode step.
Value LayerBuilder::rotate(OpBuilder &nb, Location l, Value x1, Value x2,
                           bool transpose, Value start) {
  RopeAttr rope = op.getRopeAttr();
  auto f64c = [&](double v) {
    return arith::ConstantOp::create(nb, l, nb.getF64FloatAttr(v)).getResult();
  };
  auto toI64 = [&](Value index) {
    return arith::IndexCastOp::create(nb, l, nb.getI64Type(), index)
        .getResult();
  };
  auto indexToF64 = [&](Value index) {
    return arith::SIToFPOp::create(nb, l, f64, toI64(index));
  };
  Value row = toI64(linalg::IndexOp::create(nb, l, 2));
  Value rowBase = base;
  if (start) {
    row = arith::AddIOp::create(nb, l, row, start);
    // Dynamic NTK per row: the step's last position start + N + offset, as
    // a forward over the row's tokens so far would take it.
    if (!rowBase)
      rowBase = ntkBase(
          nb, l,
          arith::AddIOp::create(nb, l, start,
                                toI64(arith::AddIOp::create(
                                    nb, l, longest,
                                    arith::ConstantIndexOp::create(
                                        nb, l, rope.getPositionOffset())))));
  }
  // angle = (offset [+ start] + l) [/ factor] * base^(-2i/dh), in f64 so
  // that long positions keep their phase.
  Value pos = arith::AddFOp::create(
      nb, l, arith::SIToFPOp::create(nb, l, f64, row),
      f64c(static_cast<double>(rope.getPositionOffset())));
  if (rope.getKind() == RopeKind::Linear)
    pos = arith::DivFOp::create(nb, l, pos, f64c(rope.getFactorValue()));
  Value exponent = arith::MulFOp::create(
      nb, l, indexToF64(linalg::IndexOp::create(nb, l, 4)),
      f64c(-2.0 / static_cast<double>(headDim)));
  Value invFreq = math::PowFOp::create(nb, l, rowBase, exponent);
  Value angle = arith::MulFOp::create(nb, l, pos, invFreq);
  Value cos =
      arith::TruncFOp::create(nb, l, f32, math::CosOp::create(nb, l, angle));
  Value sin =
      arith::TruncFOp::create(nb, l, f32, math::SinOp::create(nb, l, angle));
  if (transpose)
    sin = arith::NegFOp::create(nb, l, sin);
  // First half: x1 cos - x2 sin; second half: x2 cos + x1 sin.
  Value first =
      arith::SubFOp::create(nb, l, arith::MulFOp::create(nb, l, x1, cos),
                            arith::MulFOp::create(nb, l, x2, sin));
  Value second =
      arith::AddFOp::create(nb, l, arith::MulFOp::create(nb, l, x2, cos),
                            arith::MulFOp::create(nb, l, x1, sin));
  Value isFirst = arith::CmpIOp::create(
      nb, l, arith::CmpIPredicate::eq, linalg::IndexOp::create(nb, l, 3),
      arith::ConstantIndexOp::create(nb, l, 0));
  return arith::SelectOp::create(nb, l, isFirst, first, second);
}

/// f32 [B, L, nh*dh] (+ bias) -> element type [B, nh, L, dh], with RoPE at
/// positions l, or rowStart[b] + l with `rowStart` (i64 [B], a decode
/// step's cache lengths).
Value LayerBuilder::splitHeads(Value projected, Value bias, OpFoldResult len,
                               int64_t numHeads, bool applyRope,
                               Value rowStart) {
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
  if (pairs && rowStart) {
    inputs.push_back(rowStart);
    maps.push_back(map({dim(0)}, rank));
  }
  maps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<IteratorType> iterators(rank, IteratorType::parallel);

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
            Value start = rowStart ? args[inputs.size() - 1] : Value();
            yield(nb, l, fromF32(nb, l, rotate(nb, l, x1, x2, false, start)));
          })
          .getResult(0);
  if (!pairs)
    return result;
  SmallVector<ReassociationIndices> merge = {{0}, {1}, {2}, {3, 4}};
  return tensor::CollapseShapeOp::create(b, loc, result, merge);
}

LayerBuilder::Forward LayerBuilder::forward(bool withLse) {
  using utils::IteratorType;
  HeadsAttr heads = op.heads;
  int64_t outHeads = heads.getOutputHeads();
  Value input = op.input;
  Value source = op.memory ? op.memory : input;
  batch = tensor::getMixedSize(b, loc, input, 0);
  queryLen = tensor::getMixedSize(b, loc, input, 1);
  keyLen = tensor::getMixedSize(b, loc, source, 1);
  RopeAttr rope = op.rope;
  if (rope)
    base = ropeBase(queryLen, keyLen);

  Forward f;
  f.query = splitHeads(project(input, op.wQ), op.bQ, queryLen, heads.getQuery(),
                       rope != nullptr);
  bool ropeKeys = rope && !rope.getQueriesOnly();
  f.key = splitHeads(project(source, op.wK), op.bK, keyLen, heads.getKv(),
                     ropeKeys);
  f.value = splitHeads(project(source, op.wV), op.bV, keyLen, heads.getKv(),
                       /*applyRope=*/false);

  SmallVector<OpFoldResult> attnSizes = {batch, b.getIndexAttr(outHeads),
                                         queryLen, b.getIndexAttr(headDim)};
  Value attnInit = tensor::EmptyOp::create(b, loc, attnSizes, elementType);
  if (withLse) {
    Value lseInit = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>(attnSizes).drop_back(), f32);
    auto attention = AttentionOp::create(
        b, loc, TypeRange{attnInit.getType(), lseInit.getType()}, f.query,
        f.key, f.value, attnInit, lseInit, /*diagonal_offset=*/Value(),
        op.scale, op.mask, heads);
    f.attention = attention->getResult(0);
    f.lse = attention->getResult(1);
  } else {
    f.attention = AttentionOp::create(b, loc, TypeRange{attnInit.getType()},
                                      f.query, f.key, f.value, attnInit,
                                      /*diagonal_offset=*/Value(), op.scale,
                                      op.mask, heads)
                      .getResult();
  }

  f.concatenated = concatHeads(f.attention, queryLen);
  return f;
}

/// [B, Hout, L, dh] -> [B, L, Hout, dh] -> [B, L, Hout*dh].
Value LayerBuilder::concatHeads(Value attention, OpFoldResult len) {
  using utils::IteratorType;
  int64_t outHeads = op.heads.getOutputHeads();
  SmallVector<OpFoldResult> mergedSizes = {batch, len, b.getIndexAttr(outHeads),
                                           b.getIndexAttr(headDim)};
  Value mergedInit = tensor::EmptyOp::create(b, loc, mergedSizes, elementType);
  Value merged = linalg::GenericOp::create(
                     b, loc, TypeRange{mergedInit.getType()},
                     ValueRange{attention}, ValueRange{mergedInit},
                     {map({dim(0), dim(2), dim(1), dim(3)}, 4),
                      b.getMultiDimIdentityMap(4)},
                     SmallVector<IteratorType>(4, IteratorType::parallel),
                     [&](OpBuilder &nb, Location l, ValueRange args) {
                       yield(nb, l, args[0]);
                     })
                     .getResult(0);
  SmallVector<ReassociationIndices> concat = {{0}, {1}, {2, 3}};
  return tensor::CollapseShapeOp::create(b, loc, merged, concat);
}

Value LayerBuilder::build(Value init) {
  Forward f = forward(/*withLse=*/false);
  return outputInto(f.concatenated, init);
}

/// The output projection of the concatenated heads, plus b_o, rounded into
/// `init`.
Value LayerBuilder::outputInto(Value concatenated, Value init) {
  using utils::IteratorType;
  Value output = project(concatenated, op.wO);

  // Bias and rounding, straight into the destination.
  SmallVector<Value> inputs = {output};
  SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(3)};
  if (Value bias = op.bO) {
    inputs.push_back(bias);
    maps.push_back(map({dim(2)}, 3));
  }
  maps.push_back(b.getMultiDimIdentityMap(3));
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
             SmallVector<IteratorType>(3, IteratorType::parallel),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               Value y = args[0];
               if (inputs.size() == 2)
                 y = arith::AddFOp::create(nb, l, y, toF32(nb, l, args[1]));
               yield(nb, l, fromF32(nb, l, y));
             })
      .getResult(0);
}

/// Element type [B, nh, L, dh] -> f32 [B, L, nh*dh], the transpose of
/// splitHeads' head split (and of its RoPE, a rotation by -theta).
Value LayerBuilder::mergeHeads(Value heads, OpFoldResult len,
                               bool inverseRope) {
  using utils::IteratorType;
  auto type = cast<ShapedType>(heads.getType());
  int64_t numHeads = type.getDimSize(1), half = headDim / 2;
  SmallVector<int64_t> inner = inverseRope ? SmallVector<int64_t>{2, half}
                                           : SmallVector<int64_t>{headDim};
  unsigned rank = 3 + inner.size();
  Value view = heads;
  if (inverseRope) {
    SmallVector<int64_t> viewShape(type.getShape().take_front(3));
    viewShape.append(inner);
    view = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(viewShape, elementType), heads,
        SmallVector<ReassociationIndices>{{0}, {1}, {2}, {3, 4}},
        SmallVector<OpFoldResult>{batch, b.getIndexAttr(numHeads), len,
                                  b.getIndexAttr(2), b.getIndexAttr(half)});
  }
  // Iteration dims (b, h, l, inner...) as in splitHeads; the output is
  // [B, L, nh, inner...].
  SmallVector<OpFoldResult> outSizes = {batch, len, b.getIndexAttr(numHeads)};
  for (int64_t s : inner)
    outSizes.push_back(b.getIndexAttr(s));
  Value empty = tensor::EmptyOp::create(b, loc, outSizes, f32);
  SmallVector<AffineExpr> outExprs = {dim(0), dim(2), dim(1)};
  for (unsigned i = 3; i < rank; ++i)
    outExprs.push_back(dim(i));
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  if (inverseRope) {
    inputs = {view, view};
    maps = {map({dim(0), dim(1), dim(2), cst(0), dim(4)}, rank),
            map({dim(0), dim(1), dim(2), cst(1), dim(4)}, rank)};
  } else {
    inputs = {view};
    maps = {b.getMultiDimIdentityMap(rank)};
  }
  maps.push_back(map(outExprs, rank));
  Value merged =
      linalg::GenericOp::create(
          b, loc, TypeRange{empty.getType()}, inputs, ValueRange{empty}, maps,
          SmallVector<IteratorType>(rank, IteratorType::parallel),
          [&](OpBuilder &nb, Location l, ValueRange args) {
            if (!inverseRope) {
              yield(nb, l, toF32(nb, l, args[0]));
              return;
            }
            yield(nb, l,
                  rotate(nb, l, toF32(nb, l, args[0]), toF32(nb, l, args[1]),
                         /*transpose=*/true));
          })
          .getResult(0);
  SmallVector<ReassociationIndices> collapse = {{0}, {1}, {}};
  for (unsigned i = 2; i < rank; ++i)
    collapse[2].push_back(i);
  return tensor::CollapseShapeOp::create(b, loc, merged, collapse);
}

/// f32 [n, d] = weight [d, n]^T: the input gradients dX = dP W^T then run
/// as projections (through sqa-lower-projections' packed GEMM).
Value LayerBuilder::transposeWeight(Value weight) {
  using utils::IteratorType;
  auto type = cast<ShapedType>(weight.getType());
  Value empty = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{type.getDimSize(1), type.getDimSize(0)}, f32);
  return linalg::GenericOp::create(
             b, loc, TypeRange{empty.getType()}, ValueRange{weight},
             ValueRange{empty},
             {map({dim(1), dim(0)}, 2), b.getMultiDimIdentityMap(2)},
             SmallVector<IteratorType>(2, IteratorType::parallel),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               yield(nb, l, toF32(nb, l, args[0]));
             })
      .getResult(0);
}

/// A zeroed f32 accumulator for the gradient `init`: init itself for f32.
Value LayerBuilder::accumulator(Value init) {
  if (elementType == f32)
    return zeros(init);
  auto type = cast<RankedTensorType>(init.getType());
  SmallVector<OpFoldResult> sizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    sizes.push_back(tensor::getMixedSize(b, loc, init, i));
  return zeros(tensor::EmptyOp::create(b, loc, sizes, f32));
}

/// The f32 accumulator rounded once into the gradient `init`.
Value LayerBuilder::roundInto(Value acc, Value init) {
  using utils::IteratorType;
  if (elementType == f32)
    return acc;
  unsigned rank = cast<ShapedType>(init.getType()).getRank();
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{acc},
             ValueRange{init},
             {b.getMultiDimIdentityMap(rank), b.getMultiDimIdentityMap(rank)},
             SmallVector<IteratorType>(rank, IteratorType::parallel),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               yield(nb, l, fromF32(nb, l, args[0]));
             })
      .getResult(0);
}

/// dW [d, n] = sum over batch and positions of input [B, L, d]^T x
/// grad [B, L, n]. A reduction over two dynamic dims that the packed
/// projection GEMM (static weight) does not cover: linalg, lowered to loops.
Value LayerBuilder::weightGradient(Value input, Value grad, Value init) {
  using utils::IteratorType;
  Value acc = accumulator(init);
  acc = linalg::GenericOp::create(
            b, loc, TypeRange{acc.getType()}, ValueRange{input, grad},
            ValueRange{acc},
            {map({dim(0), dim(1), dim(2)}, 4), map({dim(0), dim(1), dim(3)}, 4),
             map({dim(2), dim(3)}, 4)},
            {IteratorType::reduction, IteratorType::reduction,
             IteratorType::parallel, IteratorType::parallel},
            [&](OpBuilder &nb, Location l, ValueRange args) {
              Value product = arith::MulFOp::create(
                  nb, l, toF32(nb, l, args[0]), toF32(nb, l, args[1]));
              yield(nb, l, arith::AddFOp::create(nb, l, args[2], product));
            })
            .getResult(0);
  return roundInto(acc, init);
}

/// db [n] = sum over batch and positions of grad [B, L, n].
Value LayerBuilder::biasGradient(Value grad, Value init) {
  using utils::IteratorType;
  Value acc = accumulator(init);
  acc =
      linalg::GenericOp::create(
          b, loc, TypeRange{acc.getType()}, ValueRange{grad}, ValueRange{acc},
          {b.getMultiDimIdentityMap(3), map({dim(2)}, 3)},
          {IteratorType::reduction, IteratorType::reduction,
           IteratorType::parallel},
          [&](OpBuilder &nb, Location l, ValueRange args) {
            yield(nb, l,
                  arith::AddFOp::create(nb, l, args[1], toF32(nb, l, args[0])));
          })
          .getResult(0);
  return roundInto(acc, init);
}

SmallVector<Value>
LayerBuilder::buildBackward(AttentionLayerBackwardOp backward) {
  HeadsAttr heads = op.heads;
  Forward f = forward(/*withLse=*/true);
  RopeAttr rope = op.rope;
  bool ropeKeys = rope && !rope.getQueriesOnly();
  Value input = op.input;
  Value source = op.memory ? op.memory : input;
  Value dOut = backward.getDOut();

  // Output projection: dW_o = concat^T dY, db_o = sum dY, and the
  // attention output's gradient dY W_o^T, split into heads (and rounded, as
  // the forward rounds the attention output).
  Value dWO = weightGradient(f.concatenated, dOut, backward.getDWO());
  Value dBO = op.bO ? biasGradient(dOut, backward.getDBO()) : Value();
  Value dConcat = project(dOut, transposeWeight(op.wO));
  Value dAttention = splitHeads(dConcat, /*bias=*/Value(), queryLen,
                                heads.getOutputHeads(), /*applyRope=*/false);

  Value dqInit = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, f.query), elementType);
  Value dkInit = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, f.key), elementType);
  Value dvInit = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, f.value), elementType);
  auto attention = AttentionBackwardOp::create(
      b, loc, TypeRange{dqInit.getType(), dkInit.getType(), dvInit.getType()},
      f.query, f.key, f.value, f.attention, dAttention, f.lse, dqInit, dkInit,
      dvInit, /*diagonal_offset=*/Value(), op.scale, op.mask, heads);

  // Projection gradients: heads merged, RoPE transposed.
  Value dQ = mergeHeads(attention->getResult(0), queryLen, rope != nullptr);
  Value dK = mergeHeads(attention->getResult(1), keyLen, ropeKeys);
  Value dV = mergeHeads(attention->getResult(2), keyLen, /*inverseRope=*/false);
  Value dWQ = weightGradient(input, dQ, backward.getDWQ());
  Value dWK = weightGradient(source, dK, backward.getDWK());
  Value dWV = weightGradient(source, dV, backward.getDWV());

  // dX sums the paths that read X: q, and k and v without memory.
  Value dInput = accumulator(backward.getDInput());
  dInput = project(dQ, transposeWeight(op.wQ), dInput);
  Value dSource = dInput;
  if (op.memory)
    dSource = accumulator(backward.getDMemory());
  dSource = project(dK, transposeWeight(op.wK), dSource);
  dSource = project(dV, transposeWeight(op.wV), dSource);
  SmallVector<Value> results;
  if (op.memory) {
    results.push_back(roundInto(dInput, backward.getDInput()));
    results.push_back(roundInto(dSource, backward.getDMemory()));
  } else {
    results.push_back(roundInto(dSource, backward.getDInput()));
  }
  results.append({dWQ, dWK, dWV, dWO});
  if (op.bQ)
    results.push_back(biasGradient(dQ, backward.getDBQ()));
  if (op.bK)
    results.push_back(biasGradient(dK, backward.getDBK()));
  if (op.bV)
    results.push_back(biasGradient(dV, backward.getDBV()));
  if (dBO)
    results.push_back(dBO);
  return results;
}
/// The projections and RoPE of the new tokens as tensors, sqa.decode on
/// buffers (it appends to the caches in place and attends), the head merge
/// and output projection as tensors again.
Value LayerBuilder::buildDecode(AttentionLayerDecodeOp decode) {
  HeadsAttr heads = op.heads;
  RopeAttr rope = op.rope;
  Value input = op.input;
  batch = tensor::getMixedSize(b, loc, input, 0);
  OpFoldResult newLen = tensor::getMixedSize(b, loc, input, 1);
  // Row b's new tokens sit at positions cache_lens[b] + i: the forward's
  // rotation with per-row starts.
  Value starts;
  if (rope) {
    auto lensType = cast<MemRefType>(decode.getCacheLens().getType());
    starts = bufferization::ToTensorOp::create(
        b, loc,
        RankedTensorType::get(lensType.getShape(), lensType.getElementType()),
        decode.getCacheLens(), /*restrict=*/b.getUnitAttr(),
        /*writable=*/UnitAttr());
    if (rope.getKind() == RopeKind::DynamicNTK)
      longest = getValueOrCreateConstantIndexOp(b, loc, newLen);
    else
      base = ropeBase(newLen, newLen);
  }
  // Buffers that sqa.decode reads (q, k_new, v_new) and writes (out).
  auto buffer = [&](int64_t numHeads) {
    SmallVector<Value> dynamicSizes;
    for (OpFoldResult size : {batch, newLen})
      if (auto value = dyn_cast<Value>(size))
        dynamicSizes.push_back(value);
    auto staticOr = [](OpFoldResult size) {
      return getConstantIntValue(size).value_or(ShapedType::kDynamic);
    };
    auto type = MemRefType::get(
        {staticOr(batch), numHeads, staticOr(newLen), headDim}, elementType);
    return memref::AllocOp::create(b, loc, type, dynamicSizes,
                                   b.getI64IntegerAttr(64))
        .getResult();
  };
  auto toBuffer = [&](Value tensor, int64_t numHeads) {
    Value memref = buffer(numHeads);
    bufferization::MaterializeInDestinationOp::create(
        b, loc, TypeRange(), tensor, memref, /*restrict=*/true,
        /*writable=*/true);
    return memref;
  };
  Value query = toBuffer(splitHeads(project(input, op.wQ), op.bQ, newLen,
                                    heads.getQuery(), rope != nullptr, starts),
                         heads.getQuery());
  Value keyNew, valueNew;
  if (decode.hasAppend()) {
    keyNew = toBuffer(splitHeads(project(input, op.wK), op.bK, newLen,
                                 heads.getKv(), rope != nullptr, starts),
                      heads.getKv());
    valueNew = toBuffer(splitHeads(project(input, op.wV), op.bV, newLen,
                                   heads.getKv(), /*applyRope=*/false),
                        heads.getKv());
  }
  Value out = buffer(heads.getOutputHeads());
  DecodeOp::create(b, loc, query, decode.getKeyCache(), decode.getValueCache(),
                   decode.getCacheLens(), keyNew, valueNew, out, op.scale,
                   op.mask, heads);
  auto outType = cast<MemRefType>(out.getType());
  Value attention = bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get(outType.getShape(), elementType), out,
      /*restrict=*/b.getUnitAttr(), /*writable=*/UnitAttr());
  // The buffer deallocation pipeline frees the buffers after their last use.
  return outputInto(concatHeads(attention, newLen), decode.getInit());
}

/// The forward's key/value half on the memory: k rotated at memory
/// positions (unless queries_only), with dynamic NTK's base of T.
std::pair<Value, Value> LayerBuilder::buildKeysValues(AttentionLayerKVOp kv) {
  HeadsAttr heads = op.heads;
  Value memory = op.input;
  batch = tensor::getMixedSize(b, loc, memory, 0);
  OpFoldResult len = tensor::getMixedSize(b, loc, memory, 1);
  bool ropeKeys = op.rope && !op.rope.getQueriesOnly();
  if (ropeKeys)
    base = ropeBase(len, len);
  Value key =
      splitHeads(project(memory, op.wK), op.bK, len, heads.getKv(), ropeKeys);
  Value value = splitHeads(project(memory, op.wV), op.bV, len, heads.getKv(),
                           /*applyRope=*/false);
  // Into the destinations, which may be views of the caches.
  auto copy = [&](Value from, Value to) {
    return linalg::CopyOp::create(b, loc, from, to).getResult(0);
  };
  return {copy(key, kv.getKeyInit()), copy(value, kv.getValueInit())};
}

namespace {
struct DecomposeAttentionLayerPass
    : public sqa::impl::DecomposeAttentionLayerBase<
          DecomposeAttentionLayerPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<AttentionLayerOp, AttentionLayerBackwardOp,
              AttentionLayerDecodeOp, AttentionLayerKVOp>(op))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      if (auto layer = dyn_cast<AttentionLayerOp>(op)) {
        Value replacement =
            LayerBuilder(rewriter, op->getLoc(), LayerParts::of(layer))
                .build(layer.getInit());
        rewriter.replaceOp(op, replacement);
        continue;
      }
      if (auto decode = dyn_cast<AttentionLayerDecodeOp>(op)) {
        rewriter.replaceOp(
            op, LayerBuilder(rewriter, op->getLoc(), LayerParts::of(decode))
                    .buildDecode(decode));
        continue;
      }
      if (auto kv = dyn_cast<AttentionLayerKVOp>(op)) {
        auto [key, value] =
            LayerBuilder(rewriter, op->getLoc(), LayerParts::of(kv))
                .buildKeysValues(kv);
        rewriter.replaceOp(op, ValueRange{key, value});
        continue;
      }
      auto backward = cast<AttentionLayerBackwardOp>(op);
      rewriter.replaceOp(
          op, LayerBuilder(rewriter, op->getLoc(), LayerParts::of(backward))
                  .buildBackward(backward));
    }
  }
};
} // namespace
