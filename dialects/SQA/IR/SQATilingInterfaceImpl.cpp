//===- SQATilingInterfaceImpl.cpp - Tiling sqa.attention ------------------===//
//
// sqa.attention tiles over (batch, output heads, query rows); keys and values
// are never tiled here (the kernel lowering walks them in blocks). A head tile
// keeps whole groups, so one tile reads each key/value head once for all the
// query heads that share it.
//
//===----------------------------------------------------------------------===//

#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::sqa;

static OpFoldResult getMixedDim(OpBuilder &b, Location loc, Value shaped,
                                int64_t dim) {
  if (isa<MemRefType>(shaped.getType()))
    return memref::getMixedSize(b, loc, shaped, dim);
  return tensor::getMixedSize(b, loc, shaped, dim);
}

/// The key position of query row 0's diagonal: the explicit offset, else 0
/// (top-left) or T - S (bottom-right).
static Value buildDiagonalOffsetOf(OpBuilder &b, Location loc, Value offset,
                                   MaskAttr mask, Value query, Value key) {
  if (offset)
    return offset;
  if (!mask || mask.getAlignment() == MaskAlignment::TopLeft)
    return arith::ConstantIndexOp::create(b, loc, 0);
  Value keyLen =
      getValueOrCreateConstantIndexOp(b, loc, getMixedDim(b, loc, key, 2));
  Value queryLen =
      getValueOrCreateConstantIndexOp(b, loc, getMixedDim(b, loc, query, 2));
  return arith::SubIOp::create(b, loc, keyLen, queryLen);
}

Value AttentionOp::buildDiagonalOffset(OpBuilder &b, Location loc) {
  return buildDiagonalOffsetOf(b, loc, getDiagonalOffset(), getMaskAttr(),
                               getQuery(), getKey());
}

Value AttentionBackwardOp::buildDiagonalOffset(OpBuilder &b, Location loc) {
  return buildDiagonalOffsetOf(b, loc, getDiagonalOffset(), getMaskAttr(),
                               getQuery(), getKey());
}

SmallVector<utils::IteratorType> AttentionOp::getLoopIteratorTypes() {
  return SmallVector<utils::IteratorType>(3, utils::IteratorType::parallel);
}

SmallVector<Range> AttentionOp::getIterationDomain(OpBuilder &b) {
  Location loc = getLoc();
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  return {Range{zero, getMixedDim(b, loc, getQuery(), 0), one},
          Range{zero, b.getIndexAttr(getNumOutputHeads()), one},
          Range{zero, getMixedDim(b, loc, getQuery(), 2), one}};
}

LogicalResult AttentionOp::getResultTilePosition(
    OpBuilder &b, unsigned resultNumber, ArrayRef<OpFoldResult> offsets,
    ArrayRef<OpFoldResult> sizes, SmallVector<OpFoldResult> &resultOffsets,
    SmallVector<OpFoldResult> &resultSizes) {
  resultOffsets = {offsets[0], offsets[1], offsets[2]};
  resultSizes = {sizes[0], sizes[1], sizes[2]};
  // Result 1 is the lse [B, H, S]; result 0 has the value head dim.
  if (resultNumber == 0) {
    resultOffsets.push_back(b.getIndexAttr(0));
    resultSizes.push_back(b.getIndexAttr(getValueHeadDim()));
  }
  return success();
}

FailureOr<TilingResult>
AttentionOp::getTiledImplementation(OpBuilder &b,
                                    ArrayRef<OpFoldResult> offsets,
                                    ArrayRef<OpFoldResult> sizes) {
  if (!hasPureTensorSemantics())
    return emitOpError("can only be tiled with tensor semantics");
  Location loc = getLoc();
  int64_t groupSize = getHeadMapping().groupSize();
  // A head tile must cover whole groups or lie within one.
  std::optional<int64_t> headTile = getConstantIntValue(sizes[1]);
  if (!headTile || (*headTile % groupSize != 0 && groupSize % *headTile != 0))
    return emitOpError() << "head tile must be a static multiple or divisor "
                            "of the group size ("
                         << groupSize << ")";
  AffineExpr d0 = b.getAffineDimExpr(0);
  OpFoldResult sharedOffset = affine::makeComposedFoldedAffineApply(
      b, loc, d0.floorDiv(groupSize), {offsets[1]});
  OpFoldResult sharedSize =
      b.getIndexAttr(std::max<int64_t>(1, *headTile / groupSize));

  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> strides(4, one);
  SmallVector<Operation *> slices;
  auto slice = [&](Value source, OpFoldResult headOffset, OpFoldResult headSize,
                   OpFoldResult seqOffset, OpFoldResult seqSize) {
    OpFoldResult dim =
        b.getIndexAttr(cast<ShapedType>(source.getType()).getDimSize(3));
    auto op = tensor::ExtractSliceOp::create(
        b, loc, source, {offsets[0], headOffset, seqOffset, zero},
        {sizes[0], headSize, seqSize, dim}, strides);
    slices.push_back(op);
    return op.getResult();
  };
  bool reverse = isReverse();
  OpFoldResult keyLen = getMixedDim(b, loc, getKey(), 2);
  Value query =
      reverse
          ? slice(getQuery(), sharedOffset, sharedSize, offsets[2], sizes[2])
          : slice(getQuery(), offsets[1], sizes[1], offsets[2], sizes[2]);
  OpFoldResult kvOffset = reverse ? offsets[1] : sharedOffset;
  OpFoldResult kvSize = reverse ? sizes[1] : sharedSize;
  Value key = slice(getKey(), kvOffset, kvSize, zero, keyLen);
  Value value = slice(getValue(), kvOffset, kvSize, zero, keyLen);
  Value init = slice(getInit(), offsets[1], sizes[1], offsets[2], sizes[2]);
  SmallVector<Type> resultTypes = {init.getType()};
  Value lse;
  if (getLse()) {
    auto op = tensor::ExtractSliceOp::create(
        b, loc, getLse(), {offsets[0], offsets[1], offsets[2]},
        {sizes[0], sizes[1], sizes[2]}, {one, one, one});
    slices.push_back(op);
    lse = op.getResult();
    resultTypes.push_back(lse.getType());
  }

  // Rows [s0, s0 + n) keep their global diagonal.
  Value diagonalOffset;
  if (getEffectiveMask()) {
    Value rowOffset = getValueOrCreateConstantIndexOp(b, loc, offsets[2]);
    diagonalOffset =
        arith::AddIOp::create(b, loc, buildDiagonalOffset(b, loc), rowOffset);
  }
  // The head configuration describes the whole layer, not a tile.
  auto tiled = AttentionOp::create(b, loc, resultTypes, query, key, value, init,
                                   lse, diagonalOffset, getScaleAttr(),
                                   getMaskAttr(), HeadsAttr());
  return TilingResult{{tiled}, SmallVector<Value>(tiled->getResults()), slices};
}
