//===- TensorCoreBackward.cpp - mma.sync kernels of the GPU backward ------===//
//
// FlashAttention-2's backward for f16/bf16 on m16n8k16 mma.sync with f32
// accumulation, deterministic (every gradient element has one writer, no
// atomics):
//
//  * dK/dV: a block per (batch, kv head, 64 keys); warp w owns keys
//    16w..16w+15 as the M rows of its MMAs. Per output head of the kv head
//    and per tile of 32 query rows whose key-block range holds the block:
//      S^T = K Q^T, dP^T = V dO^T, P^T = exp2(S^T - lse),
//      dS^T = P^T (dP^T - Delta), dV += P^T dO, dK += dS^T Q.
//    With keys as rows, P^T and dS^T are accumulator fragments that already
//    are the A operands of the next MMAs: nothing is transposed through
//    shared memory.
//  * dQ: a block per (batch, query head, 64 rows); warp w owns rows
//    16w..16w+15. Per output head of the query head (several for reverse
//    SQA) and block of 32 keys (keyBlockRange):
//      S = Q K^T, dP = dO V^T, dS = P (dP - Delta), dQ += dS K.
//
// P and dS are rounded to the element type as MMA operands (FlashAttention
// does the same); scores, probabilities and gradients are otherwise f32.
// Tiles are staged by cp.async (rows past the end zero-filled) into shared
// rows padded by 16 bytes, as in LowerAttentionToGPU.cpp, and read by
// ldmatrix. Fragment layouts are the PTX ISA's m16n8k16 ones: with
// g = lane / 4 and t = lane % 4, accumulator element i of a thread is row
// g + 8 * (i / 2), column 2t + i % 2.
//
//===----------------------------------------------------------------------===//

#include "TensorCoreBackward.h"

#include "GPUHostSupport.h"
#include "MmaSync.h"
#include "sqa/Transforms/GPUKernelABI.h"

#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <array>
#include <limits>

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::gpu_abi;

namespace {

constexpr int64_t kThreads = kTensorCoreBackwardThreads;
constexpr int64_t kRows = kTensorCoreBackwardRows;
/// Rows of the tiles streamed past the block's own rows: query rows
/// (dK/dV kernel), keys (dQ kernel).
constexpr int64_t kStreamRows = 32;
/// Padding of shared rows, so that the 8 rows an ldmatrix reads fall into
/// different banks.
constexpr int64_t kRowPad = 8;
constexpr float kLog2E = 1.4426950408889634f;

/// Shared memory of both kernels: the block's own rows (K, V for dK/dV; Q,
/// dO for dQ), the streamed tile (Q, dO; K, V), then f32 lse * log2(e) and
/// Delta of the query rows staged (streamed or own).
struct SharedLayout {
  int64_t headDim, valueDim, elementBytes, stateRows;

  int64_t ownD() const { return 0; }
  int64_t ownDv() const { return kRows * (headDim + kRowPad) * elementBytes; }
  int64_t streamD() const {
    return ownDv() + kRows * (valueDim + kRowPad) * elementBytes;
  }
  int64_t streamDv() const {
    return streamD() + kStreamRows * (headDim + kRowPad) * elementBytes;
  }
  int64_t lse() const {
    return streamDv() + kStreamRows * (valueDim + kRowPad) * elementBytes;
  }
  int64_t delta() const { return lse() + stateRows * 4; }
  int64_t bytes() const { return delta() + stateRows * 4; }
};

SharedLayout layoutOf(const TensorCoreBackwardSpec &spec, bool keyValue) {
  return {spec.headDim, spec.valueDim,
          spec.elementType.getIntOrFloatBitWidth() / 8,
          keyValue ? kStreamRows : kRows};
}

/// An m16n8 f32 accumulator tile of one thread.
using Frag = std::array<Value, 4>;
/// A 16x16 A operand: four packed pairs (rows g, g+8 x columns 2t, 2t+8).
using AFrag = std::array<Value, 4>;
/// A 16x8 B operand: two packed pairs.
using BFrag = std::array<Value, 2>;

class TensorCoreBackwardBuilder : public LoweringBuilder,
                                  private TrainingKernelArguments {
public:
  TensorCoreBackwardBuilder(ImplicitLocOpBuilder &b,
                            const TensorCoreBackwardSpec &spec,
                            gpu::GPUFuncOp func, bool keyValue)
      : LoweringBuilder(b, b.getLoc()), TrainingKernelArguments(func), b(b),
        spec(spec), layout(layoutOf(spec, keyValue)) {
    mask = MaskBounds::get(spec.mask);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    warp = divU(tid, 32);
    Value lane = remU(tid, 32);
    laneRow = divU(lane, 4);
    laneCol = mul(remU(lane, 4), 2);
    smem = gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface(), workgroup()));
  }

  void buildKeyValueKernel();
  void buildQueryKernel();

private:
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  /// ex2.approx gives +0 at -inf: the rules need no guard.
  Softmax::Exponential exp{
      [this](Value x) { return ptxExp2(b, b.getLoc(), x); },
      /*zeroAtNegInf=*/true};

  Attribute workgroup() {
    return gpu::AddressSpaceAttr::get(b.getContext(),
                                      gpu::AddressSpace::Workgroup);
  }
  Value tileView(int64_t byteOffset, int64_t rows, int64_t cols) {
    auto type = MemRefType::get({rows, cols + kRowPad}, spec.elementType,
                                MemRefLayoutAttrInterface(), workgroup());
    return memref::ViewOp::create(b, type, smem, index(byteOffset),
                                  ValueRange{});
  }
  Value stateView(int64_t byteOffset) {
    auto type = MemRefType::get({layout.stateRows}, b.getF32Type(),
                                MemRefLayoutAttrInterface(), workgroup());
    return memref::ViewOp::create(b, type, smem, index(byteOffset),
                                  ValueRange{});
  }

  /// cp.async of rows [first, first + rows) x `cols` of (batch, head) of
  /// `buffer` into `dst`, 16 bytes per copy; rows at or past `limit` are
  /// zero-filled (their address is clamped in bounds, nothing is read).
  void stageRows(int buffer, Value dst, int64_t rows, int64_t cols, Value batch,
                 Value head, Value first, Value limit) {
    int64_t perCopy = 16 / layout.elementBytes;
    int64_t chunksPerRow = cols / perCopy;
    forLoop(tid, index(rows * chunksPerRow), index(kThreads), [&](Value c) {
      Value row = divU(c, chunksPerRow);
      Value col = mul(remU(c, chunksPerRow), perCopy);
      Value pos = add(first, row);
      Value clamped = maxS(index(0), minS(pos, sub(limit, index(1))));
      Value src = add(rowOffset(*this, buffer, batch, head, clamped), col);
      nvgpu::DeviceAsyncCopyOp::create(
          b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst,
          ValueRange{row, col}, memrefs[buffer], ValueRange{src},
          b.getIndexAttr(perCopy),
          select(slt(pos, limit), index(perCopy), index(0)), b.getUnitAttr());
    });
  }
  void commitAndWait() {
    auto token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    Value group =
        nvgpu::DeviceAsyncCreateGroupOp::create(b, token, ValueRange{});
    nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(0));
  }
  /// lse * log2(e) and Delta = rowsum(dO * O) of `layout.stateRows` rows of
  /// output head `head` from `first`. Rows past S get lse +inf and Delta 0,
  /// so that their P and dS are 0 without element masks (blocks that need
  /// none still hold such padding rows). Delta is computed where it is
  /// staged: Dv multiply-adds per row, no preprocess kernel.
  void stageRowState(Value lse2s, Value deltas, Value batch, Value head,
                     Value first) {
    forLoop(tid, index(layout.stateRows), index(kThreads), [&](Value r) {
      Value valid = slt(add(first, r), queryLen);
      Value pos = minS(add(first, r), sub(queryLen, index(1)));
      Value lse = memref::LoadOp::create(
          b, memrefs[kTrainingLse],
          ValueRange{rowOffset(*this, kTrainingLse, batch, head, pos)});
      memref::StoreOp::create(
          b,
          select(valid, mulF(lse, f32(kLog2E)),
                 f32(std::numeric_limits<float>::infinity())),
          lse2s, r);
      Value dOut = rowOffset(*this, kTrainingDOut, batch, head, pos);
      Value out = rowOffset(*this, kTrainingOut, batch, head, pos);
      Value delta =
          forLoop(index(0), index(spec.valueDim), 1, ValueRange{f32(0.0f)},
                  [&](Value d, ValueRange acc) -> SmallVector<Value> {
                    Value x = memref::LoadOp::create(b, memrefs[kTrainingDOut],
                                                     ValueRange{add(dOut, d)});
                    Value y = memref::LoadOp::create(b, memrefs[kTrainingOut],
                                                     ValueRange{add(out, d)});
                    return {fma(toF32(x), toF32(y), acc[0])};
                  })[0];
      memref::StoreOp::create(b, select(valid, delta, f32(0.0f)), deltas, r);
    });
  }

  // Fragments.
  Value ldmatrix(Value tile, Value row, Value col, bool transpose) {
    auto type = VectorType::get({4, 2}, spec.elementType);
    return nvgpu::LdMatrixOp::create(b, type, tile, ValueRange{row, col},
                                     transpose, /*numTiles=*/4);
  }
  Value part(Value frags, int64_t i) {
    return vector::ExtractOp::create(b, frags, i);
  }
  /// The A operand of rows [row0, row0 + 16) x columns [col0, col0 + 16) of
  /// a row-major tile.
  AFrag loadA(Value tile, Value row0, int64_t col0) {
    Value lane = remU(tid, 32);
    Value f = ldmatrix(tile, add(row0, remU(lane, 16)),
                       add(index(col0), mul(divU(lane, 16), 8)), false);
    return {part(f, 0), part(f, 1), part(f, 2), part(f, 3)};
  }
  /// B operands of N = [n0, n0 + 8) and [n0 + 8, n0 + 16), K = [k0, k0 +
  /// 16), from a tile stored N-major ([n][k]: Q, dO, K, V rows).
  std::pair<BFrag, BFrag> loadB(Value tile, int64_t n0, int64_t k0) {
    Value lane = remU(tid, 32);
    Value f = ldmatrix(
        tile, add(index(n0), add(mul(divU(lane, 16), 8), remU(lane, 8))),
        add(index(k0), mul(remU(divU(lane, 8), 2), 8)), false);
    return {{part(f, 0), part(f, 1)}, {part(f, 2), part(f, 3)}};
  }
  /// The same from a tile stored K-major ([k][n]), transposed by ldmatrix.
  std::pair<BFrag, BFrag> loadBTransposed(Value tile, int64_t k0, int64_t n0) {
    Value lane = remU(tid, 32);
    Value f = ldmatrix(
        tile,
        add(index(k0), add(mul(remU(divU(lane, 8), 2), 8), remU(lane, 8))),
        add(index(n0), mul(divU(lane, 16), 8)), true);
    return {{part(f, 0), part(f, 1)}, {part(f, 2), part(f, 3)}};
  }
  /// Two f32 values as one packed pair of the element type.
  Value packPair(Value x, Value y) {
    auto pairF32 = VectorType::get({2}, b.getF32Type());
    Value pair = arith::ConstantOp::create(b, b.getZeroAttr(pairF32));
    pair = vector::InsertOp::create(b, x, pair, 0);
    pair = vector::InsertOp::create(b, y, pair, 1);
    return arith::TruncFOp::create(b, VectorType::get({2}, spec.elementType),
                                   pair);
  }
  /// Accumulator tiles lo (columns 0-7) and hi (8-15), rounded, as the A
  /// operand of a K = 16 step.
  AFrag packA(const Frag &lo, const Frag &hi) {
    return {packPair(lo[0], lo[1]), packPair(lo[2], lo[3]),
            packPair(hi[0], hi[1]), packPair(hi[2], hi[3])};
  }
  Frag mma(const AFrag &a, const BFrag &bFrag, const Frag &c);
  Frag zeroFrag() {
    Value zero = f32(0.0f);
    return {zero, zero, zero, zero};
  }
  /// acc[n / 8] += A(rows, K) . B(K, n) over all K = 16 steps, where
  /// `aOf(k)` and `bOf(k, n0)` give the operands of step k and columns
  /// [n0, n0 + 16).
  void gemm(SmallVector<Frag> &acc, int64_t kSteps,
            function_ref<AFrag(int64_t)> aOf,
            function_ref<std::pair<BFrag, BFrag>(int64_t, int64_t)> bOf) {
    for (int64_t k = 0; k < kSteps; ++k) {
      AFrag a = aOf(k);
      for (int64_t n = 0; n < static_cast<int64_t>(acc.size()) / 2; ++n) {
        auto [lo, hi] = bOf(k, 16 * n);
        acc[2 * n] = mma(a, lo, acc[2 * n]);
        acc[2 * n + 1] = mma(a, hi, acc[2 * n + 1]);
      }
    }
  }
  /// Row and column of accumulator element `i` of this thread.
  Value accRow(int64_t i) { return add(laneRow, index(8 * (i / 2))); }
  Value accCol(int64_t i) { return add(laneCol, index(i % 2)); }

  /// The score in the exp2 domain, -inf unless query row `pos` (< S) sees
  /// `key` (< T).
  Value maskedScore(Value scaled, Value pos, Value key) {
    Value visible = andI(andI(slt(pos, queryLen), slt(key, keyLen)),
                         isKeyVisible(*this, mask, add(pos, diagonal), key));
    return select(visible, scaled,
                  f32(-std::numeric_limits<float>::infinity()));
  }
  /// P and dS (rules: probabilityFromLogSumExp, scoreGradient) in place of
  /// the scores and dP of the tiles; `at(t, i)` gives the (query position,
  /// key, lse2, Delta) of element i of tile t. Element masks only where
  /// `needsMask` (blockNeedsMask): elsewhere every key is visible to every
  /// row in range, and rows or keys past the end are zero-filled Q/dO or
  /// K/V rows, whose P and dS multiply zeros or are never stored.
  struct ElementInfo {
    Value pos, key, lse2, delta;
  };
  void softmaxGradient(SmallVector<Frag> &scores, SmallVector<Frag> &dp,
                       Value needsMask,
                       function_ref<ElementInfo(int64_t, int64_t)> at) {
    Value scaleLog2 = f32(spec.scale * kLog2E);
    int64_t tiles = scores.size();
    SmallVector<Value> scaled;
    for (const Frag &f : scores)
      for (Value x : f)
        scaled.push_back(mulF(x, scaleLog2));
    SmallVector<Type> types(scaled.size(), b.getF32Type());
    SmallVector<Value> masked = ifThenElse(
        needsMask, types,
        [&]() -> SmallVector<Value> {
          SmallVector<Value> out;
          for (int64_t t = 0; t < tiles; ++t)
            for (int64_t i = 0; i < 4; ++i) {
              ElementInfo e = at(t, i);
              out.push_back(maskedScore(scaled[4 * t + i], e.pos, e.key));
            }
          return out;
        },
        [&]() -> SmallVector<Value> { return scaled; });
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t i = 0; i < 4; ++i) {
        ElementInfo e = at(t, i);
        Value p = Softmax::probabilityFromLogSumExp(*this, masked[4 * t + i],
                                                    e.lse2, exp);
        dp[t][i] = Softmax::scoreGradient(*this, p, dp[t][i], e.delta);
        scores[t][i] = p;
      }
  }
  /// Stores rows `pos[h]` (h = 0, 1: rows g and g + 8) of the accumulator
  /// tiles, times `scale`, into (batch, head) of `buffer`.
  void storeRows(ArrayRef<Frag> acc, float scale, int buffer, Value batch,
                 Value head, std::array<Value, 2> pos, Value limit) {
    for (int64_t h = 0; h < 2; ++h)
      ifThen(slt(pos[h], limit), [&] {
        Value row = rowOffset(*this, buffer, batch, head, pos[h]);
        for (int64_t t = 0; t < static_cast<int64_t>(acc.size()); ++t) {
          Value x = mulF(acc[t][2 * h], f32(scale));
          Value y = mulF(acc[t][2 * h + 1], f32(scale));
          vector::StoreOp::create(
              b, packPair(x, y), memrefs[buffer],
              ValueRange{add(row, add(index(8 * t), laneCol))});
        }
      });
  }
  static SmallVector<Value> flatten(ArrayRef<SmallVector<Frag>> groups) {
    SmallVector<Value> flat;
    for (const SmallVector<Frag> &group : groups)
      for (const Frag &f : group)
        flat.append(f.begin(), f.end());
    return flat;
  }
  static SmallVector<Frag> unflatten(ValueRange values, int64_t first,
                                     int64_t tiles) {
    SmallVector<Frag> out(tiles);
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t i = 0; i < 4; ++i)
        out[t][i] = values[4 * (first + t) + i];
    return out;
  }

  ImplicitLocOpBuilder &b;
  const TensorCoreBackwardSpec &spec;
  SharedLayout layout;
  MaskBounds mask;
  Value tid, warp, laneRow, laneCol, smem;
};

} // namespace

Frag TensorCoreBackwardBuilder::mma(const AFrag &a, const BFrag &bFrag,
                                    const Frag &c) {
  return emitMmaSyncM16N8K16(b, spec.elementType, a, bFrag, c);
}

void TensorCoreBackwardBuilder::buildKeyValueKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t keyTiles = headDim / 8, valueTiles = valueDim / 8;
  Value blockX = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value keyBlocks = ceilDiv(keyLen, kRows);
  Value batch = divU(blockX, keyBlocks);
  Value keyBlock = remU(blockX, keyBlocks);
  Value keyStart = mul(keyBlock, kRows);
  Value kvHead = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value warpKey0 = mul(warp, 16);

  Value keys = tileView(layout.ownD(), kRows, headDim);
  Value values = tileView(layout.ownDv(), kRows, valueDim);
  Value queries = tileView(layout.streamD(), kStreamRows, headDim);
  Value dOuts = tileView(layout.streamDv(), kStreamRows, valueDim);
  Value lse2s = stateView(layout.lse()), deltas = stateView(layout.delta());
  stageRows(kTrainingKey, keys, kRows, headDim, batch, kvHead, keyStart,
            keyLen);
  stageRows(kTrainingValue, values, kRows, valueDim, batch, kvHead, keyStart,
            keyLen);
  commitAndWait();

  // dK tiles, then dV tiles, carried through both loops.
  SmallVector<Value> init(4 * (keyTiles + valueTiles), f32(0.0f));
  SmallVector<Type> types(init.size(), b.getF32Type());
  int64_t group = spec.heads.outputsPerKVHead();
  Value firstHead = spec.heads.firstOutputHeadOfKV(*this, kvHead);
  SmallVector<Value> acc = forLoop(
      index(0), index(group), 1, init,
      [&](Value g, ValueRange headAcc) -> SmallVector<Value> {
        Value outHead = add(firstHead, g);
        Value queryHead = spec.heads.queryHeadOf(*this, outHead);
        return forLoop(
            index(0), ceilDiv(queryLen, kStreamRows), 1, headAcc,
            [&](Value queryTile, ValueRange tileAcc) -> SmallVector<Value> {
              Value rowBegin = mul(queryTile, kStreamRows);
              Value rowEnd = minS(add(rowBegin, index(kStreamRows)), queryLen);
              // The tile's rows visit this block's keys: the forward's block
              // range in blocks of this kernel's keys. Uniform over the
              // block, so every thread reaches the barriers inside.
              Value first, end;
              std::tie(first, end) = sqa::keyBlockRange(
                  *this, mask, add(rowBegin, diagonal),
                  add(sub(rowEnd, index(1)), diagonal), keyLen, kRows);
              return ifThenElse(
                  andI(sle(first, keyBlock), slt(keyBlock, end)), types,
                  [&]() -> SmallVector<Value> {
                    // The previous tile's fragments have all been read.
                    gpu::BarrierOp::create(b);
                    stageRows(kTrainingQuery, queries, kStreamRows, headDim,
                              batch, queryHead, rowBegin, queryLen);
                    stageRows(kTrainingDOut, dOuts, kStreamRows, valueDim,
                              batch, outHead, rowBegin, queryLen);
                    stageRowState(lse2s, deltas, batch, outHead, rowBegin);
                    commitAndWait();
                    gpu::BarrierOp::create(b);

                    // S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys x
                    // the tile's 32 rows.
                    SmallVector<Frag> scores(kStreamRows / 8, zeroFrag());
                    SmallVector<Frag> dp(kStreamRows / 8, zeroFrag());
                    gemm(
                        scores, headDim / 16,
                        [&](int64_t k) {
                          return loadA(keys, warpKey0, 16 * k);
                        },
                        [&](int64_t k, int64_t n) {
                          return loadB(queries, n, 16 * k);
                        });
                    gemm(
                        dp, valueDim / 16,
                        [&](int64_t k) {
                          return loadA(values, warpKey0, 16 * k);
                        },
                        [&](int64_t k, int64_t n) {
                          return loadB(dOuts, n, 16 * k);
                        });
                    Value needsMask = sqa::blockNeedsMask(
                        *this, mask, keyStart, kRows, keyLen,
                        add(rowBegin, diagonal),
                        add(sub(rowEnd, index(1)), diagonal));
                    softmaxGradient(
                        scores, dp, needsMask, [&](int64_t t, int64_t i) {
                          Value r = add(index(8 * t), accCol(i));
                          return ElementInfo{
                              add(rowBegin, r),
                              add(add(keyStart, warpKey0), accRow(i)),
                              memref::LoadOp::create(b, lse2s, r),
                              memref::LoadOp::create(b, deltas, r)};
                        });

                    // dV += P^T dO and dK += dS^T Q, K = the tile's rows.
                    SmallVector<Frag> dk = unflatten(tileAcc, 0, keyTiles);
                    SmallVector<Frag> dv =
                        unflatten(tileAcc, keyTiles, valueTiles);
                    gemm(
                        dv, kStreamRows / 16,
                        [&](int64_t k) {
                          return packA(scores[2 * k], scores[2 * k + 1]);
                        },
                        [&](int64_t k, int64_t n) {
                          return loadBTransposed(dOuts, 16 * k, n);
                        });
                    gemm(
                        dk, kStreamRows / 16,
                        [&](int64_t k) {
                          return packA(dp[2 * k], dp[2 * k + 1]);
                        },
                        [&](int64_t k, int64_t n) {
                          return loadBTransposed(queries, 16 * k, n);
                        });
                    return flatten({dk, dv});
                  },
                  [&]() -> SmallVector<Value> { return tileAcc; });
            });
      });

  Value key0 = add(add(keyStart, warpKey0), laneRow);
  std::array<Value, 2> keyRows = {key0, add(key0, index(8))};
  storeRows(unflatten(acc, 0, keyTiles), spec.scale, kTrainingDKey, batch,
            kvHead, keyRows, keyLen);
  storeRows(unflatten(acc, keyTiles, valueTiles), 1.0f, kTrainingDValue, batch,
            kvHead, keyRows, keyLen);
  gpu::ReturnOp::create(b);
}

void TensorCoreBackwardBuilder::buildQueryKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t queryTiles = headDim / 8;
  Value blockX = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value queryBlocks = ceilDiv(queryLen, kRows);
  Value batch = divU(blockX, queryBlocks);
  Value rowBegin = mul(remU(blockX, queryBlocks), kRows);
  Value rowEnd = minS(add(rowBegin, index(kRows)), queryLen);
  Value queryHead = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value warpRow0 = mul(warp, 16);

  Value queries = tileView(layout.ownD(), kRows, headDim);
  Value dOuts = tileView(layout.ownDv(), kRows, valueDim);
  Value keys = tileView(layout.streamD(), kStreamRows, headDim);
  Value values = tileView(layout.streamDv(), kStreamRows, valueDim);
  Value lse2s = stateView(layout.lse()), deltas = stateView(layout.delta());
  stageRows(kTrainingQuery, queries, kRows, headDim, batch, queryHead, rowBegin,
            queryLen);
  commitAndWait();

  // This thread's two rows (g, g + 8) of its warp's 16.
  std::array<Value, 2> localRow = {add(warpRow0, laneRow),
                                   add(warpRow0, add(laneRow, index(8)))};
  std::array<Value, 2> pos = {add(rowBegin, localRow[0]),
                              add(rowBegin, localRow[1])};

  // Named values, not a structured binding: the loop lambdas capture them.
  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) = sqa::keyBlockRange(
      *this, mask, add(rowBegin, diagonal),
      add(sub(rowEnd, index(1)), diagonal), keyLen, kStreamRows);
  SmallVector<Value> init(4 * queryTiles, f32(0.0f));
  int64_t perQuery = spec.heads.outputsPerQueryHead();
  Value firstHead = spec.heads.firstOutputHeadOfQuery(*this, queryHead);
  SmallVector<Value> acc = forLoop(
      index(0), index(perQuery), 1, init,
      [&](Value g, ValueRange headAcc) -> SmallVector<Value> {
        Value outHead = add(firstHead, g);
        Value kvHead = spec.heads.kvHeadOf(*this, outHead);
        // The previous head's dO fragments have all been read.
        gpu::BarrierOp::create(b);
        stageRows(kTrainingDOut, dOuts, kRows, valueDim, batch, outHead,
                  rowBegin, queryLen);
        stageRowState(lse2s, deltas, batch, outHead, rowBegin);
        commitAndWait();
        gpu::BarrierOp::create(b);
        std::array<Value, 2> rowLse2, rowDelta;
        for (int64_t h = 0; h < 2; ++h) {
          rowLse2[h] = memref::LoadOp::create(b, lse2s, localRow[h]);
          rowDelta[h] = memref::LoadOp::create(b, deltas, localRow[h]);
        }
        return forLoop(
            firstBlock, endBlock, 1, headAcc,
            [&](Value keyBlock, ValueRange blockAcc) -> SmallVector<Value> {
              Value keyStart = mul(keyBlock, kStreamRows);
              gpu::BarrierOp::create(b);
              stageRows(kTrainingKey, keys, kStreamRows, headDim, batch, kvHead,
                        keyStart, keyLen);
              stageRows(kTrainingValue, values, kStreamRows, valueDim, batch,
                        kvHead, keyStart, keyLen);
              commitAndWait();
              gpu::BarrierOp::create(b);

              // S = Q K^T and dP = dO V^T: this warp's 16 rows x 32 keys.
              SmallVector<Frag> scores(kStreamRows / 8, zeroFrag());
              SmallVector<Frag> dp(kStreamRows / 8, zeroFrag());
              gemm(
                  scores, headDim / 16,
                  [&](int64_t k) { return loadA(queries, warpRow0, 16 * k); },
                  [&](int64_t k, int64_t n) { return loadB(keys, n, 16 * k); });
              gemm(
                  dp, valueDim / 16,
                  [&](int64_t k) { return loadA(dOuts, warpRow0, 16 * k); },
                  [&](int64_t k, int64_t n) {
                    return loadB(values, n, 16 * k);
                  });
              Value needsMask =
                  sqa::blockNeedsMask(*this, mask, keyStart, kStreamRows,
                                      keyLen, add(rowBegin, diagonal),
                                      add(sub(rowEnd, index(1)), diagonal));
              softmaxGradient(scores, dp, needsMask, [&](int64_t t, int64_t i) {
                return ElementInfo{pos[i / 2],
                                   add(keyStart, add(index(8 * t), accCol(i))),
                                   rowLse2[i / 2], rowDelta[i / 2]};
              });

              // dQ += dS K, K = the block's keys.
              SmallVector<Frag> dq = unflatten(blockAcc, 0, queryTiles);
              gemm(
                  dq, kStreamRows / 16,
                  [&](int64_t k) { return packA(dp[2 * k], dp[2 * k + 1]); },
                  [&](int64_t k, int64_t n) {
                    return loadBTransposed(keys, 16 * k, n);
                  });
              return flatten({dq});
            });
      });

  storeRows(unflatten(acc, 0, queryTiles), spec.scale, kTrainingDQuery, batch,
            queryHead, pos, queryLen);
  gpu::ReturnOp::create(b);
}

bool mlir::sqa::supportsTensorCoreBackward(Type elementType, int64_t headDim,
                                           int64_t valueDim) {
  return (elementType.isF16() || elementType.isBF16()) && headDim % 16 == 0 &&
         valueDim % 16 == 0 && headDim <= 128 && valueDim <= 128;
}

int64_t
mlir::sqa::tensorCoreBackwardSharedBytes(const TensorCoreBackwardSpec &spec,
                                         bool keyValue) {
  return layoutOf(spec, keyValue).bytes();
}

void mlir::sqa::buildTensorCoreKeyValueKernel(
    ImplicitLocOpBuilder &b, const TensorCoreBackwardSpec &spec,
    gpu::GPUFuncOp func) {
  TensorCoreBackwardBuilder(b, spec, func, /*keyValue=*/true)
      .buildKeyValueKernel();
}

void mlir::sqa::buildTensorCoreQueryKernel(ImplicitLocOpBuilder &b,
                                           const TensorCoreBackwardSpec &spec,
                                           gpu::GPUFuncOp func) {
  TensorCoreBackwardBuilder(b, spec, func, /*keyValue=*/false)
      .buildQueryKernel();
}
