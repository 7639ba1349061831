//===- LowerDecodeSplitKV.cpp - Parallel split-KV decode on the CPU -------===//
//
// Decode is bound by memory bandwidth: each cached key and value must be
// read once, by every core. Work items are (kv head, split of one batch
// row's keys); an item stacks all query rows of its kv head's group (the
// group's output heads x new_len) so K/V are streamed once per group, and
// leaves a partial softmax state per row. A second parallel loop merges the
// partials of each row in split order. Splits are cut from the cache
// lengths alone, so the numbers never depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "DecodeSupport.h"
#include "OuterProductLoop.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>
#include <numeric>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERDECODESPLITKV
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

struct SplitKVShape {
  int64_t vectorWidth, kvBlock, splitKeys;
};

/// Value columns (in vectors) merged per pass over the splits, or
/// accumulated per pass over the keys by a single row: enough registers
/// stay free for the loads.
constexpr int64_t kVectorsPerPass = 8;
/// Keys whose dot products one pass over the head dim computes for a single
/// row; the option check keeps kv-block a multiple of it.
constexpr int64_t kKeysPerDot = 4;
/// Vector registers the register tiles are sized for: AVX2 has 16 (the
/// AVX-512 variants compiled from the same IR have 32). A 2 x 6 P.V tile
/// plus its 6 loaded V vectors spilled three accumulators per key on AVX2.
constexpr int64_t kVectorRegisters = 16;
/// Dot-product accumulators per pass over the head dim (rows x keys) when
/// a key row is short enough that several keys are read side by side.
constexpr int64_t kDotAccumulators = 8;

/// How a work item's stacked rows share the loaded K and V vectors: rows
/// per register tile, keys per dot-product pass, value vectors per P.V pass.
struct RowTiling {
  int64_t rows, keysPerDot, valueVectors;
};

/// The tiling for at least `stackedRows` rows: tiles of 4 rows when there
/// are 4 (2 for 2-3), so each loaded K/V vector feeds 4 FMAs and Q.K^T reads
/// K once per 4 rows. A last, partial tile repeats the last row (14/2/64
/// computes 8 rows per kv head for its 7). Measured (2 threads, wall, 16k
/// cache, with the V prefetch, against 2-row tiles at head dims >= 128 only and
/// no prefetch): 32/8/128 0.76x, 8/2/128 0.69x, 14/2/64 0.84x the time; 16/8/64
/// (2-row tiles, 4 keys per pass) 0.90x.
static RowTiling rowTilingFor(int64_t stackedRows, int64_t headDim) {
  int64_t rows = stackedRows >= 4 ? 4 : stackedRows >= 2 ? 2 : 1;
  if (rows == 1)
    return {1, kKeysPerDot, kVectorsPerPass};
  // Key rows of 128 and more elements are read one at a time, in address
  // order (4 rows side by side ran 1.2x slower from DRAM at 16/8/128);
  // shorter ones kDotAccumulators / rows at a time. A tile's P.V
  // accumulators, its loaded V vectors and one broadcast fit the registers.
  return {rows, headDim >= 128 ? 1 : kDotAccumulators / rows,
          (kVectorRegisters - 1) / (rows + 1)};
}

/// Work items a call aims for (over all kv heads and batch rows): enough to
/// keep 64 cores busy before splits shrink below split-keys.
constexpr int64_t kTargetItems = 64;

class SplitKVBuilder : public LoweringBuilder {
public:
  SplitKVBuilder(RewriterBase &rewriter, DecodeOp op, SplitKVShape shape)
      : LoweringBuilder(rewriter, op.getLoc()), b(rewriter), loc(op.getLoc()),
        op(op), shape(shape), f32Type(b.getF32Type()) {}

  void build();

private:
  using Softmax = OnlineSoftmax<LoweringBuilder>;

  /// A vector of `vectorWidth` elements as f32.
  Value loadVector(Value memref, ValueRange indices) {
    Type element = cast<MemRefType>(memref.getType()).getElementType();
    return toF32(vector::LoadOp::create(
        b, loc, VectorType::get({width}, element), memref, indices));
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
  Value reduce(vector::CombiningKind kind, Value vector) {
    return vector::ReductionOp::create(b, loc, kind, vector);
  }
  Value alloc(Type element, ArrayRef<int64_t> shape, ValueRange dynamic) {
    auto value =
        memref::AllocOp::create(b, loc, MemRefType::get(shape, element),
                                dynamic, b.getI64IntegerAttr(64));
    buffers.push_back(value);
    return value;
  }
  /// An scf.forall over [0, ub) per bound; `body` gets the induction values.
  void parallelLoop(ArrayRef<Value> ubs, function_ref<void(ValueRange)> body) {
    SmallVector<OpFoldResult> bounds(ubs.begin(), ubs.end());
    auto forall =
        scf::ForallOp::create(b, loc, bounds, ValueRange{}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    body(forall.getInductionVars());
  }
  Softmax::Exponential exponential() {
    return {[this](Value x) { return exp2Approx(x); },
            /*zeroAtNegInf=*/false};
  }

  Value sumEachVector(ArrayRef<Value> vectors);
  void storeDotProducts(ArrayRef<Value> sums, ArrayRef<Value> tileRows,
                        int64_t keysPerDot, Value scores, Value n0);
  void workItem(Value item, Value kvHead);
  void merge(Value batch, Value kvHead);

  RewriterBase &b;
  Location loc;
  DecodeOp op;
  SplitKVShape shape;
  Type f32Type;
  VectorType vecType;
  int64_t width = 1, headDim = 0, valueDim = 0;
  HeadMapping heads;
  MaskBounds mask;
  Value newLen, rows;
  // Per batch row: its visible key blocks [first, end) and its first work
  // item (offsets has B + 1); per item: its batch row.
  Value rowFirstBlock, rowEndBlock, offsets, itemBatch, blocksPerSplit;
  // Per (item, kv head, row): partial max and sum (base 2), accumulator.
  Value partMax, partSum, partAcc;
  SmallVector<Value> buffers;
};

} // namespace

/// A vector whose lane j is the sum of the lanes of vectors[j] (at most
/// `width` vectors, width >= 4): a transposing tree of shuffles and adds,
/// ~3 operations per vector instead of a horizontal reduction each. Split
/// levels halve the lanes each vector owns (the 128-bit halves at width 8);
/// the last two are pairwise sums within 4 lanes (haddps). Which lane ends
/// up owning which vector is worked out here, at build time, and the inputs
/// are fed in the order that needs no final permutation when there is one.
Value SplitKVBuilder::sumEachVector(ArrayRef<Value> vectors) {
  // Each level: the shuffle masks (into x ++ y) of its two addends.
  SmallVector<std::pair<SmallVector<int64_t>, SmallVector<int64_t>>> levels;
  for (int64_t chunk = width; chunk >= 8; chunk /= 2) {
    auto &[lo, hi] = levels.emplace_back();
    for (int64_t base = 0; base < width; base += chunk)
      for (int64_t source : {int64_t(0), width})
        for (int64_t i = 0; i < chunk / 2; ++i) {
          lo.push_back(source + base + i);
          hi.push_back(source + base + chunk / 2 + i);
        }
  }
  for (int round = 0; round < 2; ++round) {
    auto &[lo, hi] = levels.emplace_back();
    for (int64_t base = 0; base < width; base += 4)
      for (int64_t source : {int64_t(0), width})
        for (int64_t i = 0; i < 4; i += 2) {
          lo.push_back(source + base + i);
          hi.push_back(source + base + i + 1);
        }
  }
  // Runs the tree on `inputs` (slots; a missing value is zero), tracking per
  // lane the slot whose sum it holds (-1: none). Builds ops when `emit`.
  auto run = [&](ArrayRef<Value> inputs, bool emit) {
    struct Part {
      Value value;
      SmallVector<int64_t> owner;
    };
    SmallVector<Part> parts;
    for (auto [i, v] : llvm::enumerate(inputs))
      parts.push_back({v, SmallVector<int64_t>(width, i)});
    for (const auto &[lo, hi] : levels) {
      if (parts.size() % 2)
        parts.push_back(
            {emit ? zeroVector() : Value(), SmallVector<int64_t>(width, -1)});
      SmallVector<Part> next;
      for (size_t p = 0; p < parts.size(); p += 2) {
        const Part &x = parts[p], &y = parts[p + 1];
        auto ownerOf = [&](int64_t lane) {
          return lane < width ? x.owner[lane] : y.owner[lane - width];
        };
        Part sum;
        if (emit)
          sum.value =
              addF(vector::ShuffleOp::create(b, loc, x.value, y.value, lo),
                   vector::ShuffleOp::create(b, loc, x.value, y.value, hi));
        for (int64_t lane = 0; lane < width; ++lane) {
          assert(ownerOf(lo[lane]) == ownerOf(hi[lane]) &&
                 "a lane adds partial sums of one vector");
          sum.owner.push_back(ownerOf(lo[lane]));
        }
        next.push_back(std::move(sum));
      }
      parts = std::move(next);
    }
    assert(parts.size() == 1 && "the tree ends in one vector");
    return parts.front();
  };
  int64_t count = vectors.size();
  SmallVector<int64_t> laneOfSlot(count, -1);
  SmallVector<Value> none(count);
  for (auto [lane, slot] : llvm::enumerate(run(none, false).owner))
    if (slot >= 0)
      laneOfSlot[slot] = lane;
  // Slot s lands in lane laneOfSlot[s]; feed it vector laneOfSlot[s] when
  // those lanes are exactly 0..count-1.
  if (llvm::all_of(laneOfSlot, [&](int64_t lane) { return lane < count; })) {
    SmallVector<Value> inputs;
    for (int64_t lane : laneOfSlot)
      inputs.push_back(vectors[lane]);
    return run(inputs, true).value;
  }
  SmallVector<int64_t> order(width, 0);
  for (auto [slot, lane] : llvm::enumerate(laneOfSlot))
    order[slot] = lane;
  Value sums = run(vectors, true).value;
  return vector::ShuffleOp::create(b, loc, sums, sums, order);
}

/// Stores a tile's dot products (sums[i * keysPerDot + k]: row tileRows[i],
/// key n0 + k) into the scores.
void SplitKVBuilder::storeDotProducts(ArrayRef<Value> sums,
                                      ArrayRef<Value> tileRows,
                                      int64_t keysPerDot, Value scores,
                                      Value n0) {
  if (width < 4 || static_cast<int64_t>(sums.size()) > width) {
    for (auto [i, row] : llvm::enumerate(tileRows))
      for (int64_t k = 0; k < keysPerDot; ++k)
        store(reduce(vector::CombiningKind::ADD, sums[i * keysPerDot + k]),
              scores, {row, add(n0, k)});
    return;
  }
  Value all = sumEachVector(sums);
  for (auto [i, row] : llvm::enumerate(tileRows)) {
    Value rowKeys = vector::ExtractStridedSliceOp::create(
        b, loc, all, ArrayRef<int64_t>{static_cast<int64_t>(i) * keysPerDot},
        ArrayRef<int64_t>{keysPerDot}, ArrayRef<int64_t>{1});
    storeVector(rowKeys, scores, {row, n0});
  }
}

/// One work item: rows of every output head of `kvHead` x new_len against
/// one split of one batch row's keys.
void SplitKVBuilder::workItem(Value item, Value kvHead) {
  Value batch = load(itemBatch, {item});
  Value split = sub(item, load(offsets, {batch}));
  Value valid = validLength(*this, op, batch, newLen);
  Value firstDiagonal = sub(valid, newLen);
  Value lastDiagonal = sub(valid, index(1));
  Value lastKey = sub(valid, index(1));
  Value lastRow = sub(rows, index(1));
  // The split's blocks: a run of blocksPerSplit of the row's visible blocks.
  Value firstBlock =
      add(load(rowFirstBlock, {batch}), mul(split, blocksPerSplit));
  Value endBlock =
      minS(add(firstBlock, blocksPerSplit), load(rowEndBlock, {batch}));
  Value outHead0 = heads.firstOutputHeadOfKV(*this, kvHead);
  int64_t kvBlock = shape.kvBlock;
  float inf = std::numeric_limits<float>::infinity();

  SmallVector<Value> scratch;
  auto scratchAlloc = [&](ArrayRef<int64_t> shape, ValueRange dynamic) {
    Value value =
        memref::AllocOp::create(b, loc, MemRefType::get(shape, f32Type),
                                dynamic, b.getI64IntegerAttr(64));
    scratch.push_back(value);
    return value;
  };
  int64_t dyn = ShapedType::kDynamic;
  Value queries = scratchAlloc({dyn, headDim}, {rows});
  Value scores = scratchAlloc({dyn, kvBlock}, {rows});
  Value alphas = scratchAlloc({dyn}, {rows});

  // Q pre-scaled by scale * log2(e): the softmax runs in base 2.
  Value scale = f32(op.getScaleOrDefault() * kLog2E);
  forLoop(index(0), rows, 1, [&](Value r) {
    Value head = heads.queryHeadOf(*this, add(outHead0, divU(r, newLen)));
    Value pos = remU(r, newLen);
    forLoop(index(0), index(headDim), width, [&](Value c) {
      storeVector(
          mulF(loadVector(op.getQuery(), {batch, head, pos, c}), splat(scale)),
          queries, {r, c});
    });
    store(f32(-inf), partMax, {item, kvHead, r});
    store(f32(0.0f), partSum, {item, kvHead, r});
    forLoop(index(0), index(valueDim), width, [&](Value c) {
      storeVector(zeroVector(), partAcc, {item, kvHead, r, c});
    });
  });

  // V elements per 64-byte cache line (prefetch granularity).
  int64_t valueElementsPerLine = std::max<int64_t>(
      1, 512 / op.getValueCacheType().getElementTypeBitWidth());
  // The item's key blocks with one row tiling.
  auto streamBlocks = [&](RowTiling tiling) {
    int64_t rowTile = tiling.rows, keysPerDot = tiling.keysPerDot,
            valueVectors = tiling.valueVectors;
    forLoop(firstBlock, endBlock, 1, [&](Value block) {
      Value blockStart = mul(block, kvBlock);
      Value validKeys = minS(index(kvBlock), sub(valid, blockStart));
      // Scores: dot products along the head dim for a tile of rows x
      // keysPerDot keys per pass (keys past the row read its last key, rows
      // past the last repeat it; both are overwritten or masked below).
      forLoop(index(0), rows, rowTile, [&](Value r0) {
        SmallVector<Value> tileRows;
        for (int64_t i = 0; i < rowTile; ++i)
          tileRows.push_back(minS(add(r0, index(i)), lastRow));
        forLoop(index(0), index(kvBlock), keysPerDot, [&](Value n0) {
          SmallVector<Value> keys;
          for (int64_t k = 0; k < keysPerDot; ++k)
            keys.push_back(minS(add(blockStart, add(n0, k)), lastKey));
          // P.V reads these keys' V rows after the softmax. Fetched now,
          // they stream while Q.K^T computes; otherwise memory idles through
          // the compute-bound phases of grouped heads (32/8/128 at 16k took
          // 1.3x as long without).
          for (Value key : keys)
            for (int64_t c = 0; c < valueDim; c += valueElementsPerLine)
              memref::PrefetchOp::create(
                  b, loc, op.getValueCache(),
                  ValueRange{batch, kvHead, key, index(c)},
                  /*isWrite=*/false, /*localityHint=*/3,
                  /*isDataCache=*/true);
          SmallVector<Value> init(rowTile * keysPerDot, zeroVector());
          SmallVector<Value> sums = forLoop(
              index(0), index(headDim), width, init,
              [&](Value c, ValueRange sum) -> SmallVector<Value> {
                SmallVector<Value> keyVectors, next;
                for (Value key : keys)
                  keyVectors.push_back(
                      loadVector(op.getKeyCache(), {batch, kvHead, key, c}));
                for (auto [i, row] : llvm::enumerate(tileRows)) {
                  Value q = vector::LoadOp::create(b, loc, vecType, queries,
                                                   ValueRange{row, c});
                  for (int64_t k = 0; k < keysPerDot; ++k)
                    next.push_back(
                        fma(q, keyVectors[k], sum[i * keysPerDot + k]));
                }
                return next;
              });
          storeDotProducts(sums, tileRows, keysPerDot, scores, n0);
        });
      });
      ifThen(blockNeedsMask(*this, mask, blockStart, kvBlock, valid,
                            firstDiagonal, lastDiagonal),
             [&] {
               forLoop(index(0), rows, 1, [&](Value r) {
                 Value diagonal = add(firstDiagonal, remU(r, newLen));
                 forLoop(index(0), index(kvBlock), 1, [&](Value n) {
                   Value visible = andI(
                       slt(n, validKeys),
                       isKeyVisible(*this, mask, diagonal, add(blockStart, n)));
                   store(select(visible, load(scores, {r, n}), f32(-inf)),
                         scores, {r, n});
                 });
               });
             });
      // The block's online softmax, row by row, keys along lanes.
      forLoop(index(0), rows, 1, [&](Value r) {
        Value maxVector =
            forLoop(index(0), index(kvBlock), width,
                    ValueRange{floatLike(zeroVector(), -inf)},
                    [&](Value n, ValueRange m) -> SmallVector<Value> {
                      Value s = vector::LoadOp::create(b, loc, vecType, scores,
                                                       ValueRange{r, n});
                      return {maxF(m[0], s)};
                    })[0];
        Value oldMax = load(partMax, {item, kvHead, r});
        Value newMax =
            maxF(oldMax, reduce(vector::CombiningKind::MAXNUMF, maxVector));
        Value alpha = Softmax::rescale(*this, oldMax, newMax, exponential());
        Value shift = splat(Softmax::shift(*this, newMax));
        Value sumVector =
            forLoop(index(0), index(kvBlock), width, ValueRange{zeroVector()},
                    [&](Value n, ValueRange sum) -> SmallVector<Value> {
                      Value s = vector::LoadOp::create(b, loc, vecType, scores,
                                                       ValueRange{r, n});
                      Value p =
                          Softmax::probability(*this, s, shift, exponential());
                      storeVector(p, scores, {r, n});
                      return {addF(sum[0], p)};
                    })[0];
        Value blockSum = reduce(vector::CombiningKind::ADD, sumVector);
        store(Softmax::nextSum(*this, alpha, load(partSum, {item, kvHead, r}),
                               blockSum),
              partSum, {item, kvHead, r});
        store(newMax, partMax, {item, kvHead, r});
        store(alpha, alphas, {r});
      });
      // O = alpha * O + P.V over the valid keys, value columns along lanes,
      // a tile of rows per loaded V vector.
      forLoop(index(0), rows, rowTile, [&](Value r0) {
        SmallVector<Value> tileRows, rowAlphas;
        for (int64_t i = 0; i < rowTile; ++i) {
          tileRows.push_back(minS(add(r0, index(i)), lastRow));
          rowAlphas.push_back(splat(load(alphas, {tileRows.back()})));
        }
        for (int64_t c0 = 0; c0 < valueDim; c0 += valueVectors * width) {
          int64_t count = std::min(valueVectors, (valueDim - c0) / width);
          SmallVector<Value> init;
          for (auto [row, alpha] : llvm::zip_equal(tileRows, rowAlphas))
            for (int64_t v = 0; v < count; ++v)
              init.push_back(mulF(
                  alpha,
                  vector::LoadOp::create(
                      b, loc, vecType, partAcc,
                      ValueRange{item, kvHead, row, index(c0 + v * width)})));
          SmallVector<Value> sums = emitOuterProductLoop(
              b, loc, index(0), validKeys, init, rowTile, count, vecType,
              [&](Value n, int64_t v) {
                return loadVector(
                    op.getValueCache(),
                    {batch, kvHead, add(blockStart, n), index(c0 + v * width)});
              },
              [&](Value n, int64_t i) {
                return load(scores, {tileRows[i], n});
              });
          for (auto [i, row] : llvm::enumerate(tileRows))
            for (int64_t v = 0; v < count; ++v)
              storeVector(sums[i * count + v], partAcc,
                          {item, kvHead, row, index(c0 + v * width)});
        }
      });
    });
  };
  // new_len > 1 can stack 4 rows where the group alone has fewer (MHA with
  // new_len 4 read K/V at 47% of the bandwidth against 74% at new_len 1):
  // the wider tiling, chosen at run time.
  RowTiling groupTiling = rowTilingFor(heads.outputsPerKVHead(), headDim);
  RowTiling stackTiling = rowTilingFor(4, headDim);
  if (groupTiling.rows >= stackTiling.rows)
    streamBlocks(groupTiling);
  else
    ifThenElse(
        cmp(arith::CmpIPredicate::sge, rows, index(stackTiling.rows)),
        [&] { streamBlocks(stackTiling); }, [&] { streamBlocks(groupTiling); });
  for (Value buffer : scratch)
    memref::DeallocOp::create(b, loc, buffer);
}

/// The partials of batch row `batch`'s rows of `kvHead`, merged in split
/// order, normalized and stored.
void SplitKVBuilder::merge(Value batch, Value kvHead) {
  Value first = load(offsets, {batch});
  Value end = load(offsets, {add(batch, index(1))});
  Value outHead0 = heads.firstOutputHeadOfKV(*this, kvHead);
  Type elementType = op.getOutType().getElementType();
  float inf = std::numeric_limits<float>::infinity();
  forLoop(index(0), rows, 1, [&](Value r) {
    Value head = add(outHead0, divU(r, newLen));
    Value pos = remU(r, newLen);
    for (int64_t c0 = 0; c0 < valueDim; c0 += kVectorsPerPass * width) {
      SmallVector<Value> columns, init = {f32(-inf), f32(0.0f)};
      for (int64_t c = c0; c < std::min(valueDim, c0 + kVectorsPerPass * width);
           c += width) {
        columns.push_back(index(c));
        init.push_back(zeroVector());
      }
      SmallVector<Value> state = forLoop(
          first, end, 1, init,
          [&](Value item, ValueRange s) -> SmallVector<Value> {
            Softmax::Merged m = Softmax::merge(
                *this, s[0], s[1], load(partMax, {item, kvHead, r}),
                load(partSum, {item, kvHead, r}), exponential());
            SmallVector<Value> next = {m.max, m.sum};
            Value alphaA = splat(m.alphaA), alphaB = splat(m.alphaB);
            for (auto [j, c] : llvm::enumerate(columns)) {
              Value partial = vector::LoadOp::create(
                  b, loc, vecType, partAcc, ValueRange{item, kvHead, r, c});
              next.push_back(fma(alphaB, partial, mulF(alphaA, s[2 + j])));
            }
            return next;
          });
      Value inverse = splat(Softmax::normalizer(*this, state[1]));
      for (auto [j, c] : llvm::enumerate(columns)) {
        Value y = mulF(state[2 + j], inverse);
        if (elementType != f32Type)
          y = arith::TruncFOp::create(b, loc,
                                      VectorType::get({width}, elementType), y);
        storeVector(y, op.getOut(), {batch, head, pos, c});
      }
    }
  });
}

void SplitKVBuilder::build() {
  headDim = op.getHeadDim();
  valueDim = op.getValueHeadDim();
  // The widest power-of-two vector that tiles both head dims and the block.
  int64_t common = std::gcd(std::gcd(headDim, valueDim), shape.kvBlock);
  width = 1;
  while (width * 2 <= shape.vectorWidth && common % (width * 2) == 0)
    width *= 2;
  vecType = VectorType::get({width}, f32Type);
  heads = op.getHeadMapping();
  mask = MaskBounds::get(op.getEffectiveMask());
  Value batchSize = dim(op.getQuery(), 0);
  newLen = dim(op.getQuery(), 2);
  rows = mul(newLen, heads.outputsPerKVHead());
  Value kvHeads = index(heads.kvHeads);

  appendNewTokens(*this, op, batchSize, newLen);

  // The work list. Each batch row's visible key blocks (keyBlockRange) are
  // cut into splits of blocksPerSplit blocks, numbered consecutively, so a
  // row of L keys costs ~L / (kv-block * blocksPerSplit) items. The split
  // size follows the inputs alone (never the thread count): as small as
  // needed for kTargetItems items over all kv heads, at least one block and
  // at most split-keys keys.
  Type indexType = b.getIndexType();
  int64_t dyn = ShapedType::kDynamic;
  rowFirstBlock = alloc(indexType, {dyn}, {batchSize});
  rowEndBlock = alloc(indexType, {dyn}, {batchSize});
  offsets = alloc(indexType, {dyn}, {add(batchSize, index(1))});
  Value totalBlocks =
      forLoop(index(0), batchSize, 1, ValueRange{index(0)},
              [&](Value batch, ValueRange count) -> SmallVector<Value> {
                Value valid = validLength(*this, op, batch, newLen);
                auto [first, end] =
                    keyBlockRange(*this, mask, sub(valid, newLen),
                                  sub(valid, index(1)), valid, shape.kvBlock);
                store(first, rowFirstBlock, {batch});
                store(end, rowEndBlock, {batch});
                return {add(count[0], sub(end, first))};
              })[0];
  blocksPerSplit = minS(
      maxS(ceilDiv(mul(totalBlocks, heads.kvHeads), kTargetItems), index(1)),
      index(shape.splitKeys / shape.kvBlock));
  Value total = forLoop(
      index(0), batchSize, 1, ValueRange{index(0)},
      [&](Value batch, ValueRange count) -> SmallVector<Value> {
        Value blocks =
            sub(load(rowEndBlock, {batch}), load(rowFirstBlock, {batch}));
        store(count[0], offsets, {batch});
        Value splits =
            divU(add(blocks, sub(blocksPerSplit, index(1))), blocksPerSplit);
        return {add(count[0], splits)};
      })[0];
  store(total, offsets, {batchSize});
  itemBatch = alloc(indexType, {dyn}, {total});
  forLoop(index(0), batchSize, 1, [&](Value batch) {
    forLoop(load(offsets, {batch}), load(offsets, {add(batch, index(1))}), 1,
            [&](Value item) { store(batch, itemBatch, {item}); });
  });

  partMax = alloc(f32Type, {dyn, heads.kvHeads, dyn}, {total, rows});
  partSum = alloc(f32Type, {dyn, heads.kvHeads, dyn}, {total, rows});
  partAcc = alloc(f32Type, {dyn, heads.kvHeads, dyn, valueDim}, {total, rows});
  parallelLoop({kvHeads, total},
               [&](ValueRange ivs) { workItem(ivs[1], ivs[0]); });
  parallelLoop({batchSize, kvHeads},
               [&](ValueRange ivs) { merge(ivs[0], ivs[1]); });
  for (Value buffer : buffers)
    memref::DeallocOp::create(b, loc, buffer);
}

namespace {
struct LowerDecodeSplitKVPass
    : public sqa::impl::LowerDecodeSplitKVBase<LowerDecodeSplitKVPass> {
  using Base::Base;

  void runOnOperation() override {
    if (failed(emitOptionErrors(
            getOperation(),
            {checkOptionRange("vector-width", vectorWidth, 1, kMaxVectorWidth),
             checkOptionRange("kv-block", kvBlock, 1, kMaxBlock),
             checkOptionRange("split-keys", splitKeys, 1, kMaxBlock)})))
      return signalPassFailure();
    if (kvBlock % kKeysPerDot != 0 || splitKeys % kvBlock != 0) {
      emitError(getOperation()->getLoc())
          << "kv-block (" << static_cast<int64_t>(kvBlock)
          << ") must be a multiple of " << kKeysPerDot
          << " and divide split-keys (" << static_cast<int64_t>(splitKeys)
          << ")";
      return signalPassFailure();
    }
    SplitKVShape shape{vectorWidth, kvBlock, splitKeys};
    SmallVector<DecodeOp> ops;
    getOperation()->walk([&](DecodeOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (DecodeOp op : ops) {
      rewriter.setInsertionPoint(op);
      SplitKVBuilder(rewriter, op, shape).build();
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
