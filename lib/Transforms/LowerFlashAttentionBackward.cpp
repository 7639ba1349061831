//===- LowerFlashAttentionBackward.cpp - FlashAttention-2 backward, CPU ---===//
//
// Lowers buffer-form sqa.attention_backward to FlashAttention-2's backward
// on OpenMP threads, without any S x T buffer:
//
//   1. Delta = rowsum(d_out * out), per (batch, output head) in parallel.
//   2. dK, dV: parallel over (batch, kv head, key block). The block's keys
//      and values are packed once (f32, transposed: keys along vector
//      lanes). For every output head of the kv head, the query rows that
//      see the block are taken in tiles of `query-block` rows:
//      P[r, n] = exp2(s - lse) and dS = P * (dP - Delta) come from two
//      register-tiled kernels (q . K^T and d_out . V^T; mr rows broadcast x
//      nr key vectors) with the softmax rules in their epilogues; then
//      dV += P^T . d_out and dK += dS^T . q as register tiles of mr keys x
//      nr feature vectors, reduced over the tile's rows, so the block's
//      dK/dV scratch is loaded and stored once per tile, not per row.
//   3. dQ: parallel over (batch, query head, query tile), P^T and dS^T
//      against every visible key block with rows along lanes (q and d_out
//      transposed once per work item, k and v read in place as broadcast
//      scalars: no per-block packing), then dQ^T += K^T . dS^T on register
//      tiles; for reverse SQA a query head sums over its kv heads here. P
//      and dP are recomputed (7 GEMMs instead of 5) so that every dQ
//      element has one writer.
//
// Each output element is written by one iteration that sums in a fixed
// order, so results are bitwise identical for any thread count. Masked key
// blocks (pass 3) and query rows (pass 2) are skipped through the shared
// rules, and only tiles that cross a mask bound pay for element masks.
// In pass 2, q and d_out rows are read in place (f16/bf16 converted per
// vector) when their width is a multiple of the vector width, else copied
// per tile with zero padding. Scores, probabilities and accumulation are
// f32.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "OuterProductLoop.h"
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

namespace {

/// Rows of q, d_out or k read with their feature dimension along lanes:
/// in place (converted to f32 per load) when the width is a multiple of the
/// vector width, else from an f32 copy zero-padded to it.
struct RowSource {
  Value memref;
  Value batch, head, rowStart;
  bool packed = false;
};

/// A tile of up to `query-block` rows of one output head.
struct RowTile {
  Value batch, head, rowStart, validRows;
  RowSource query, dOut;
};

/// The dQ pass's tile of up to `query-block` rows with rows along lanes:
/// q and d_out transposed, per-row lse * log2(e), Delta and visible key
/// range [firstKey, endKey).
struct TransposedRows {
  Value batch, count, firstDiagonal, lastDiagonal;
  Value queryT, dOutT, lse2, delta, firstKey, endKey;
};

class BackwardBuilder : public LoweringBuilder {
public:
  BackwardBuilder(RewriterBase &rewriter, AttentionBackwardOp op,
                  int64_t vectorWidth, int64_t kvBlock, int64_t queryBlock,
                  int64_t mr, int64_t nr)
      : LoweringBuilder(rewriter, op.getLoc()), b(rewriter), loc(op.getLoc()),
        op(op), w(vectorWidth), kvBlock(kvBlock), mr(mr), nr(nr),
        rowBlock((queryBlock + mr * vectorWidth - 1) / (mr * vectorWidth) *
                 (mr * vectorWidth)),
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
  Value alloc(ArrayRef<int64_t> shape) {
    return memref::AllocOp::create(b, loc, MemRefType::get(shape, f32Type),
                                   ValueRange{}, b.getI64IntegerAttr(64));
  }
  /// `dim` rounded up to whole vectors.
  int64_t padded(int64_t dim) const { return (dim + w - 1) / w * w; }
  /// The largest divisor of `n` that is at most `limit`.
  static int64_t divisorUpTo(int64_t n, int64_t limit) {
    int64_t best = 1;
    for (int64_t d = 1; d <= std::min(n, limit); ++d)
      if (n % d == 0)
        best = d;
    return best;
  }
  /// An scf.forall over [0, ub) per dim; `body` builds inside it.
  void parallel(ArrayRef<Value> ubs, function_ref<void(ValueRange)> body);
  /// Stores 0 into every element of a static [rows, cols] f32 buffer, cols a
  /// multiple of the vector width.
  void zeroFill(Value buffer, int64_t rows, int64_t cols);

  /// The visible keys [first, end) of a query row with this diagonal: the
  /// key block range rule with blocks of one key.
  std::pair<Value, Value> rowKeyRange(Value diagonal) {
    return keyBlockRange(*this, mask, diagonal, diagonal, keyLen, 1);
  }
  /// Packs keys and values [keyStart, keyStart + kvBlock) of a kv head as
  /// f32, transposed (Kt[d, j], Vt[n, j]); keys past T are 0.
  void packBlock(Value batch, Value kvHead, Value keyStart, Value kt, Value vt);
  /// Rows [rowStart, rowStart + rows) of `operand` (batch, head), of width
  /// `dim`: in place, or copied into `pack` when it is given.
  RowSource rowSource(Value operand, Value batch, Value head, Value rowStart,
                      Value rows, int64_t dim, Value pack);
  Value rowScalar(const RowSource &source, Value r, Value c);
  Value rowVector(const RowSource &source, Value r, Value c);

  /// P[r, n] and dS[r, n] = P * (dP - Delta) of a row tile against the
  /// packed key block, keys along lanes: two register-tiled kernels (q . k
  /// with the probabilities in its epilogue, d_out . v with the gradients in
  /// its epilogue). Rows past the tile's valid rows repeat its last row.
  void scoreGradients(const RowTile &tile, Value keyStart, Value kt, Value vt,
                      Value deltaBuf, Value p, Value ds);
  /// The same P^T and dS^T with rows along lanes (the dQ pass): k and v
  /// are broadcast scalars read in place, the rows' state is per lane.
  void transposedScoreGradients(const TransposedRows &rows, Value kvHead,
                                Value keyStart, Value pt, Value dst);
  /// acc[i, c] += sum_{k < reduceUb} weight(k, i) * source row k [c] for
  /// i < outerUb: register tiles of mr scalars x nr row vectors, each tile
  /// loaded and stored once.
  void accumulate(Value acc, Value outerUb, int64_t tileRows, Value reduceUb,
                  int64_t cols, function_ref<Value(Value, Value)> weight,
                  const RowSource &source);

  void computeDelta(Value deltaBuf);
  void keyValueGradients(Value deltaBuf);
  void queryGradients(Value deltaBuf);

  RewriterBase &b;
  Location loc;
  AttentionBackwardOp op;
  int64_t w, kvBlock, mr, nr;
  /// Query rows per tile: query-block rounded up to whole mr x vector
  /// tiles.
  int64_t rowBlock;
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

void BackwardBuilder::zeroFill(Value buffer, int64_t rows, int64_t cols) {
  forLoop(index(0), index(rows), 1, [&](Value r) {
    forLoop(index(0), index(cols), w, [&](Value c) {
      storeVector(zeroVector(), buffer, {r, c});
    });
  });
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

RowSource BackwardBuilder::rowSource(Value operand, Value batch, Value head,
                                     Value rowStart, Value rows, int64_t dim,
                                     Value pack) {
  if (!pack)
    return {operand, batch, head, rowStart, /*packed=*/false};
  // Only the rows kernels read ([0, rows)); padding columns are 0 so that
  // they add nothing.
  forLoop(index(0), rows, 1, [&](Value r) {
    forLoop(index(0), index(dim), 1, [&](Value c) {
      store(toF32(load(operand, {batch, head, add(rowStart, r), c})), pack,
            {r, c});
    });
    forLoop(index(dim), index(padded(dim)), 1, [&](Value c) {
      store(f32(0.0f), pack, {r, c});
    });
  });
  return {pack, Value(), Value(), Value(), /*packed=*/true};
}

Value BackwardBuilder::rowScalar(const RowSource &source, Value r, Value c) {
  if (source.packed)
    return load(source.memref, {r, c});
  return toF32(load(source.memref,
                    {source.batch, source.head, add(source.rowStart, r), c}));
}

Value BackwardBuilder::rowVector(const RowSource &source, Value r, Value c) {
  if (source.packed)
    return loadVector(source.memref, {r, c});
  Type elementType = cast<MemRefType>(source.memref.getType()).getElementType();
  Value x = vector::LoadOp::create(
      b, loc, VectorType::get({w}, elementType), source.memref,
      ValueRange{source.batch, source.head, add(source.rowStart, r), c});
  return toF32(x);
}

void BackwardBuilder::scoreGradients(const RowTile &tile, Value keyStart,
                                     Value kt, Value vt, Value deltaBuf,
                                     Value p, Value ds) {
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  int64_t nrKeys = divisorUpTo(kvBlock / w, nr);
  Value lastRow = sub(tile.validRows, index(1));
  Value firstDiagonal = add(tile.rowStart, diagonalOffset);
  Value needsMask = blockNeedsMask(*this, mask, keyStart, kvBlock, keyLen,
                                   firstDiagonal, add(firstDiagonal, lastRow));
  // Base 2, as the forward: s * scale * log2(e) against lse * log2(e).
  Value scoreScale = splat(f32(scale * kLog2EF32));
  Value negInf = splat(f32(-std::numeric_limits<float>::infinity()));
  // exp2 gives ~2^-125, not 0, at -inf: the rule guards it.
  Softmax::Exponential exp{[&](Value x) { return exp2Approx(x); },
                           /*zeroAtNegInf=*/false};
  auto indexVec = VectorType::get({w}, b.getIndexType());
  SmallVector<Attribute> lanes;
  for (int64_t i = 0; i < w; ++i)
    lanes.push_back(b.getIndexAttr(i));
  Value laneIds = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(indexVec, lanes));
  auto splatIndex = [&](Value x) {
    return vector::BroadcastOp::create(b, loc, indexVec, x).getResult();
  };
  // The source rows of a tile of mr rows from r0 (clamped to valid rows).
  auto tileRows = [&](Value r0) {
    SmallVector<Value> rows;
    for (int64_t i = 0; i < mr; ++i)
      rows.push_back(minS(add(r0, i), lastRow));
    return rows;
  };

  // P = exp2(q . k * scale * log2(e) - lse * log2(e)); only blocks that
  // cross a mask bound or run past T for some row of the tile pay for
  // element masks.
  auto probabilities = [&](bool masked) {
    forLoop(index(0), tile.validRows, mr, [&](Value r0) {
      SmallVector<Value> rows = tileRows(r0), lse2, first, end;
      for (int64_t i = 0; i < mr; ++i) {
        Value pos = add(tile.rowStart, rows[i]);
        lse2.push_back(splat(mulF(
            load(op.getLse(), {tile.batch, tile.head, pos}), f32(kLog2EF32))));
        if (!masked)
          continue;
        // The row's visible keys relative to the block.
        auto [f, e] = rowKeyRange(add(pos, diagonalOffset));
        first.push_back(splatIndex(sub(f, keyStart)));
        end.push_back(splatIndex(sub(e, keyStart)));
      }
      forLoop(index(0), index(kvBlock), nrKeys * w, [&](Value n0) {
        SmallVector<Value> init(mr * nrKeys, zeroVector());
        SmallVector<Value> sums = emitOuterProductLoop(
            b, loc, index(0), index(headDim), init, mr, nrKeys, vecType,
            [&](Value d, int64_t v) {
              return loadVector(kt, {d, add(n0, v * w)});
            },
            [&](Value d, int64_t i) {
              return rowScalar(tile.query, rows[i], d);
            });
        for (int64_t v = 0; v < nrKeys; ++v) {
          Value col = add(n0, v * w);
          Value keys =
              masked ? arith::AddIOp::create(b, loc, laneIds, splatIndex(col))
                           .getResult()
                     : Value();
          for (int64_t i = 0; i < mr; ++i) {
            Value s = mulF(sums[i * nrKeys + v], scoreScale);
            if (masked)
              s = select(
                  andI(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                             keys, first[i]),
                       arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                             keys, end[i])),
                  s, negInf);
            storeVector(
                Softmax::probabilityFromLogSumExp(*this, s, lse2[i], exp), p,
                {add(r0, i), col});
          }
        }
      });
    });
  };
  ifThenElse(
      needsMask, [&] { probabilities(true); }, [&] { probabilities(false); });

  // dS = P * (d_out . v - Delta).
  forLoop(index(0), tile.validRows, mr, [&](Value r0) {
    SmallVector<Value> rows = tileRows(r0), deltas;
    for (int64_t i = 0; i < mr; ++i)
      deltas.push_back(splat(load(
          deltaBuf, {tile.batch, tile.head, add(tile.rowStart, rows[i])})));
    forLoop(index(0), index(kvBlock), nrKeys * w, [&](Value n0) {
      SmallVector<Value> init(mr * nrKeys, zeroVector());
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, index(0), index(valueDim), init, mr, nrKeys, vecType,
          [&](Value c, int64_t v) {
            return loadVector(vt, {c, add(n0, v * w)});
          },
          [&](Value c, int64_t i) { return rowScalar(tile.dOut, rows[i], c); });
      for (int64_t v = 0; v < nrKeys; ++v) {
        Value col = add(n0, v * w);
        for (int64_t i = 0; i < mr; ++i) {
          Value row = add(r0, i);
          Value grad = Softmax::scoreGradient(*this, loadVector(p, {row, col}),
                                              sums[i * nrKeys + v], deltas[i]);
          storeVector(grad, ds, {row, col});
        }
      }
    });
  });
}

void BackwardBuilder::accumulate(Value acc, Value outerUb, int64_t tileRows,
                                 Value reduceUb, int64_t cols,
                                 function_ref<Value(Value, Value)> weight,
                                 const RowSource &source) {
  int64_t nrCols = divisorUpTo(cols / w, nr);
  forLoop(index(0), outerUb, tileRows, [&](Value i0) {
    forLoop(index(0), index(cols), nrCols * w, [&](Value c0) {
      SmallVector<Value> is, cs, init;
      for (int64_t i = 0; i < tileRows; ++i)
        is.push_back(add(i0, i));
      for (int64_t v = 0; v < nrCols; ++v)
        cs.push_back(add(c0, v * w));
      for (int64_t i = 0; i < tileRows; ++i)
        for (int64_t v = 0; v < nrCols; ++v)
          init.push_back(loadVector(acc, {is[i], cs[v]}));
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, index(0), reduceUb, init, tileRows, nrCols, vecType,
          [&](Value k, int64_t v) { return rowVector(source, k, cs[v]); },
          [&](Value k, int64_t i) { return weight(k, is[i]); });
      for (int64_t i = 0; i < tileRows; ++i)
        for (int64_t v = 0; v < nrCols; ++v)
          storeVector(sums[i * nrCols + v], acc, {is[i], cs[v]});
    });
  });
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
  int64_t paddedHeadDim = padded(headDim), paddedValueDim = padded(valueDim);
  parallel({batchSize, index(heads.kvHeads), numBlocks}, [&](ValueRange ivs) {
    Value batch = ivs[0], kvHead = ivs[1], keyStart = mul(ivs[2], kvBlock);
    Value kt = alloc({headDim, kvBlock}), vt = alloc({valueDim, kvBlock});
    Value p = alloc({rowBlock, kvBlock}), ds = alloc({rowBlock, kvBlock});
    Value dkAcc = alloc({kvBlock, paddedHeadDim});
    Value dvAcc = alloc({kvBlock, paddedValueDim});
    SmallVector<Value> buffers = {kt, vt, p, ds, dkAcc, dvAcc};
    Value queryPack, dOutPack;
    if (paddedHeadDim != headDim)
      buffers.push_back(queryPack = alloc({rowBlock, paddedHeadDim}));
    if (paddedValueDim != valueDim)
      buffers.push_back(dOutPack = alloc({rowBlock, paddedValueDim}));
    packBlock(batch, kvHead, keyStart, kt, vt);
    zeroFill(dkAcc, kvBlock, paddedHeadDim);
    zeroFill(dvAcc, kvBlock, paddedValueDim);
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
    int64_t mrKeys = divisorUpTo(kvBlock, mr);
    forLoop(index(0), index(heads.outputsPerKVHead()), 1, [&](Value g) {
      Value head = add(head0, g);
      Value qHead = heads.queryHeadOf(*this, head);
      forLoop(rowBegin, maxS(rowBegin, rowEnd), rowBlock, [&](Value rowStart) {
        Value rows = minS(index(rowBlock), sub(rowEnd, rowStart));
        RowTile tile{batch,
                     head,
                     rowStart,
                     rows,
                     rowSource(op.getQuery(), batch, qHead, rowStart, rows,
                               headDim, queryPack),
                     rowSource(op.getDOut(), batch, head, rowStart, rows,
                               valueDim, dOutPack)};
        scoreGradients(tile, keyStart, kt, vt, deltaBuf, p, ds);
        // dV[n, c] += sum_r P[r, n] d_out[r, c]; dK[n, d] += sum_r dS[r, n]
        // q[r, d] (times scale at the end).
        accumulate(
            dvAcc, index(kvBlock), mrKeys, rows, paddedValueDim,
            [&](Value r, Value n) {
              return load(p, {r, n});
            },
            tile.dOut);
        accumulate(
            dkAcc, index(kvBlock), mrKeys, rows, paddedHeadDim,
            [&](Value r, Value n) {
              return load(ds, {r, n});
            },
            tile.query);
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
        store(round(mulF(load(dkAcc, {j, d}), f32(scale))), op.getDKey(),
              {batch, kvHead, key, d});
      });
      forLoop(index(0), index(valueDim), 1, [&](Value n) {
        store(round(load(dvAcc, {j, n})), op.getDValue(),
              {batch, kvHead, key, n});
      });
    });
    for (Value buffer : buffers)
      memref::DeallocOp::create(b, loc, buffer);
  });
}

void BackwardBuilder::transposedScoreGradients(const TransposedRows &rows,
                                               Value kvHead, Value keyStart,
                                               Value pt, Value dst) {
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  int64_t nrRows = divisorUpTo(rowBlock / w, nr);
  int64_t mrKeys = divisorUpTo(kvBlock, mr);
  Value lastKey = sub(keyLen, index(1));
  Value needsMask = blockNeedsMask(*this, mask, keyStart, kvBlock, keyLen,
                                   rows.firstDiagonal, rows.lastDiagonal);
  Value scoreScale = splat(f32(scale * kLog2EF32));
  Value negInf = splat(f32(-std::numeric_limits<float>::infinity()));
  Softmax::Exponential exp{[&](Value x) { return exp2Approx(x); },
                           /*zeroAtNegInf=*/false};
  auto indexVec = VectorType::get({w}, b.getIndexType());
  // Keys n0 .. n0 + mrKeys of the block; past T they read the last key
  // (masked: the block then needs masks).
  auto tileKeys = [&](Value n0) {
    SmallVector<Value> keys;
    for (int64_t i = 0; i < mrKeys; ++i)
      keys.push_back(add(keyStart, add(n0, i)));
    return keys;
  };

  auto probabilities = [&](bool masked) {
    forLoop(index(0), index(kvBlock), mrKeys, [&](Value n0) {
      SmallVector<Value> keys = tileKeys(n0);
      forLoop(index(0), rows.count, nrRows * w, [&](Value r0) {
        SmallVector<Value> cols;
        for (int64_t v = 0; v < nrRows; ++v)
          cols.push_back(add(r0, v * w));
        SmallVector<Value> init(mrKeys * nrRows, zeroVector());
        SmallVector<Value> sums = emitOuterProductLoop(
            b, loc, index(0), index(headDim), init, mrKeys, nrRows, vecType,
            [&](Value d, int64_t v) {
              return loadVector(rows.queryT, {d, cols[v]});
            },
            [&](Value d, int64_t i) {
              return toF32(load(op.getKey(), {rows.batch, kvHead,
                                              minS(keys[i], lastKey), d}));
            });
        for (int64_t v = 0; v < nrRows; ++v) {
          Value lse2 = loadVector(rows.lse2, {cols[v]});
          Value first, end;
          if (masked) {
            first = vector::LoadOp::create(b, loc, indexVec, rows.firstKey,
                                           ValueRange{cols[v]});
            end = vector::LoadOp::create(b, loc, indexVec, rows.endKey,
                                         ValueRange{cols[v]});
          }
          for (int64_t i = 0; i < mrKeys; ++i) {
            Value s = mulF(sums[i * nrRows + v], scoreScale);
            if (masked) {
              Value key =
                  vector::BroadcastOp::create(b, loc, indexVec, keys[i]);
              s = select(
                  andI(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                             key, first),
                       arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                             key, end)),
                  s, negInf);
            }
            storeVector(Softmax::probabilityFromLogSumExp(*this, s, lse2, exp),
                        pt, {add(n0, i), cols[v]});
          }
        }
      });
    });
  };
  ifThenElse(
      needsMask, [&] { probabilities(true); }, [&] { probabilities(false); });

  forLoop(index(0), index(kvBlock), mrKeys, [&](Value n0) {
    SmallVector<Value> keys = tileKeys(n0);
    forLoop(index(0), rows.count, nrRows * w, [&](Value r0) {
      SmallVector<Value> cols;
      for (int64_t v = 0; v < nrRows; ++v)
        cols.push_back(add(r0, v * w));
      SmallVector<Value> init(mrKeys * nrRows, zeroVector());
      SmallVector<Value> sums = emitOuterProductLoop(
          b, loc, index(0), index(valueDim), init, mrKeys, nrRows, vecType,
          [&](Value c, int64_t v) {
            return loadVector(rows.dOutT, {c, cols[v]});
          },
          [&](Value c, int64_t i) {
            return toF32(load(op.getValue(),
                              {rows.batch, kvHead, minS(keys[i], lastKey), c}));
          });
      for (int64_t v = 0; v < nrRows; ++v) {
        Value delta = loadVector(rows.delta, {cols[v]});
        for (int64_t i = 0; i < mrKeys; ++i) {
          Value n = add(n0, i);
          storeVector(Softmax::scoreGradient(*this,
                                             loadVector(pt, {n, cols[v]}),
                                             sums[i * nrRows + v], delta),
                      dst, {n, cols[v]});
        }
      }
    });
  });
}

void BackwardBuilder::queryGradients(Value deltaBuf) {
  Value numBlocks = ceilDiv(queryLen, rowBlock);
  int64_t nrRows = divisorUpTo(rowBlock / w, nr);
  int64_t mrDims = divisorUpTo(headDim, mr);
  parallel({batchSize, index(heads.queryHeads), numBlocks}, [&](ValueRange
                                                                    ivs) {
    TransposedRows rows;
    rows.batch = ivs[0];
    Value qHead = ivs[1], rowStart = mul(ivs[2], rowBlock);
    rows.count = minS(index(rowBlock), sub(queryLen, rowStart));
    rows.firstDiagonal = add(rowStart, diagonalOffset);
    rows.lastDiagonal = add(rows.firstDiagonal, sub(rows.count, index(1)));
    rows.queryT = alloc({headDim, rowBlock});
    rows.dOutT = alloc({valueDim, rowBlock});
    rows.lse2 = alloc({rowBlock});
    rows.delta = alloc({rowBlock});
    auto indexBuffer = MemRefType::get({rowBlock}, b.getIndexType());
    rows.firstKey = memref::AllocOp::create(b, loc, indexBuffer, ValueRange{},
                                            b.getI64IntegerAttr(64));
    rows.endKey = memref::AllocOp::create(b, loc, indexBuffer, ValueRange{},
                                          b.getI64IntegerAttr(64));
    Value pt = alloc({kvBlock, rowBlock}), dst = alloc({kvBlock, rowBlock});
    Value dqT = alloc({headDim, rowBlock});
    SmallVector<Value> buffers = {rows.queryT, rows.dOutT,    rows.lse2,
                                  rows.delta,  rows.firstKey, rows.endKey,
                                  pt,          dst,           dqT};
    zeroFill(dqT, headDim, rowBlock);
    // Transposed once per work item; rows past the tile are 0 (they see no
    // key and add nothing).
    auto transpose = [&](Value operand, Value head, int64_t dim, Value into) {
      forLoop(index(0), index(rowBlock), 1, [&](Value r) {
        Value valid = slt(r, rows.count);
        Value pos = add(rowStart, minS(r, sub(rows.count, index(1))));
        forLoop(index(0), index(dim), 1, [&](Value d) {
          Value x = toF32(load(operand, {rows.batch, head, pos, d}));
          store(select(valid, x, f32(0.0f)), into, {d, r});
        });
      });
    };
    transpose(op.getQuery(), qHead, headDim, rows.queryT);
    Value firstBlock, endBlock;
    std::tie(firstBlock, endBlock) = keyBlockRange(
        *this, mask, rows.firstDiagonal, rows.lastDiagonal, keyLen, kvBlock);
    // The output heads that use this query head (several for reverse SQA).
    int64_t perQuery = heads.outputsPerQueryHead();
    forLoop(index(0), index(perQuery), 1, [&](Value g) {
      Value head = add(mul(qHead, perQuery), g);
      Value kvHead = heads.kvHeadOf(*this, head);
      transpose(op.getDOut(), head, valueDim, rows.dOutT);
      // Per-row state, one lane per row: lse * log2(e), Delta and the
      // visible keys (none for rows past the tile).
      forLoop(index(0), index(rowBlock), 1, [&](Value r) {
        Value valid = slt(r, rows.count);
        Value pos = add(rowStart, minS(r, sub(rows.count, index(1))));
        Value lse = load(op.getLse(), {rows.batch, head, pos});
        store(select(valid, mulF(lse, f32(kLog2EF32)), f32(0.0f)), rows.lse2,
              {r});
        store(select(valid, load(deltaBuf, {rows.batch, head, pos}), f32(0.0f)),
              rows.delta, {r});
        auto [first, end] = rowKeyRange(add(pos, diagonalOffset));
        store(select(valid, first, index(0)), rows.firstKey, {r});
        store(select(valid, end, index(0)), rows.endKey, {r});
      });
      forLoop(firstBlock, endBlock, 1, [&](Value block) {
        Value keyStart = mul(block, kvBlock);
        Value keys = minS(index(kvBlock), sub(keyLen, keyStart));
        transposedScoreGradients(rows, kvHead, keyStart, pt, dst);
        // dQ^T[d, r] += sum_n k[n, d] dS^T[n, r] over the block's keys
        // (times scale at the end).
        forLoop(index(0), index(headDim), mrDims, [&](Value d0) {
          forLoop(index(0), rows.count, nrRows * w, [&](Value r0) {
            SmallVector<Value> ds, cols, init;
            for (int64_t i = 0; i < mrDims; ++i)
              ds.push_back(add(d0, i));
            for (int64_t v = 0; v < nrRows; ++v)
              cols.push_back(add(r0, v * w));
            for (int64_t i = 0; i < mrDims; ++i)
              for (int64_t v = 0; v < nrRows; ++v)
                init.push_back(loadVector(dqT, {ds[i], cols[v]}));
            SmallVector<Value> sums = emitOuterProductLoop(
                b, loc, index(0), keys, init, mrDims, nrRows, vecType,
                [&](Value n, int64_t v) {
                  return loadVector(dst, {n, cols[v]});
                },
                [&](Value n, int64_t i) {
                  return toF32(load(op.getKey(), {rows.batch, kvHead,
                                                  add(keyStart, n), ds[i]}));
                });
            for (int64_t i = 0; i < mrDims; ++i)
              for (int64_t v = 0; v < nrRows; ++v)
                storeVector(sums[i * nrRows + v], dqT, {ds[i], cols[v]});
          });
        });
      });
    });
    Type elementType = op.getQueryType().getElementType();
    forLoop(index(0), rows.count, 1, [&](Value r) {
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        Value sum = mulF(load(dqT, {d, r}), f32(scale));
        if (elementType != f32Type)
          sum = arith::TruncFOp::create(b, loc, elementType, sum);
        store(sum, op.getDQuery(), {rows.batch, qHead, add(rowStart, r), d});
      });
    });
    for (Value buffer : buffers)
      memref::DeallocOp::create(b, loc, buffer);
  });
}

void BackwardBuilder::build() {
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
             checkOptionRange("query-block", queryBlock, 1, kMaxBlock),
             checkOptionRange("mr", rowsPerKernel, 1, kMaxRowsPerKernel),
             checkOptionRange("nr", vectorsPerKernel, 1,
                              kMaxVectorsPerKernel)})))
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
      BackwardBuilder(rewriter, op, vectorWidth, kvBlock, queryBlock,
                      rowsPerKernel, vectorsPerKernel)
          .build();
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
