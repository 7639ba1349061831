//===- LowerFlashAttention.cpp - FlashAttention-2 loops with vectors ------===//
//
// Lowers buffer-form sqa.attention to FlashAttention-2 on the CPU. The query
// rows of all heads that share a key/value head are stacked into one block,
// so every packed key/value block serves the whole group. Scores, softmax
// and accumulation are f32; the micro-kernels are broadcast-FMA outer
// products with `mr` x `nr` vector accumulators held in registers.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/Passes.h"

#include "OuterProductLoop.h"
#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERFLASHATTENTION
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

struct KernelShape {
  int64_t vectorWidth, kvBlock, rows, vectors;
};

/// Emits the loops for one op. Index and f32 helpers keep the structure of
/// the algorithm readable.
class FlashBuilder {
public:
  FlashBuilder(RewriterBase &rewriter, AttentionOp op, KernelShape shape)
      : b(rewriter), loc(op.getLoc()), op(op), shape(shape),
        f32(b.getF32Type()),
        vecType(VectorType::get({shape.vectorWidth}, b.getF32Type())) {}

  void build();

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32c(float v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value andi(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value ceilDiv(Value x, int64_t d) {
    return arith::CeilDivSIOp::create(b, loc, x, idx(d));
  }
  Value floorDiv(Value x, int64_t d) {
    return arith::FloorDivSIOp::create(b, loc, x, idx(d));
  }
  Value dim(Value memref, int64_t d) {
    return memref::DimOp::create(b, loc, memref, d);
  }
  Value zeroVector() {
    return arith::ConstantOp::create(b, loc, b.getZeroAttr(vecType));
  }
  Value broadcast(Value scalar) {
    return vector::BroadcastOp::create(b, loc, vecType, scalar);
  }
  Value loadVector(Value memref, ValueRange indices) {
    return vector::LoadOp::create(b, loc, vecType, memref, indices);
  }
  void storeVector(Value value, Value memref, ValueRange indices) {
    vector::StoreOp::create(b, loc, value, memref, indices);
  }
  Value loadF32(Value memref, ValueRange indices) {
    Value value = memref::LoadOp::create(b, loc, memref, indices);
    return value.getType() == f32 ? value
                                  : arith::ExtFOp::create(b, loc, f32, value);
  }
  Value alloc(ArrayRef<int64_t> shape, ValueRange dynamicSizes) {
    auto type = MemRefType::get(shape, f32);
    return memref::AllocOp::create(b, loc, type, dynamicSizes,
                                   b.getI64IntegerAttr(64));
  }

  /// scf.for over [lb, ub) with `step`; `body` builds at the loop's start.
  void forLoop(Value lb, Value ub, int64_t step,
               function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, idx(step));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }
  /// scf.for carrying `init`; `body` returns the next values.
  SmallVector<Value>
  forLoop(Value lb, Value ub, int64_t step, ValueRange init,
          function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, idx(step), init);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    SmallVector<Value> next =
        body(loop.getInductionVar(), loop.getRegionIterArgs());
    scf::YieldOp::create(b, loc, next);
    return loop.getResults();
  }
  void ifThenElse(Value cond, function_ref<void()> thenBody,
                  function_ref<void()> elseBody = nullptr) {
    auto ifOp = scf::IfOp::create(
        b, loc, cond, /*withElseRegion=*/static_cast<bool>(elseBody));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    thenBody();
    if (elseBody) {
      b.setInsertionPointToStart(ifOp.elseBlock());
      elseBody();
    }
  }

  void packQuery(Value batch, Value queryHead0);
  void packKeysAndValues(Value batch, Value kvHead, Value keyStart,
                         Value validKeys);
  void scoreKernel();
  void maskBlock(Value keyStart, Value validKeys);
  void onlineSoftmax();
  void accumulateKernel();
  void writeOutput(Value batch, Value outHead0);

  RewriterBase &b;
  Location loc;
  AttentionOp op;
  KernelShape shape;
  Type f32;
  VectorType vecType;

  // Problem sizes and scratch buffers, set by build().
  int64_t headDim = 0, valueDim = 0, paddedValueDim = 0;
  Value queryLen, keyLen, rows, paddedRows, diagonalOffset;
  MaskAttr mask;
  Value packedQuery, acc, rowMax, rowSum, rescale, scores, packedKeys,
      packedValues;
};

} // namespace

void FlashBuilder::packQuery(Value batch, Value queryHead0) {
  Value scale = f32c(op.getScaleOrDefault());
  forLoop(idx(0), paddedRows, 1, [&](Value r) {
    ifThenElse(
        cmp(arith::CmpIPredicate::slt, r, rows),
        [&] {
          Value head =
              add(queryHead0, arith::DivUIOp::create(b, loc, r, queryLen));
          Value pos = arith::RemUIOp::create(b, loc, r, queryLen);
          forLoop(idx(0), idx(headDim), 1, [&](Value d) {
            Value x = loadF32(op.getQuery(), {batch, head, pos, d});
            memref::StoreOp::create(b, loc,
                                    arith::MulFOp::create(b, loc, x, scale),
                                    packedQuery, ValueRange{r, d});
          });
        },
        [&] {
          forLoop(idx(0), idx(headDim), 1, [&](Value d) {
            memref::StoreOp::create(b, loc, f32c(0.0f), packedQuery,
                                    ValueRange{r, d});
          });
        });
  });
}

void FlashBuilder::packKeysAndValues(Value batch, Value kvHead, Value keyStart,
                                     Value validKeys) {
  forLoop(idx(0), idx(shape.kvBlock), 1, [&](Value n) {
    ifThenElse(
        cmp(arith::CmpIPredicate::slt, n, validKeys),
        [&] {
          Value key = add(keyStart, n);
          // K transposed: keys contiguous, so Q.K^T is an outer product.
          forLoop(idx(0), idx(headDim), 1, [&](Value d) {
            memref::StoreOp::create(
                b, loc, loadF32(op.getKey(), {batch, kvHead, key, d}),
                packedKeys, ValueRange{d, n});
          });
          forLoop(idx(0), idx(valueDim), 1, [&](Value d) {
            memref::StoreOp::create(
                b, loc, loadF32(op.getValue(), {batch, kvHead, key, d}),
                packedValues, ValueRange{n, d});
          });
        },
        [&] {
          // Keys past T: zero K and V (their scores are masked to -inf).
          forLoop(idx(0), idx(headDim), 1, [&](Value d) {
            memref::StoreOp::create(b, loc, f32c(0.0f), packedKeys,
                                    ValueRange{d, n});
          });
          forLoop(idx(0), idx(paddedValueDim), shape.vectorWidth, [&](Value d) {
            storeVector(zeroVector(), packedValues, {n, d});
          });
        });
  });
}

/// scores[r, n] = sum_d q[r, d] * k[n, d] on mr x nr register tiles.
void FlashBuilder::scoreKernel() {
  int64_t mr = shape.rows, nr = shape.vectors, w = shape.vectorWidth;
  forLoop(idx(0), paddedRows, mr, [&](Value r0) {
    forLoop(idx(0), idx(shape.kvBlock), nr * w, [&](Value c0) {
      SmallVector<Value> cols;
      for (int64_t v = 0; v < nr; ++v)
        cols.push_back(add(c0, idx(v * w)));
      SmallVector<Value> rowIdx;
      for (int64_t i = 0; i < mr; ++i)
        rowIdx.push_back(add(r0, idx(i)));
      SmallVector<Value> init(mr * nr, zeroVector());
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, idx(0), idx(headDim), init, mr, nr, vecType,
          [&](Value d, int64_t v) {
            return loadVector(packedKeys, {d, cols[v]});
          },
          [&](Value d, int64_t i) -> Value {
            return memref::LoadOp::create(b, loc, packedQuery,
                                          ValueRange{rowIdx[i], d});
          });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], scores, {rowIdx[i], cols[v]});
    });
  });
}

/// Sets hidden positions of a block that crosses a mask bound (or runs past
/// T) to -inf.
void FlashBuilder::maskBlock(Value keyStart, Value validKeys) {
  Value negInf = f32c(-std::numeric_limits<float>::infinity());
  int64_t right = mask ? mask.getEffectiveRightBound() : -1;
  int64_t left = mask ? mask.getWindowLeft() : -1;
  forLoop(idx(0), rows, 1, [&](Value r) {
    Value pos = arith::RemUIOp::create(b, loc, r, queryLen);
    Value diagonal = diagonalOffset ? add(pos, diagonalOffset) : Value();
    forLoop(idx(0), idx(shape.kvBlock), 1, [&](Value n) {
      Value key = add(keyStart, n);
      Value visible = cmp(arith::CmpIPredicate::slt, n, validKeys);
      if (right >= 0)
        visible = andi(visible, cmp(arith::CmpIPredicate::sle, key,
                                    add(diagonal, idx(right))));
      if (left >= 0)
        visible = andi(visible, cmp(arith::CmpIPredicate::sge, key,
                                    sub(diagonal, idx(left))));
      Value s = memref::LoadOp::create(b, loc, scores, ValueRange{r, n});
      memref::StoreOp::create(
          b, loc, arith::SelectOp::create(b, loc, visible, s, negInf), scores,
          ValueRange{r, n});
    });
  });
}

/// Online softmax of one block, per row: new max, rescale factor for the
/// accumulator, probabilities in place of the scores, running sum.
void FlashBuilder::onlineSoftmax() {
  int64_t w = shape.vectorWidth;
  float inf = std::numeric_limits<float>::infinity();
  forLoop(idx(0), paddedRows, 1, [&](Value r) {
    Value negInfVec = broadcast(f32c(-inf));
    Value blockMaxVec =
        forLoop(idx(0), idx(shape.kvBlock), w, {negInfVec},
                [&](Value c, ValueRange m) -> SmallVector<Value> {
                  return {arith::MaximumFOp::create(
                      b, loc, m[0], loadVector(scores, {r, c}))};
                })[0];
    Value blockMax = vector::ReductionOp::create(
        b, loc, vector::CombiningKind::MAXIMUMF, blockMaxVec);
    Value oldMax = memref::LoadOp::create(b, loc, rowMax, ValueRange{r});
    Value newMax = arith::MaximumFOp::create(b, loc, oldMax, blockMax);
    // A row that has seen only hidden keys keeps max -inf; shift by 0 then,
    // so that exp never sees -inf - -inf.
    Value negInf = f32c(-inf);
    Value shift = arith::SelectOp::create(
        b, loc,
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, newMax,
                              negInf),
        f32c(0.0f), newMax);
    Value oldIsEmpty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                             oldMax, negInf);
    Value alpha = arith::SelectOp::create(
        b, loc, oldIsEmpty, f32c(0.0f),
        math::ExpOp::create(b, loc,
                            arith::SubFOp::create(b, loc, oldMax, shift)));
    Value shiftVec = broadcast(shift);
    Value zero = zeroVector();
    Value sumVec =
        forLoop(idx(0), idx(shape.kvBlock), w, {zero},
                [&](Value c, ValueRange sum) -> SmallVector<Value> {
                  Value s = loadVector(scores, {r, c});
                  Value hidden = arith::CmpFOp::create(
                      b, loc, arith::CmpFPredicate::OEQ, s, negInfVec);
                  Value p = arith::SelectOp::create(
                      b, loc, hidden, zero,
                      math::ExpOp::create(
                          b, loc, arith::SubFOp::create(b, loc, s, shiftVec)));
                  storeVector(p, scores, {r, c});
                  return {arith::AddFOp::create(b, loc, sum[0], p)};
                })[0];
    Value blockSum =
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, sumVec);
    Value oldSum = memref::LoadOp::create(b, loc, rowSum, ValueRange{r});
    Value newSum = arith::AddFOp::create(
        b, loc, arith::MulFOp::create(b, loc, alpha, oldSum), blockSum);
    memref::StoreOp::create(b, loc, newSum, rowSum, ValueRange{r});
    memref::StoreOp::create(b, loc, newMax, rowMax, ValueRange{r});
    memref::StoreOp::create(b, loc, alpha, rescale, ValueRange{r});
  });
}

/// acc[r, :] = alpha[r] * acc[r, :] + sum_n p[r, n] * v[n, :] on register
/// tiles.
void FlashBuilder::accumulateKernel() {
  int64_t mr = shape.rows, nr = shape.vectors, w = shape.vectorWidth;
  forLoop(idx(0), paddedRows, mr, [&](Value r0) {
    forLoop(idx(0), idx(paddedValueDim), nr * w, [&](Value c0) {
      SmallVector<Value> cols, rowIdx, init;
      for (int64_t v = 0; v < nr; ++v)
        cols.push_back(add(c0, idx(v * w)));
      for (int64_t i = 0; i < mr; ++i) {
        rowIdx.push_back(add(r0, idx(i)));
        Value alpha = broadcast(
            memref::LoadOp::create(b, loc, rescale, ValueRange{rowIdx[i]}));
        for (int64_t v = 0; v < nr; ++v)
          init.push_back(arith::MulFOp::create(
              b, loc, alpha, loadVector(acc, {rowIdx[i], cols[v]})));
      }
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, idx(0), idx(shape.kvBlock), init, mr, nr, vecType,
          [&](Value n, int64_t v) {
            return loadVector(packedValues, {n, cols[v]});
          },
          [&](Value n, int64_t i) -> Value {
            return memref::LoadOp::create(b, loc, scores,
                                          ValueRange{rowIdx[i], n});
          });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], acc, {rowIdx[i], cols[v]});
    });
  });
}

void FlashBuilder::writeOutput(Value batch, Value outHead0) {
  Type elementType = op.getInitType().getElementType();
  forLoop(idx(0), rows, 1, [&](Value r) {
    Value head = add(outHead0, arith::DivUIOp::create(b, loc, r, queryLen));
    Value pos = arith::RemUIOp::create(b, loc, r, queryLen);
    Value sum = memref::LoadOp::create(b, loc, rowSum, ValueRange{r});
    // A row that saw no key has sum 0 and yields 0.
    Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, sum,
                                        f32c(0.0f));
    Value inverse =
        arith::SelectOp::create(b, loc, empty, f32c(0.0f),
                                arith::DivFOp::create(b, loc, f32c(1.0f), sum));
    forLoop(idx(0), idx(valueDim), 1, [&](Value d) {
      Value x = memref::LoadOp::create(b, loc, acc, ValueRange{r, d});
      Value y = arith::MulFOp::create(b, loc, x, inverse);
      if (elementType != f32)
        y = arith::TruncFOp::create(b, loc, elementType, y);
      memref::StoreOp::create(b, loc, y, op.getInit(),
                              ValueRange{batch, head, pos, d});
    });
  });
}

void FlashBuilder::build() {
  int64_t w = shape.vectorWidth;
  headDim = op.getHeadDim();
  valueDim = op.getValueHeadDim();
  int64_t chunk = shape.vectors * w;
  paddedValueDim = (valueDim + chunk - 1) / chunk * chunk;
  int64_t numQueryHeads = op.getNumQueryHeads(),
          numKVHeads = op.getNumKVHeads();
  bool reverse = op.isReverse();
  int64_t groupSize =
      reverse ? numKVHeads / numQueryHeads : numQueryHeads / numKVHeads;
  int64_t stackedHeads = reverse ? 1 : groupSize;

  mask = op.getEffectiveMask();
  diagonalOffset = mask ? op.buildDiagonalOffset(b, loc) : Value();
  Value batchSize = dim(op.getQuery(), 0);
  queryLen = dim(op.getQuery(), 2);
  keyLen = dim(op.getKey(), 2);
  rows = mul(queryLen, idx(stackedHeads));
  paddedRows = mul(ceilDiv(rows, shape.rows), idx(shape.rows));

  int64_t kvBlock = shape.kvBlock;
  packedQuery = alloc({ShapedType::kDynamic, headDim}, {paddedRows});
  acc = alloc({ShapedType::kDynamic, paddedValueDim}, {paddedRows});
  rowMax = alloc({ShapedType::kDynamic}, {paddedRows});
  rowSum = alloc({ShapedType::kDynamic}, {paddedRows});
  rescale = alloc({ShapedType::kDynamic}, {paddedRows});
  scores = alloc({ShapedType::kDynamic, kvBlock}, {paddedRows});
  packedKeys = alloc({headDim, kvBlock}, {});
  packedValues = alloc({kvBlock, paddedValueDim}, {});
  // Padding columns of V stay zero for the whole op.
  forLoop(idx(0), idx(kvBlock), 1, [&](Value n) {
    forLoop(idx(0), idx(paddedValueDim), w, [&](Value d) {
      storeVector(zeroVector(), packedValues, {n, d});
    });
  });

  // Key blocks any row can see. Row i sees keys in
  // [i + off - left, i + off + right] (each bound only if set).
  int64_t right = mask ? mask.getEffectiveRightBound() : -1;
  int64_t left = mask ? mask.getWindowLeft() : -1;
  Value firstKey = idx(0), endKey = keyLen;
  if (left >= 0)
    firstKey = max(idx(0), sub(diagonalOffset, idx(left)));
  if (right >= 0)
    endKey = min(keyLen, add(add(diagonalOffset, queryLen), idx(right)));
  Value firstBlock = floorDiv(firstKey, kvBlock);
  Value endBlock = max(firstBlock, ceilDiv(endKey, kvBlock));

  float inf = std::numeric_limits<float>::infinity();
  forLoop(idx(0), batchSize, 1, [&](Value batch) {
    forLoop(idx(0), idx(numKVHeads), 1, [&](Value kvHead) {
      Value queryHead0 =
          reverse ? floorDiv(kvHead, groupSize) : mul(kvHead, idx(groupSize));
      Value outHead0 = reverse ? kvHead : queryHead0;
      packQuery(batch, queryHead0);
      forLoop(idx(0), paddedRows, 1, [&](Value r) {
        memref::StoreOp::create(b, loc, f32c(-inf), rowMax, ValueRange{r});
        memref::StoreOp::create(b, loc, f32c(0.0f), rowSum, ValueRange{r});
        forLoop(idx(0), idx(paddedValueDim), w, [&](Value d) {
          storeVector(zeroVector(), acc, {r, d});
        });
      });
      forLoop(firstBlock, endBlock, 1, [&](Value block) {
        Value keyStart = mul(block, idx(kvBlock));
        Value validKeys = min(idx(kvBlock), sub(keyLen, keyStart));
        packKeysAndValues(batch, kvHead, keyStart, validKeys);
        scoreKernel();
        // Only blocks that run past T or cross a mask bound for some row
        // pay for element-wise masking.
        Value partial = cmp(arith::CmpIPredicate::slt, validKeys, idx(kvBlock));
        if (right >= 0)
          partial = arith::OrIOp::create(b, loc, partial,
                                         cmp(arith::CmpIPredicate::sgt,
                                             add(keyStart, idx(kvBlock - 1)),
                                             add(diagonalOffset, idx(right))));
        if (left >= 0)
          partial = arith::OrIOp::create(
              b, loc, partial,
              cmp(arith::CmpIPredicate::slt, keyStart,
                  sub(add(diagonalOffset, sub(queryLen, idx(1))), idx(left))));
        ifThenElse(partial, [&] { maskBlock(keyStart, validKeys); });
        onlineSoftmax();
        accumulateKernel();
      });
      writeOutput(batch, outHead0);
    });
  });

  for (Value buffer : {packedQuery, acc, rowMax, rowSum, rescale, scores,
                       packedKeys, packedValues})
    memref::DeallocOp::create(b, loc, buffer);
}

namespace {
struct LowerFlashAttentionPass
    : public sqa::impl::LowerFlashAttentionBase<LowerFlashAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    if (vectorWidth <= 0 || rowsPerKernel <= 0 || vectorsPerKernel <= 0 ||
        kvBlock <= 0 || kvBlock % (vectorWidth * vectorsPerKernel) != 0) {
      emitError(getOperation()->getLoc())
          << "kv-block (" << static_cast<int64_t>(kvBlock)
          << ") must be a positive multiple of nr * vector-width ("
          << vectorsPerKernel * vectorWidth << ")";
      return signalPassFailure();
    }
    KernelShape shape{vectorWidth, kvBlock, rowsPerKernel, vectorsPerKernel};
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      if (!op.hasPureBufferSemantics()) {
        op.emitOpError("sqa-lower-flash-attention needs buffer semantics; "
                       "bufferize first");
        return signalPassFailure();
      }
      rewriter.setInsertionPoint(op);
      FlashBuilder(rewriter, op, shape).build();
      rewriter.eraseOp(op);
    }
    if (ops.empty())
      return;
    // exp on vectors becomes a polynomial in vector ops instead of one libm
    // call per lane.
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == "exp" || name == "math.exp";
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
