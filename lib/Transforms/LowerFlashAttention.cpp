//===- LowerFlashAttention.cpp - FlashAttention-2 loops with vectors ------===//
//
// Lowers buffer-form sqa.attention to FlashAttention-2 on the CPU. The query
// rows of all heads that share a key/value head are stacked into one block,
// so every packed key/value block serves the whole group. Scores, softmax
// and accumulation are f32; the micro-kernels are broadcast-FMA outer
// products with `mr` x `nr` vector accumulators held in registers.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "OuterProductLoop.h"
#include "PairDotLoop.h"
#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERFLASHATTENTION
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

/// mr: keys per Q.K^T micro-kernel and value columns per P.V micro-kernel;
/// nr: vectors of query rows per micro-kernel.
struct KernelShape {
  int64_t vectorWidth, kvBlock, mr, nr;
  /// bf16 dot products where the op allows (see bf16DotApplies).
  bool bf16Dot = false;
};

/// Emits the loops for one op on the shared lowering vocabulary; the vector
/// helpers below are this backend's own leaves.
///
/// Every scratch buffer is row-transposed: query rows run along vector lanes
/// (Q^T [D, M], S^T and P^T [kv-block, M], O^T [Dv, M]). Then the row max,
/// row sum and rescale factor of `vector-width` rows are one vector each, so
/// the online softmax has no horizontal reduction at all; K and V are read
/// as broadcast scalars in their own row-major layout, so f32 K/V need no
/// packing and no transpose (f16/bf16 blocks are converted once per block).
class FlashBuilder : public LoweringBuilder {
public:
  FlashBuilder(RewriterBase &rewriter, AttentionOp op, KernelShape shape)
      : LoweringBuilder(rewriter, op.getLoc()), b(rewriter), loc(op.getLoc()),
        op(op), shape(shape), f32Type(b.getF32Type()),
        vecType(VectorType::get({shape.vectorWidth}, b.getF32Type())) {}

  void build();

private:
  Value zeroVector() {
    return arith::ConstantOp::create(b, loc, b.getZeroAttr(vecType));
  }
  Value loadVector(Value memref, ValueRange indices) {
    return vector::LoadOp::create(b, loc, vecType, memref, indices);
  }
  void storeVector(Value value, Value memref, ValueRange indices) {
    vector::StoreOp::create(b, loc, value, memref, indices);
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
  Value exp2(Value x);
  /// max without NaN handling (scores are finite or -inf by construction):
  /// one vmaxps instead of maxnum's compare-and-blend.
  Value maxNoNaN(Value x, Value y) {
    return arith::MaxNumFOp::create(b, loc, x, y, arith::FastMathFlags::nnan);
  }

  void packQuery(Value batch, Value outHead0);
  void packKeysAndValues(Value batch, Value kvHead, Value keyStart);
  Value keyScalar(Value batch, Value kvHead, Value key, Value n, Value d);
  Value valueScalar(Value batch, Value kvHead, Value key, Value n, Value d);
  void scoreKernel(Value batch, Value kvHead, Value keyStart);
  void maskBlock(Value keyStart, Value validKeys);
  void onlineSoftmax();
  void accumulateKernel(Value batch, Value kvHead, Value keyStart,
                        Value validKeys);
  void writeOutput(Value batch, Value outHead0);

  // AVX-512 BF16 (bf16-dot): pairs along the reduction dimension.
  bool bf16DotApplies();
  Value allocOf(Type elementType, ArrayRef<int64_t> shape,
                ValueRange dynamicSizes);
  void packQueryPairs(Value batch, Value outHead0);
  void packValuePairs(Value batch, Value kvHead, Value keyStart);
  void packProbabilityPairs();
  SmallVector<Value> scoreDotsBF16(Value batch, Value kvHead, Value keyStart,
                                   ArrayRef<Value> ns, ArrayRef<Value> rowCols,
                                   ValueRange init);
  SmallVector<Value> accumulateDotsBF16(Value validKeys, ValueRange init,
                                        ArrayRef<Value> rowCols,
                                        ArrayRef<Value> valueCols);

  RewriterBase &b;
  Location loc;
  AttentionOp op;
  KernelShape shape;
  Type f32Type;
  VectorType vecType;

  // Problem sizes and scratch buffers, set by build().
  int64_t headDim = 0, valueDim = 0, paddedValueDim = 0;
  HeadMapping heads;
  Value queryLen, keyLen, lastKey, rows, paddedRows, diagonalOffset;
  MaskBounds mask;
  // f32 K/V are read in place; other types are converted block by block.
  bool packKV = false;
  // V is also copied per block when its rows are a power-of-two multiple of
  // 256 bytes apart: the P.V kernel walks V down a column, and at that pitch
  // the walk lands in a few L1 sets; the copy has an odd-line pitch.
  bool packValues = false;
  Value queryT, accT, rowMax, rowSum, rescale, scoresT, packedKeys,
      packedValues;
  // bf16-dot: Q [D/2, 2M] and P [kv-block/2, 2M] bf16 with each row's pair
  // adjacent; V pairs [kv-block/2, Dv] as i32 (two keys' bf16 values).
  bool bf16Dot = false;
  Value queryPairs, probabilityPairs, valuePairs;
};

} // namespace

/// The shared CPU exponential (LoweringBuilder::exp2Approx).
Value FlashBuilder::exp2(Value x) { return exp2Approx(x); }

/// Q^T[d, r] = scale * log2(e) * q[r, d] (so the softmax runs in base 2);
/// padding rows are 0.
void FlashBuilder::packQuery(Value batch, Value outHead0) {
  Value scale = f32(op.getScaleOrDefault() * kLog2E);
  forLoop(index(0), paddedRows, 1, [&](Value r) {
    ifThenElse(
        slt(r, rows),
        [&] {
          Value head =
              heads.queryHeadOf(*this, add(outHead0, divU(r, queryLen)));
          Value pos = remU(r, queryLen);
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            Value x = loadF32(op.getQuery(), {batch, head, pos, d});
            store(mulF(x, scale), queryT, {d, r});
          });
        },
        [&] {
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            store(f32(0.0f), queryT, {d, r});
          });
        });
  });
}

/// f16/bf16 only: the block's keys and values converted to f32, row-major
/// (no transpose). Keys past T repeat the last key; their scores are masked
/// and their values never read.
void FlashBuilder::packKeysAndValues(Value batch, Value kvHead,
                                     Value keyStart) {
  bool f32Values = op.getValueType().getElementType() == f32Type;
  forLoop(index(0), index(shape.kvBlock), 1, [&](Value n) {
    Value key = minS(add(keyStart, n), lastKey);
    if (packKV)
      forLoop(index(0), index(headDim), 1, [&](Value d) {
        store(loadF32(op.getKey(), {batch, kvHead, key, d}), packedKeys,
              {n, d});
      });
    if (f32Values && valueDim % shape.vectorWidth == 0) {
      forLoop(index(0), index(valueDim), shape.vectorWidth, [&](Value d) {
        storeVector(loadVector(op.getValue(), {batch, kvHead, key, d}),
                    packedValues, {n, d});
      });
      return;
    }
    forLoop(index(0), index(valueDim), 1, [&](Value d) {
      store(loadF32(op.getValue(), {batch, kvHead, key, d}), packedValues,
            {n, d});
    });
  });
}

Value FlashBuilder::keyScalar(Value batch, Value kvHead, Value key, Value n,
                              Value d) {
  if (packKV)
    return load(packedKeys, {n, d});
  return load(op.getKey(), {batch, kvHead, key, d});
}

Value FlashBuilder::valueScalar(Value batch, Value kvHead, Value key, Value n,
                                Value d) {
  if (packValues)
    return load(packedValues, {n, d});
  return load(op.getValue(), {batch, kvHead, key, d});
}

/// S^T[n, r] = sum_d k[n, d] * Q^T[d, r] on register tiles of mr keys x nr
/// row vectors: keys are broadcast scalars, rows are lanes.
void FlashBuilder::scoreKernel(Value batch, Value kvHead, Value keyStart) {
  int64_t mr = shape.mr, nr = shape.nr, w = shape.vectorWidth;
  forLoop(index(0), paddedRows, nr * w, [&](Value r0) {
    forLoop(index(0), index(shape.kvBlock), mr, [&](Value n0) {
      SmallVector<Value> rowCols, ns, keys;
      for (int64_t v = 0; v < nr; ++v)
        rowCols.push_back(add(r0, v * w));
      for (int64_t i = 0; i < mr; ++i) {
        ns.push_back(add(n0, i));
        // Keys past T read the last key; maskBlock hides their scores.
        keys.push_back(packKV ? Value() : minS(add(keyStart, ns[i]), lastKey));
      }
      SmallVector<Value> init(mr * nr, zeroVector());
      SmallVector<Value> sums =
          bf16Dot ? scoreDotsBF16(batch, kvHead, keyStart, ns, rowCols, init)
                  : emitOuterProductLoop(
                        b, loc, index(0), index(headDim), init, mr, nr, vecType,
                        [&](Value d, int64_t v) {
                          return loadVector(queryT, {d, rowCols[v]});
                        },
                        [&](Value d, int64_t i) {
                          return keyScalar(batch, kvHead, keys[i], ns[i], d);
                        });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], scoresT, {ns[i], rowCols[v]});
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
        visible = andI(visible,
                       isKeyVisible(*this, mask, diagonal, add(keyStart, n)));
      store(select(visible, load(scoresT, {n, r}), negInf), scoresT, {n, r});
    });
  });
}

/// Online softmax of one block for `vector-width` rows at a time: the rows'
/// maxima, rescale factors and sums are vectors (lanes = rows), so there is
/// no horizontal reduction; exp is the vector exp2 above. The recurrence is
/// OnlineSoftmax's.
void FlashBuilder::onlineSoftmax() {
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  int64_t w = shape.vectorWidth;
  // Independent partial maxima/sums, so the loops are not one long chain
  // of dependent max/add latencies.
  constexpr int64_t lanes = 4;
  float inf = std::numeric_limits<float>::infinity();
  // exp2 gives ~2^-125, not 0, at -inf: the rules guard it.
  Softmax::Exponential exp{[&](Value x) { return exp2(x); },
                           /*zeroAtNegInf=*/false};
  forLoop(index(0), paddedRows, w, [&](Value r) {
    SmallVector<Value> partial(lanes, floatLike(zeroVector(), -inf));
    partial = forLoop(
        index(0), index(shape.kvBlock), lanes, partial,
        [&](Value n, ValueRange m) -> SmallVector<Value> {
          SmallVector<Value> next;
          for (int64_t j = 0; j < lanes; ++j)
            next.push_back(maxNoNaN(m[j], loadVector(scoresT, {add(n, j), r})));
          return next;
        });
    Value blockMax = maxNoNaN(maxNoNaN(partial[0], partial[1]),
                              maxNoNaN(partial[2], partial[3]));
    Value oldMax = loadVector(rowMax, {r});
    Value newMax = maxNoNaN(oldMax, blockMax);
    Value alpha = Softmax::rescale(*this, oldMax, newMax, exp);
    Value shift = Softmax::shift(*this, newMax);
    // Two partial sums: the exp polynomial's constants need the registers.
    SmallVector<Value> sums(2, zeroVector());
    sums = forLoop(index(0), index(shape.kvBlock), 2, sums,
                   [&](Value n, ValueRange sum) -> SmallVector<Value> {
                     SmallVector<Value> next;
                     for (int64_t j = 0; j < 2; ++j) {
                       Value nj = add(n, j);
                       Value p = Softmax::probability(
                           *this, loadVector(scoresT, {nj, r}), shift, exp);
                       storeVector(p, scoresT, {nj, r});
                       next.push_back(addF(sum[j], p));
                     }
                     return next;
                   });
    Value blockSum = addF(sums[0], sums[1]);
    storeVector(
        Softmax::nextSum(*this, alpha, loadVector(rowSum, {r}), blockSum),
        rowSum, {r});
    storeVector(newMax, rowMax, {r});
    storeVector(alpha, rescale, {r});
  });
}

/// O^T[c, r] = alpha[r] * O^T[c, r] + sum_n v[n, c] * P^T[n, r] on register
/// tiles of mr value columns x nr row vectors, over the block's valid keys
/// only. The rescale is skipped when no row of the tile changed its max.
void FlashBuilder::accumulateKernel(Value batch, Value kvHead, Value keyStart,
                                    Value validKeys) {
  int64_t mr = shape.mr, nr = shape.nr, w = shape.vectorWidth;
  forLoop(index(0), paddedRows, nr * w, [&](Value r0) {
    SmallVector<Value> rowCols, alphas;
    Value changed;
    for (int64_t v = 0; v < nr; ++v) {
      rowCols.push_back(add(r0, v * w));
      alphas.push_back(loadVector(rescale, {rowCols[v]}));
      Value lanesChanged =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, alphas[v],
                                floatLike(alphas[v], 1.0));
      changed = changed ? orI(changed, lanesChanged) : lanesChanged;
    }
    changed =
        vector::ReductionOp::create(b, loc, vector::CombiningKind::OR, changed);
    forLoop(index(0), index(paddedValueDim), mr, [&](Value c0) {
      SmallVector<Value> cs, valueCols;
      for (int64_t i = 0; i < mr; ++i) {
        cs.push_back(add(c0, i));
        // Padding columns read the last value column; never written out.
        valueCols.push_back(
            valueDim % mr == 0 ? cs[i] : minS(cs[i], index(valueDim - 1)));
      }
      SmallVector<Type> types(mr * nr, vecType);
      SmallVector<Value> init = ifThenElse(
          changed, types,
          [&] {
            SmallVector<Value> scaled;
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t v = 0; v < nr; ++v)
                scaled.push_back(
                    mulF(alphas[v], loadVector(accT, {cs[i], rowCols[v]})));
            return scaled;
          },
          [&] {
            SmallVector<Value> same;
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t v = 0; v < nr; ++v)
                same.push_back(loadVector(accT, {cs[i], rowCols[v]}));
            return same;
          });
      SmallVector<Value> sums =
          bf16Dot
              ? accumulateDotsBF16(validKeys, init, rowCols, valueCols)
              : emitOuterProductLoop(
                    b, loc, index(0), validKeys, init, mr, nr, vecType,
                    [&](Value n, int64_t v) {
                      return loadVector(scoresT, {n, rowCols[v]});
                    },
                    [&](Value n, int64_t i) {
                      Value key = packValues ? Value() : add(keyStart, n);
                      return valueScalar(batch, kvHead, key, n, valueCols[i]);
                    });
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t v = 0; v < nr; ++v)
          storeVector(sums[i * nr + v], accT, {cs[i], rowCols[v]});
    });
  });
}

void FlashBuilder::writeOutput(Value batch, Value outHead0) {
  Type elementType = op.getInitType().getElementType();
  forLoop(index(0), rows, 1, [&](Value r) {
    Value head = add(outHead0, divU(r, queryLen));
    Value pos = remU(r, queryLen);
    Value sum = load(rowSum, {r});
    Value inverse = OnlineSoftmax<LoweringBuilder>::normalizer(*this, sum);
    if (Value lse = op.getLse()) {
      // The max is of base-2 scores: ln(sum) + max * ln 2 is the natural
      // logsumexp (the sum is of exp2(s2 - max) = exp(s - max * ln 2)).
      Value naturalMax = mulF(load(rowMax, {r}), f32(0.6931471805599453f));
      store(OnlineSoftmax<LoweringBuilder>::logSumExp(*this, naturalMax, sum),
            lse, {batch, head, pos});
    }
    forLoop(index(0), index(valueDim), 1, [&](Value d) {
      Value y = mulF(load(accT, {d, r}), inverse);
      if (elementType != f32Type)
        y = arith::TruncFOp::create(b, loc, elementType, y);
      store(y, op.getInit(), {batch, head, pos, d});
    });
  });
}

void FlashBuilder::build() {
  int64_t w = shape.vectorWidth, mr = shape.mr;
  headDim = op.getHeadDim();
  valueDim = op.getValueHeadDim();
  paddedValueDim = (valueDim + mr - 1) / mr * mr;
  packKV = op.getKeyType().getElementType() != f32Type ||
           op.getValueType().getElementType() != f32Type;
  bf16Dot = bf16DotApplies();
  heads = op.getHeadMapping();
  // The output heads of one kv head are stacked into one block of rows.
  int64_t stackedHeads = heads.outputsPerKVHead();

  mask = MaskBounds::get(op.getEffectiveMask());
  diagonalOffset =
      op.getEffectiveMask() ? op.buildDiagonalOffset(b, loc) : index(0);
  Value batchSize = dim(op.getQuery(), 0);
  queryLen = dim(op.getQuery(), 2);
  keyLen = dim(op.getKey(), 2);
  lastKey = sub(keyLen, index(1));
  rows = mul(queryLen, stackedHeads);
  int64_t rowChunk = shape.nr * w;
  paddedRows = mul(ceilDiv(rows, rowChunk), rowChunk);

  int64_t kvBlock = shape.kvBlock;
  // The row-major scratch [*, rows] is walked down its columns (d, n, c) by
  // the micro-kernels: with a power-of-two row pitch those walks hit a few
  // L1 sets only (at D = 128 the Q^T column of one tile fills them), so the
  // pitch is an odd number of 64-byte lines.
  Value rowPitch = mul(orI(ceilDiv(paddedRows, 16), index(1)), 16);
  queryT = alloc({headDim, ShapedType::kDynamic}, {rowPitch});
  accT = alloc({paddedValueDim, ShapedType::kDynamic}, {rowPitch});
  rowMax = alloc({ShapedType::kDynamic}, {paddedRows});
  rowSum = alloc({ShapedType::kDynamic}, {paddedRows});
  rescale = alloc({ShapedType::kDynamic}, {paddedRows});
  scoresT = alloc({kvBlock, ShapedType::kDynamic}, {rowPitch});
  SmallVector<Value> buffers = {queryT, accT, rowMax, rowSum, rescale, scoresT};
  packValues =
      !bf16Dot &&
      (packKV || (valueDim % 64 == 0 && llvm::isPowerOf2_64(valueDim / 64)));
  if (packKV && !bf16Dot) {
    packedKeys = alloc({kvBlock, headDim}, {});
    buffers.push_back(packedKeys);
  }
  if (packValues) {
    int64_t valuePitch = valueDim % 32 == 0 ? valueDim + 16 : valueDim;
    // Columns past valueDim are never read.
    packedValues = alloc({kvBlock, valuePitch}, {});
    buffers.push_back(packedValues);
  }
  if (bf16Dot) {
    Type bf16 = b.getBF16Type();
    queryPairs = allocOf(bf16, {headDim / 2, ShapedType::kDynamic},
                         {mul(paddedRows, 2)});
    probabilityPairs = allocOf(bf16, {kvBlock / 2, ShapedType::kDynamic},
                               {mul(paddedRows, 2)});
    valuePairs = allocOf(b.getI32Type(), {kvBlock / 2, valueDim}, {});
    buffers.append({queryPairs, probabilityPairs, valuePairs});
  }

  // Every row of the tile shares the key range of positions [0, S).
  Value firstDiagonal = diagonalOffset;
  Value lastDiagonal = add(diagonalOffset, sub(queryLen, index(1)));
  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) =
      keyBlockRange(*this, mask, firstDiagonal, lastDiagonal, keyLen, kvBlock);

  float inf = std::numeric_limits<float>::infinity();
  forLoop(index(0), batchSize, 1, [&](Value batch) {
    forLoop(index(0), index(heads.kvHeads), 1, [&](Value kvHead) {
      Value outHead0 = heads.firstOutputHeadOfKV(*this, kvHead);
      if (bf16Dot)
        packQueryPairs(batch, outHead0);
      else
        packQuery(batch, outHead0);
      forLoop(index(0), paddedRows, w, [&](Value r) {
        storeVector(floatLike(zeroVector(), -inf), rowMax, {r});
        storeVector(zeroVector(), rowSum, {r});
        forLoop(index(0), index(paddedValueDim), 1, [&](Value c) {
          storeVector(zeroVector(), accT, {c, r});
        });
      });
      forLoop(firstBlock, endBlock, 1, [&](Value block) {
        Value keyStart = mul(block, kvBlock);
        Value validKeys = minS(index(kvBlock), sub(keyLen, keyStart));
        if (bf16Dot)
          packValuePairs(batch, kvHead, keyStart);
        else if (packValues)
          packKeysAndValues(batch, kvHead, keyStart);
        scoreKernel(batch, kvHead, keyStart);
        // Only blocks that run past T or cross a mask bound for some row
        // pay for element-wise masking.
        ifThen(blockNeedsMask(*this, mask, keyStart, kvBlock, keyLen,
                              firstDiagonal, lastDiagonal),
               [&] { maskBlock(keyStart, validKeys); });
        onlineSoftmax();
        if (bf16Dot)
          packProbabilityPairs();
        accumulateKernel(batch, kvHead, keyStart, validKeys);
      });
      writeOutput(batch, outHead0);
    });
  });

  for (Value buffer : buffers)
    memref::DeallocOp::create(b, loc, buffer);
}

//===----------------------------------------------------------------------===//
// bf16 dot products (bf16-dot, AVX-512 BF16)
//
// Q.K^T: bf16 q and k are exact in the pair dots, so the scores differ from
// the f32 kernel's only by f32 summation order; the scale (times log2 e) is
// applied to the f32 scores. P.V: P is rounded to bf16 (round to nearest
// even, relative error <= 2^-9 per probability) as FlashAttention does on
// GPUs, while the row sums use the f32 P; so each output element moves by at
// most 2^-9 * max_n |v[n, c]| beyond the f32 kernel's result.
//===----------------------------------------------------------------------===//

/// bf16 q, k and v, AVX-512 vectors and pairs along D: else the f32 path.
bool FlashBuilder::bf16DotApplies() {
  Type bf16 = b.getBF16Type();
  return shape.bf16Dot && shape.vectorWidth == 16 && headDim % 2 == 0 &&
         op.getQueryType().getElementType() == bf16 &&
         op.getKeyType().getElementType() == bf16 &&
         op.getValueType().getElementType() == bf16;
}

Value FlashBuilder::allocOf(Type elementType, ArrayRef<int64_t> shape,
                            ValueRange dynamicSizes) {
  auto type = MemRefType::get(shape, elementType);
  return memref::AllocOp::create(b, loc, type, dynamicSizes,
                                 b.getI64IntegerAttr(64));
}

/// queryPairs[d / 2, 2 r + d % 2] = q[r, d] (unscaled, exact); padding rows
/// are 0.
void FlashBuilder::packQueryPairs(Value batch, Value outHead0) {
  Value zero =
      arith::ConstantOp::create(b, loc, b.getZeroAttr(b.getBF16Type()));
  forLoop(index(0), paddedRows, 1, [&](Value r) {
    Value inRange = slt(r, rows);
    Value head = heads.queryHeadOf(
        *this, add(outHead0, divU(minS(r, sub(rows, index(1))), queryLen)));
    Value pos = remU(minS(r, sub(rows, index(1))), queryLen);
    forLoop(index(0), index(headDim / 2), 1, [&](Value d2) {
      for (int64_t j = 0; j < 2; ++j) {
        Value x = load(op.getQuery(), {batch, head, pos, add(mul(d2, 2), j)});
        store(select(inRange, x, zero), queryPairs, {d2, add(mul(r, 2), j)});
      }
    });
  });
}

/// valuePairs[n / 2, c] = the bf16 bits of v[n, c] (low half) and
/// v[n + 1, c] (high half), n even. Keys past T read as 0 in the high half
/// and repeat the last key in the low half; their probabilities are 0.
void FlashBuilder::packValuePairs(Value batch, Value kvHead, Value keyStart) {
  int64_t w = shape.vectorWidth;
  Type bf16 = b.getBF16Type();
  auto halfType = VectorType::get({w}, bf16);
  auto wordType = VectorType::get({w}, b.getI32Type());
  forLoop(index(0), index(shape.kvBlock / 2), 1, [&](Value n2) {
    Value first = add(keyStart, mul(n2, 2));
    Value second = add(first, 1);
    Value secondValid = slt(second, keyLen);
    Value key0 = minS(first, lastKey), key1 = minS(second, lastKey);
    if (valueDim % w == 0) {
      Value zeros = arith::ConstantOp::create(b, loc, b.getZeroAttr(halfType));
      forLoop(index(0), index(valueDim), w, [&](Value c) {
        Value lo = vector::LoadOp::create(b, loc, halfType, op.getValue(),
                                          ValueRange{batch, kvHead, key0, c});
        Value hi = vector::LoadOp::create(b, loc, halfType, op.getValue(),
                                          ValueRange{batch, kvHead, key1, c});
        hi = select(secondValid, hi, zeros);
        Value pairs = vector::InterleaveOp::create(b, loc, lo, hi);
        assert(cast<VectorType>(pairs.getType()) == pairType);
        storeVector(vector::BitCastOp::create(b, loc, wordType, pairs),
                    valuePairs, {n2, c});
      });
      return;
    }
    Type i16 = b.getI16Type(), i32 = b.getI32Type();
    auto bits = [&](Value x) {
      return arith::ExtUIOp::create(b, loc, i32,
                                    arith::BitcastOp::create(b, loc, i16, x));
    };
    Value zero = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0));
    Value sixteen = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(16));
    forLoop(index(0), index(valueDim), 1, [&](Value c) {
      Value lo = bits(load(op.getValue(), {batch, kvHead, key0, c}));
      Value hi = arith::ShLIOp::create(
          b, loc, bits(load(op.getValue(), {batch, kvHead, key1, c})), sixteen);
      store(orI(lo, select(secondValid, hi, zero)), valuePairs, {n2, c});
    });
  });
}

/// probabilityPairs[n / 2, 2 r + n % 2] = bf16(P^T[n, r]): two keys' f32
/// probability vectors rounded and interleaved.
void FlashBuilder::packProbabilityPairs() {
  int64_t w = shape.vectorWidth;
  auto halfType = VectorType::get({w}, b.getBF16Type());
  forLoop(index(0), index(shape.kvBlock / 2), 1, [&](Value n2) {
    forLoop(index(0), paddedRows, w, [&](Value r) {
      Value p0 = arith::TruncFOp::create(b, loc, halfType,
                                         loadVector(scoresT, {mul(n2, 2), r}));
      Value p1 = arith::TruncFOp::create(
          b, loc, halfType, loadVector(scoresT, {add(mul(n2, 2), 1), r}));
      vector::StoreOp::create(b, loc,
                              vector::InterleaveOp::create(b, loc, p0, p1),
                              probabilityPairs, ValueRange{n2, mul(r, 2)});
    });
  });
}

/// The Q.K^T tile of scoreKernel with pair dots over D / 2; the scores come
/// back scaled as packQuery's pre-scaled Q would give.
SmallVector<Value> FlashBuilder::scoreDotsBF16(Value batch, Value kvHead,
                                               Value keyStart,
                                               ArrayRef<Value> ns,
                                               ArrayRef<Value> rowCols,
                                               ValueRange init) {
  auto pairType = VectorType::get({2 * shape.vectorWidth}, b.getBF16Type());
  auto oneWord = VectorType::get({1}, b.getI32Type());
  auto twoHalves = VectorType::get({2}, b.getBF16Type());
  SmallVector<Value> keys;
  for (Value n : ns)
    keys.push_back(minS(add(keyStart, n), lastKey));
  SmallVector<Value> sums = emitPairDotLoop(
      b, loc, index(0), index(headDim / 2), init, shape.mr, shape.nr,
      [&](Value d2, int64_t v) -> Value {
        return vector::LoadOp::create(b, loc, pairType, queryPairs,
                                      ValueRange{d2, mul(rowCols[v], 2)});
      },
      [&](Value d2, int64_t i) -> Value {
        Value pair = vector::LoadOp::create(
            b, loc, twoHalves, op.getKey(),
            ValueRange{batch, kvHead, keys[i], mul(d2, 2)});
        return vector::ExtractOp::create(
            b, loc, vector::BitCastOp::create(b, loc, oneWord, pair),
            ArrayRef<int64_t>{0});
      });
  Value scale = floatLike(zeroVector(), op.getScaleOrDefault() * kLog2E);
  for (Value &sum : sums)
    sum = mulF(sum, scale);
  return sums;
}

/// The P.V tile of accumulateKernel with pair dots over the block's keys.
SmallVector<Value> FlashBuilder::accumulateDotsBF16(Value validKeys,
                                                    ValueRange init,
                                                    ArrayRef<Value> rowCols,
                                                    ArrayRef<Value> valueCols) {
  auto pairType = VectorType::get({2 * shape.vectorWidth}, b.getBF16Type());
  return emitPairDotLoop(
      b, loc, index(0), ceilDiv(validKeys, 2), init, shape.mr, shape.nr,
      [&](Value n2, int64_t v) -> Value {
        return vector::LoadOp::create(b, loc, pairType, probabilityPairs,
                                      ValueRange{n2, mul(rowCols[v], 2)});
      },
      [&](Value n2, int64_t i) {
        return load(valuePairs, {n2, valueCols[i]});
      });
}

namespace {
struct LowerFlashAttentionPass
    : public sqa::impl::LowerFlashAttentionBase<LowerFlashAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    // Ranges first: mr x nr tiles are unrolled at build time.
    if (failed(emitOptionErrors(
            getOperation(),
            {checkOptionRange("vector-width", vectorWidth, 1, kMaxVectorWidth),
             checkOptionRange("kv-block", kvBlock, 1, kMaxBlock),
             checkOptionRange("mr", rowsPerKernel, 1, kMaxRowsPerKernel),
             checkOptionRange("nr", vectorsPerKernel, 1,
                              kMaxVectorsPerKernel)})))
      return signalPassFailure();
    if (kvBlock % rowsPerKernel != 0 || kvBlock % 4 != 0) {
      emitError(getOperation()->getLoc())
          << "kv-block (" << static_cast<int64_t>(kvBlock)
          << ") must be a multiple of mr ("
          << static_cast<int64_t>(rowsPerKernel) << ") and of 4";
      return signalPassFailure();
    }
    KernelShape shape{vectorWidth, kvBlock, rowsPerKernel, vectorsPerKernel,
                      bf16Dot};
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
  }
};
} // namespace
