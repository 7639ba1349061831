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
#include "SQA/Utils/LoweringBuilder.h"

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

/// Emits the loops for one op on the shared lowering vocabulary; the vector
/// helpers below are this backend's own leaves.
class FlashBuilder : public LoweringBuilder {
public:
  FlashBuilder(RewriterBase &rewriter, AttentionOp op, KernelShape shape)
      : LoweringBuilder(rewriter, op.getLoc()), b(rewriter), loc(op.getLoc()),
        op(op), shape(shape), f32Type(b.getF32Type()),
        vecType(VectorType::get({shape.vectorWidth}, b.getF32Type())) {}

  void build();

private:
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
  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, loc, memref, indices);
  }
  void store(Value value, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, loc, value, memref, indices);
  }
  Value loadF32(Value memref, ValueRange indices) {
    return toF32(load(memref, indices));
  }
  Value alloc(ArrayRef<int64_t> shape, ValueRange dynamicSizes) {
    auto type = MemRefType::get(shape, f32Type);
    return memref::AllocOp::create(b, loc, type, dynamicSizes,
                                   b.getI64IntegerAttr(64));
  }
  /// The key diagonal of stacked row `r` (position r mod S).
  Value diagonalOfRow(Value r) {
    return add(remU(r, queryLen), diagonalOffset);
  }

  void packQuery(Value batch, Value outHead0);
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
  Type f32Type;
  VectorType vecType;

  // Problem sizes and scratch buffers, set by build().
  int64_t headDim = 0, valueDim = 0, paddedValueDim = 0;
  HeadMapping heads;
  Value queryLen, keyLen, rows, paddedRows, diagonalOffset;
  MaskBounds mask;
  Value packedQuery, acc, rowMax, rowSum, rescale, scores, packedKeys,
      packedValues;
};

} // namespace

void FlashBuilder::packQuery(Value batch, Value outHead0) {
  Value scale = f32(op.getScaleOrDefault());
  forLoop(index(0), paddedRows, 1, [&](Value r) {
    ifThenElse(
        slt(r, rows),
        [&] {
          Value head =
              heads.queryHeadOf(*this, add(outHead0, divU(r, queryLen)));
          Value pos = remU(r, queryLen);
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            Value x = loadF32(op.getQuery(), {batch, head, pos, d});
            store(mulF(x, scale), packedQuery, {r, d});
          });
        },
        [&] {
          forLoop(index(0), index(headDim), 1,
                  [&](Value d) { store(f32(0.0f), packedQuery, {r, d}); });
        });
  });
}

void FlashBuilder::packKeysAndValues(Value batch, Value kvHead, Value keyStart,
                                     Value validKeys) {
  forLoop(index(0), index(shape.kvBlock), 1, [&](Value n) {
    ifThenElse(
        slt(n, validKeys),
        [&] {
          Value key = add(keyStart, n);
          // K transposed: keys contiguous, so Q.K^T is an outer product.
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            store(loadF32(op.getKey(), {batch, kvHead, key, d}), packedKeys,
                  {d, n});
          });
          forLoop(index(0), index(valueDim), 1, [&](Value d) {
            store(loadF32(op.getValue(), {batch, kvHead, key, d}),
                  packedValues, {n, d});
          });
        },
        [&] {
          // Keys past T: zero K and V (their scores are masked to -inf).
          forLoop(index(0), index(headDim), 1,
                  [&](Value d) { store(f32(0.0f), packedKeys, {d, n}); });
          forLoop(index(0), index(paddedValueDim), shape.vectorWidth,
                  [&](Value d) { storeVector(zeroVector(), packedValues, {n, d}); });
        });
  });
}

/// scores[r, n] = sum_d q[r, d] * k[n, d] on mr x nr register tiles.
void FlashBuilder::scoreKernel() {
  int64_t mr = shape.rows, nr = shape.vectors, w = shape.vectorWidth;
  forLoop(index(0), paddedRows, mr, [&](Value r0) {
    forLoop(index(0), index(shape.kvBlock), nr * w, [&](Value c0) {
      SmallVector<Value> cols, rowIdx;
      for (int64_t v = 0; v < nr; ++v)
        cols.push_back(add(c0, v * w));
      for (int64_t i = 0; i < mr; ++i)
        rowIdx.push_back(add(r0, i));
      SmallVector<Value> init(mr * nr, zeroVector());
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, index(0), index(headDim), init, mr, nr, vecType,
          [&](Value d, int64_t v) {
            return loadVector(packedKeys, {d, cols[v]});
          },
          [&](Value d, int64_t i) { return load(packedQuery, {rowIdx[i], d}); });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], scores, {rowIdx[i], cols[v]});
    });
  });
}

/// Sets hidden positions of a block that crosses a mask bound (or runs past
/// T) to -inf.
void FlashBuilder::maskBlock(Value keyStart, Value validKeys) {
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  forLoop(index(0), rows, 1, [&](Value r) {
    Value diagonal = mask.isRestrictive() ? diagonalOfRow(r) : Value();
    forLoop(index(0), index(shape.kvBlock), 1, [&](Value n) {
      Value visible = slt(n, validKeys);
      if (mask.isRestrictive())
        visible =
            andI(visible, isKeyVisible(*this, mask, diagonal, add(keyStart, n)));
      store(select(visible, load(scores, {r, n}), negInf), scores, {r, n});
    });
  });
}

/// Online softmax of one block, per row: new max, rescale factor for the
/// accumulator, probabilities in place of the scores, running sum. The
/// recurrence is OnlineSoftmax's; the row reductions are this kernel's.
void FlashBuilder::onlineSoftmax() {
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  int64_t w = shape.vectorWidth;
  float inf = std::numeric_limits<float>::infinity();
  auto expFn = [&](Value x) { return this->exp(x); };
  // The polynomial exp is not trusted at -inf: the rules guard it.
  Softmax::Exponential exp{expFn, /*zeroAtNegInf=*/false};
  forLoop(index(0), paddedRows, 1, [&](Value r) {
    Value blockMaxVec =
        forLoop(index(0), index(shape.kvBlock), w, {broadcast(f32(-inf))},
                [&](Value c, ValueRange m) -> SmallVector<Value> {
                  return {maxF(m[0], loadVector(scores, {r, c}))};
                })[0];
    Value blockMax = vector::ReductionOp::create(
        b, loc, vector::CombiningKind::MAXNUMF, blockMaxVec);
    Value oldMax = load(rowMax, {r});
    Value newMax = maxF(oldMax, blockMax);
    Value alpha = Softmax::rescale(*this, oldMax, newMax, exp);
    Value shiftVec = broadcast(Softmax::shift(*this, newMax));
    Value sumVec =
        forLoop(index(0), index(shape.kvBlock), w, {zeroVector()},
                [&](Value c, ValueRange sum) -> SmallVector<Value> {
                  Value p = Softmax::probability(
                      *this, loadVector(scores, {r, c}), shiftVec, exp);
                  storeVector(p, scores, {r, c});
                  return {addF(sum[0], p)};
                })[0];
    Value blockSum =
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, sumVec);
    store(Softmax::nextSum(*this, alpha, load(rowSum, {r}), blockSum), rowSum,
          {r});
    store(newMax, rowMax, {r});
    store(alpha, rescale, {r});
  });
}

/// acc[r, :] = alpha[r] * acc[r, :] + sum_n p[r, n] * v[n, :] on register
/// tiles.
void FlashBuilder::accumulateKernel() {
  int64_t mr = shape.rows, nr = shape.vectors, w = shape.vectorWidth;
  forLoop(index(0), paddedRows, mr, [&](Value r0) {
    forLoop(index(0), index(paddedValueDim), nr * w, [&](Value c0) {
      SmallVector<Value> cols, rowIdx, init;
      for (int64_t v = 0; v < nr; ++v)
        cols.push_back(add(c0, v * w));
      for (int64_t i = 0; i < mr; ++i) {
        rowIdx.push_back(add(r0, i));
        Value alpha = broadcast(load(rescale, {rowIdx[i]}));
        for (int64_t v = 0; v < nr; ++v)
          init.push_back(mulF(alpha, loadVector(acc, {rowIdx[i], cols[v]})));
      }
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, index(0), index(shape.kvBlock), init, mr, nr, vecType,
          [&](Value n, int64_t v) {
            return loadVector(packedValues, {n, cols[v]});
          },
          [&](Value n, int64_t i) { return load(scores, {rowIdx[i], n}); });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], acc, {rowIdx[i], cols[v]});
    });
  });
}

void FlashBuilder::writeOutput(Value batch, Value outHead0) {
  Type elementType = op.getInitType().getElementType();
  forLoop(index(0), rows, 1, [&](Value r) {
    Value head = add(outHead0, divU(r, queryLen));
    Value pos = remU(r, queryLen);
    Value inverse =
        OnlineSoftmax<LoweringBuilder>::normalizer(*this, load(rowSum, {r}));
    forLoop(index(0), index(valueDim), 1, [&](Value d) {
      Value y = mulF(load(acc, {r, d}), inverse);
      if (elementType != f32Type)
        y = arith::TruncFOp::create(b, loc, elementType, y);
      store(y, op.getInit(), {batch, head, pos, d});
    });
  });
}

void FlashBuilder::build() {
  int64_t w = shape.vectorWidth;
  headDim = op.getHeadDim();
  valueDim = op.getValueHeadDim();
  int64_t chunk = shape.vectors * w;
  paddedValueDim = (valueDim + chunk - 1) / chunk * chunk;
  heads = op.getHeadMapping();
  // The output heads of one kv head are stacked into one block of rows.
  int64_t stackedHeads = heads.outputsPerKVHead();

  mask = MaskBounds::get(op.getEffectiveMask());
  diagonalOffset = op.getEffectiveMask() ? op.buildDiagonalOffset(b, loc)
                                         : index(0);
  Value batchSize = dim(op.getQuery(), 0);
  queryLen = dim(op.getQuery(), 2);
  keyLen = dim(op.getKey(), 2);
  rows = mul(queryLen, stackedHeads);
  paddedRows = mul(ceilDiv(rows, shape.rows), shape.rows);

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
  forLoop(index(0), index(kvBlock), 1, [&](Value n) {
    forLoop(index(0), index(paddedValueDim), w,
            [&](Value d) { storeVector(zeroVector(), packedValues, {n, d}); });
  });

  // Every row of the tile shares the key range of positions [0, S).
  Value firstDiagonal = diagonalOffset;
  Value lastDiagonal = add(diagonalOffset, sub(queryLen, index(1)));
  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) = keyBlockRange(
      *this, mask, firstDiagonal, lastDiagonal, keyLen, kvBlock);

  float inf = std::numeric_limits<float>::infinity();
  forLoop(index(0), batchSize, 1, [&](Value batch) {
    forLoop(index(0), index(heads.kvHeads), 1, [&](Value kvHead) {
      Value outHead0 = heads.firstOutputHeadOfKV(*this, kvHead);
      packQuery(batch, outHead0);
      forLoop(index(0), paddedRows, 1, [&](Value r) {
        store(f32(-inf), rowMax, {r});
        store(f32(0.0f), rowSum, {r});
        forLoop(index(0), index(paddedValueDim), w,
                [&](Value d) { storeVector(zeroVector(), acc, {r, d}); });
      });
      forLoop(firstBlock, endBlock, 1, [&](Value block) {
        Value keyStart = mul(block, kvBlock);
        Value validKeys = minS(index(kvBlock), sub(keyLen, keyStart));
        packKeysAndValues(batch, kvHead, keyStart, validKeys);
        scoreKernel();
        // Only blocks that run past T or cross a mask bound for some row
        // pay for element-wise masking.
        ifThen(blockNeedsMask(*this, mask, keyStart, kvBlock, keyLen,
                              firstDiagonal, lastDiagonal),
               [&] { maskBlock(keyStart, validKeys); });
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
