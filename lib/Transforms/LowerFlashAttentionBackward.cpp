//===- LowerFlashAttentionBackward.cpp - FlashAttention-2 backward, CPU ---===//
//
// Lowers buffer-form sqa.attention_backward to FlashAttention-2's backward
// on OpenMP threads, without any S x T buffer:
//
//   1. Delta = rowsum(d_out * out), per (batch, output head) in parallel.
//   2. dK, dV: parallel over (batch, kv head, key block). The block's keys
//      and values are packed once (f32, transposed: keys along vector
//      lanes); every output head of the kv head and every query row that
//      sees the block is visited, P is recomputed from lse, and dK/dV
//      accumulate in the block's own scratch: no atomics, no expanded K/V.
//   3. dQ: parallel over (batch, query head, query block), the same
//      recomputation against every visible key block; for reverse SQA a
//      query head sums over its kv heads here.
//
// Each output element is written by one iteration that sums in a fixed
// order, so results are bitwise identical for any thread count. Masked key
// blocks (pass 3) and query rows (pass 2) are skipped through the shared
// rules; scores, probabilities and accumulation are f32.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERFLASHATTENTIONBACKWARD
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

static constexpr float kLog2E = 1.4426950408889634f;

namespace {

class BackwardBuilder : public LoweringBuilder {
public:
  BackwardBuilder(RewriterBase &rewriter, AttentionBackwardOp op,
                  int64_t vectorWidth, int64_t kvBlock, int64_t queryBlock)
      : LoweringBuilder(rewriter, op.getLoc()), b(rewriter), loc(op.getLoc()),
        op(op), w(vectorWidth), kvBlock(kvBlock), queryBlock(queryBlock),
        f32Type(b.getF32Type()),
        vecType(VectorType::get({vectorWidth}, b.getF32Type())) {}

  void build();

private:
  Value loadVector(Value memref, ValueRange indices) {
    return vector::LoadOp::create(b, loc, vecType, memref, indices);
  }
  void storeVector(Value value, Value memref, ValueRange indices) {
    vector::StoreOp::create(b, loc, value, memref, indices);
  }
  Value splat(Value scalar) {
    return vector::BroadcastOp::create(b, loc, vecType, scalar);
  }
  Value zeroVector() {
    return arith::ConstantOp::create(b, loc, b.getZeroAttr(vecType));
  }
  Value alloc(ArrayRef<int64_t> shape, ValueRange dynamicSizes = {}) {
    return memref::AllocOp::create(b, loc, MemRefType::get(shape, f32Type),
                                   dynamicSizes, b.getI64IntegerAttr(64));
  }
  /// An scf.forall over [0, ub) per dim; `body` builds inside it.
  void parallel(ArrayRef<Value> ubs, function_ref<void(ValueRange)> body);

  /// The visible keys [first, end) of a query row with this diagonal: the
  /// key block range rule with blocks of one key.
  std::pair<Value, Value> rowKeyRange(Value diagonal) {
    return keyBlockRange(*this, mask, diagonal, diagonal, keyLen, 1);
  }
  /// Packs keys and values [keyStart, keyStart + kvBlock) of a kv head as
  /// f32, transposed (Kt[d, j], Vt[n, j]); keys past T are 0.
  void packBlock(Value batch, Value kvHead, Value keyStart, Value kt, Value vt);
  /// For query row `pos` of output head `head` against the packed block at
  /// `keyStart`: p (probabilities) and ds (score gradients, times scale) of
  /// the `unroll` lane vectors from key `j0`; hidden keys give 0. Each
  /// broadcast q/d_out scalar serves all of them.
  std::pair<SmallVector<Value>, SmallVector<Value>>
  probabilities(Value batch, Value head, Value pos, Value qHead, Value keyStart,
                Value j0, Value kt, Value vt, Value lse, Value delta,
                Value first, Value end);

  void computeDelta(Value deltaBuf);
  void keyValueGradients(Value deltaBuf);
  void queryGradients(Value deltaBuf);

  RewriterBase &b;
  Location loc;
  AttentionBackwardOp op;
  int64_t w, kvBlock, queryBlock;
  /// Lane vectors of keys per step: the largest divisor of kv-block / w up
  /// to 8 (accumulators for s and dP stay in registers).
  int64_t unroll = 1;
  Type f32Type;
  VectorType vecType;

  int64_t headDim = 0, valueDim = 0;
  float scale = 1.0f;
  HeadMapping heads;
  MaskBounds mask;
  Value batchSize, queryLen, keyLen, diagonalOffset;
};

} // namespace

void BackwardBuilder::parallel(ArrayRef<Value> ubs,
                               function_ref<void(ValueRange)> body) {
  SmallVector<OpFoldResult> lbs(ubs.size(), b.getIndexAttr(0)),
      steps(ubs.size(), b.getIndexAttr(1)), upper;
  for (Value ub : ubs)
    upper.push_back(ub);
  auto forall = scf::ForallOp::create(b, loc, lbs, upper, steps, ValueRange{},
                                      std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  body(forall.getInductionVars());
}

void BackwardBuilder::packBlock(Value batch, Value kvHead, Value keyStart,
                                Value kt, Value vt) {
  forLoop(index(0), index(kvBlock), 1, [&](Value j) {
    Value key = add(keyStart, j);
    ifThenElse(
        slt(key, keyLen),
        [&] {
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            store(toF32(load(op.getKey(), {batch, kvHead, key, d})), kt,
                  {d, j});
          });
          forLoop(index(0), index(valueDim), 1, [&](Value n) {
            store(toF32(load(op.getValue(), {batch, kvHead, key, n})), vt,
                  {n, j});
          });
        },
        [&] {
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            store(f32(0.0f), kt, {d, j});
          });
          forLoop(index(0), index(valueDim), 1, [&](Value n) {
            store(f32(0.0f), vt, {n, j});
          });
        });
  });
}

std::pair<SmallVector<Value>, SmallVector<Value>>
BackwardBuilder::probabilities(Value batch, Value head, Value pos, Value qHead,
                               Value keyStart, Value j0, Value kt, Value vt,
                               Value lse, Value delta, Value first, Value end) {
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  SmallVector<Value> cols;
  for (int64_t u = 0; u < unroll; ++u)
    cols.push_back(add(j0, u * w));
  // s = q . k over the lanes' keys; dp = d_out . v.
  SmallVector<Value> zeros(unroll, zeroVector());
  SmallVector<Value> acc = forLoop(
      index(0), index(headDim), 1, zeros,
      [&](Value d, ValueRange a) -> SmallVector<Value> {
        Value qd = splat(toF32(load(op.getQuery(), {batch, qHead, pos, d})));
        SmallVector<Value> next;
        for (int64_t u = 0; u < unroll; ++u)
          next.push_back(fma(qd, loadVector(kt, {d, cols[u]}), a[u]));
        return next;
      });
  SmallVector<Value> dp = forLoop(
      index(0), index(valueDim), 1, zeros,
      [&](Value n, ValueRange a) -> SmallVector<Value> {
        Value g = splat(toF32(load(op.getDOut(), {batch, head, pos, n})));
        SmallVector<Value> next;
        for (int64_t u = 0; u < unroll; ++u)
          next.push_back(fma(g, loadVector(vt, {n, cols[u]}), a[u]));
        return next;
      });
  // Hidden lanes (outside the row's key range or past T) are -inf.
  auto indexVec = VectorType::get({w}, b.getIndexType());
  SmallVector<Attribute> lanes;
  for (int64_t i = 0; i < w; ++i)
    lanes.push_back(b.getIndexAttr(i));
  Value laneIds = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(indexVec, lanes));
  Value firstVec = vector::BroadcastOp::create(b, loc, indexVec, first);
  Value endVec = vector::BroadcastOp::create(b, loc, indexVec, end);
  // Base 2, as the forward: s * log2(e) against lse * log2(e).
  Value scoreScale = splat(f32(scale * kLog2E));
  Value lse2 = splat(mulF(lse, f32(kLog2E)));
  Value deltaVec = splat(delta), gradScale = splat(f32(scale));
  Value negInf = splat(f32(-std::numeric_limits<float>::infinity()));
  // exp2 gives ~2^-125, not 0, at -inf: the rule guards it.
  Softmax::Exponential exp{[&](Value x) { return exp2Approx(x); },
                           /*zeroAtNegInf=*/false};
  SmallVector<Value> ps, dss;
  for (int64_t u = 0; u < unroll; ++u) {
    Value keys = arith::AddIOp::create(
        b, loc, laneIds,
        vector::BroadcastOp::create(b, loc, indexVec, add(keyStart, cols[u])));
    Value visible = arith::AndIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, keys,
                              firstVec),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, keys, endVec));
    Value scores = select(visible, mulF(acc[u], scoreScale), negInf);
    Value p = Softmax::probabilityFromLogSumExp(*this, scores, lse2, exp);
    ps.push_back(p);
    dss.push_back(
        mulF(Softmax::scoreGradient(*this, p, dp[u], deltaVec), gradScale));
  }
  return {ps, dss};
}

void BackwardBuilder::computeDelta(Value deltaBuf) {
  parallel({batchSize, index(heads.outputHeads())}, [&](ValueRange ivs) {
    forLoop(index(0), queryLen, 1, [&](Value s) {
      SmallVector<Value> sum =
          forLoop(index(0), index(valueDim), 1, {f32(0.0f)},
                  [&](Value n, ValueRange a) -> SmallVector<Value> {
                    Value g = toF32(load(op.getDOut(), {ivs[0], ivs[1], s, n}));
                    Value o = toF32(load(op.getOut(), {ivs[0], ivs[1], s, n}));
                    return {fma(g, o, a[0])};
                  });
      store(sum[0], deltaBuf, {ivs[0], ivs[1], s});
    });
  });
}

void BackwardBuilder::keyValueGradients(Value deltaBuf) {
  Value numBlocks = ceilDiv(keyLen, kvBlock);
  parallel({batchSize, index(heads.kvHeads), numBlocks}, [&](ValueRange ivs) {
    Value batch = ivs[0], kvHead = ivs[1], keyStart = mul(ivs[2], kvBlock);
    Value kt = alloc({headDim, kvBlock}), vt = alloc({valueDim, kvBlock});
    Value dkt = alloc({headDim, kvBlock}), dvt = alloc({valueDim, kvBlock});
    packBlock(batch, kvHead, keyStart, kt, vt);
    forLoop(index(0), index(kvBlock), w, [&](Value j0) {
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        storeVector(zeroVector(), dkt, {d, j0});
      });
      forLoop(index(0), index(valueDim), 1, [&](Value n) {
        storeVector(zeroVector(), dvt, {n, j0});
      });
    });
    // Query rows whose diagonal reaches the block: key k is visible from
    // diagonals [k - right, k + left].
    Value keyEnd = minS(add(keyStart, kvBlock), keyLen);
    Value rowBegin = index(0), rowEnd = queryLen;
    if (mask.right >= 0)
      rowBegin =
          maxS(rowBegin, sub(sub(keyStart, index(mask.right)), diagonalOffset));
    if (mask.left >= 0)
      rowEnd = minS(rowEnd, sub(add(keyEnd, index(mask.left)), diagonalOffset));
    Value head0 = heads.firstOutputHeadOfKV(*this, kvHead);
    forLoop(index(0), index(heads.outputsPerKVHead()), 1, [&](Value g) {
      Value head = add(head0, g);
      Value qHead = heads.queryHeadOf(*this, head);
      forLoop(rowBegin, maxS(rowBegin, rowEnd), 1, [&](Value pos) {
        auto [first, end] = rowKeyRange(add(pos, diagonalOffset));
        Value lse = load(op.getLse(), {batch, head, pos});
        Value delta = load(deltaBuf, {batch, head, pos});
        forLoop(index(0), index(kvBlock), unroll * w, [&](Value j0) {
          auto [p, ds] = probabilities(batch, head, pos, qHead, keyStart, j0,
                                       kt, vt, lse, delta, first, end);
          // dV^T[n, j] += p_j * d_out[n]; dK^T[d, j] += ds_j * q[d].
          forLoop(index(0), index(valueDim), 1, [&](Value n) {
            Value g = splat(toF32(load(op.getDOut(), {batch, head, pos, n})));
            for (int64_t u = 0; u < unroll; ++u) {
              Value col = add(j0, u * w);
              storeVector(fma(p[u], g, loadVector(dvt, {n, col})), dvt,
                          {n, col});
            }
          });
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            Value qd =
                splat(toF32(load(op.getQuery(), {batch, qHead, pos, d})));
            for (int64_t u = 0; u < unroll; ++u) {
              Value col = add(j0, u * w);
              storeVector(fma(ds[u], qd, loadVector(dkt, {d, col})), dkt,
                          {d, col});
            }
          });
        });
      });
    });
    // Every key of the block is written, also keys no row sees (0).
    Type elementType = op.getKeyType().getElementType();
    auto round = [&](Value x) {
      return elementType == f32Type
                 ? x
                 : arith::TruncFOp::create(b, loc, elementType, x).getResult();
    };
    forLoop(index(0), sub(keyEnd, keyStart), 1, [&](Value j) {
      Value key = add(keyStart, j);
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        store(round(load(dkt, {d, j})), op.getDKey(), {batch, kvHead, key, d});
      });
      forLoop(index(0), index(valueDim), 1, [&](Value n) {
        store(round(load(dvt, {n, j})), op.getDValue(),
              {batch, kvHead, key, n});
      });
    });
    for (Value buffer : {kt, vt, dkt, dvt})
      memref::DeallocOp::create(b, loc, buffer);
  });
}

void BackwardBuilder::queryGradients(Value deltaBuf) {
  Value numBlocks = ceilDiv(queryLen, queryBlock);
  parallel({batchSize, index(heads.queryHeads), numBlocks}, [&](ValueRange
                                                                    ivs) {
    Value batch = ivs[0], qHead = ivs[1], rowStart = mul(ivs[2], queryBlock);
    Value rows = minS(index(queryBlock), sub(queryLen, rowStart));
    Value kt = alloc({headDim, kvBlock}), vt = alloc({valueDim, kvBlock});
    // dQ of the block's rows with keys along lanes, reduced once at the
    // end.
    Value dqAcc = alloc({queryBlock, headDim, w});
    forLoop(index(0), index(queryBlock), 1, [&](Value r) {
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        storeVector(zeroVector(), dqAcc, {r, d, index(0)});
      });
    });
    Value firstDiagonal = add(rowStart, diagonalOffset);
    Value lastDiagonal = add(firstDiagonal, sub(rows, index(1)));
    auto [firstBlock, endBlock] = keyBlockRange(*this, mask, firstDiagonal,
                                                lastDiagonal, keyLen, kvBlock);
    // The output heads that use this query head (several for reverse SQA).
    int64_t perQuery = heads.outputsPerQueryHead();
    forLoop(index(0), index(perQuery), 1, [&](Value g) {
      Value head = add(mul(qHead, perQuery), g);
      Value kvHead = heads.kvHeadOf(*this, head);
      forLoop(firstBlock, endBlock, 1, [&](Value block) {
        Value keyStart = mul(block, kvBlock);
        packBlock(batch, kvHead, keyStart, kt, vt);
        forLoop(index(0), rows, 1, [&](Value r) {
          Value pos = add(rowStart, r);
          auto [first, end] = rowKeyRange(add(pos, diagonalOffset));
          Value lse = load(op.getLse(), {batch, head, pos});
          Value delta = load(deltaBuf, {batch, head, pos});
          forLoop(index(0), index(kvBlock), unroll * w, [&](Value j0) {
            auto [p, ds] = probabilities(batch, head, pos, qHead, keyStart, j0,
                                         kt, vt, lse, delta, first, end);
            (void)p;
            forLoop(index(0), index(headDim), 1, [&](Value d) {
              Value lanes = loadVector(dqAcc, {r, d, index(0)});
              for (int64_t u = 0; u < unroll; ++u)
                lanes = fma(ds[u], loadVector(kt, {d, add(j0, u * w)}), lanes);
              storeVector(lanes, dqAcc, {r, d, index(0)});
            });
          });
        });
      });
    });
    Type elementType = op.getQueryType().getElementType();
    forLoop(index(0), rows, 1, [&](Value r) {
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        Value sum =
            vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                        loadVector(dqAcc, {r, d, index(0)}));
        if (elementType != f32Type)
          sum = arith::TruncFOp::create(b, loc, elementType, sum);
        store(sum, op.getDQuery(), {batch, qHead, add(rowStart, r), d});
      });
    });
    for (Value buffer : {kt, vt, dqAcc})
      memref::DeallocOp::create(b, loc, buffer);
  });
}

void BackwardBuilder::build() {
  for (int64_t u = 1; u <= 8; ++u)
    if ((kvBlock / w) % u == 0)
      unroll = u;
  headDim = op.getHeadDim();
  valueDim = op.getValueHeadDim();
  scale = op.getScaleOrDefault();
  heads = op.getHeadMapping();
  mask = MaskBounds::get(op.getEffectiveMask());
  diagonalOffset =
      op.getEffectiveMask() ? op.buildDiagonalOffset(b, loc) : index(0);
  batchSize = dim(op.getQuery(), 0);
  queryLen = dim(op.getQuery(), 2);
  keyLen = dim(op.getKey(), 2);
  Value deltaBuf = memref::AllocOp::create(
      b, loc,
      MemRefType::get(
          {ShapedType::kDynamic, heads.outputHeads(), ShapedType::kDynamic},
          f32Type),
      ValueRange{batchSize, queryLen}, b.getI64IntegerAttr(64));
  computeDelta(deltaBuf);
  keyValueGradients(deltaBuf);
  queryGradients(deltaBuf);
  memref::DeallocOp::create(b, loc, deltaBuf);
}

namespace {
struct LowerFlashAttentionBackwardPass
    : public sqa::impl::LowerFlashAttentionBackwardBase<
          LowerFlashAttentionBackwardPass> {
  using Base::Base;

  void runOnOperation() override {
    if (failed(emitOptionErrors(
            getOperation(),
            {checkOptionRange("vector-width", vectorWidth, 1, kMaxVectorWidth),
             checkOptionRange("kv-block", kvBlock, 1, kMaxBlock),
             checkOptionRange("query-block", queryBlock, 1, kMaxBlock)})))
      return signalPassFailure();
    if (kvBlock % vectorWidth != 0) {
      emitError(getOperation()->getLoc())
          << "kv-block (" << static_cast<int64_t>(kvBlock)
          << ") must be a multiple of vector-width ("
          << static_cast<int64_t>(vectorWidth) << ")";
      return signalPassFailure();
    }
    SmallVector<AttentionBackwardOp> ops;
    getOperation()->walk([&](AttentionBackwardOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionBackwardOp op : ops) {
      if (!op.hasPureBufferSemantics()) {
        op.emitOpError("sqa-lower-flash-attention-backward needs buffer "
                       "semantics; bufferize first");
        return signalPassFailure();
      }
      rewriter.setInsertionPoint(op);
      BackwardBuilder(rewriter, op, vectorWidth, kvBlock, queryBlock).build();
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
