//===- LowerAttentionToGPU.cpp - FlashAttention-2 CUDA kernels ------------===//
//
// Lowers buffer-form sqa.attention to a gpu.launch_func of a generated
// kernel. f16/bf16 kernels are FlashAttention-2 on tensor cores: per block,
// 4 warps of 16 query rows, K/V tiles double-buffered in shared memory by
// cp.async, m16n8k16 MMAs on ldmatrix fragments, online softmax in
// registers. f32 kernels take a simple SIMT path (a thread per query row).
//
// Register fragments follow the PTX ISA's m16n8k16 layouts: with
// g = lane / 4 and t = lane % 4, an accumulator tile holds rows g and g + 8,
// columns 2t and 2t + 1, as c[0..3] = (g,2t) (g,2t+1) (g+8,2t) (g+8,2t+1).
//
//===----------------------------------------------------------------------===//

#include "GPUHostSupport.h"
#include "MmaSync.h"
#include "sqa/Transforms/GPUKernelABI.h"
#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/NVGPU/Utils/MMAUtils.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"

#include <array>
#include <cmath>
#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERATTENTIONTOGPU
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

constexpr int64_t kThreads = 128;
constexpr int64_t kWarps = kThreads / 32;
/// Shared-memory rows are padded by 16 bytes so that the 8 rows an ldmatrix
/// reads fall into different banks.
constexpr int64_t kRowPad = 8;

/// What one kernel is specialized on.
struct KernelSpec {
  Type elementType;
  int64_t headDim, valueDim;
  HeadMapping heads;
  MaskAttr mask;
  float scale;
  int64_t kvBlock, headsPerBlock;
  /// m16 row tiles per warp (tensor cores): 1 or 2.
  int64_t rowTilesPerWarp = 1;
  /// Also stores each row's logsumexp; the kernel then takes
  /// GPUKernelABI.def's training parameter list.
  bool withLse = false;

  bool tensorCores() const { return !elementType.isF32(); }
  /// Stacked query rows of a block (tensor cores).
  int64_t blockRows() const { return kWarps * 16 * rowTilesPerWarp; }
  int64_t rowsPerHead() const {
    return tensorCores() ? blockRows() / headsPerBlock : kThreads;
  }
  int64_t elementBytes() const {
    return elementType.getIntOrFloatBitWidth() / 8;
  }
  int64_t sharedMemoryBytes() const {
    if (!tensorCores())
      return kvBlock * (headDim + valueDim) * 4;
    return (blockRows() * (headDim + kRowPad) +
            2 * kvBlock * (headDim + kRowPad) +
            2 * kvBlock * (valueDim + kRowPad)) *
           elementBytes();
  }
};

/// An m16n8 f32 accumulator tile of one thread: c[0..3] as in the header.
using Frag = std::array<Value, 4>;

/// The shared lowering vocabulary plus what only GPU kernels need.
class KernelBuilderBase : public LoweringBuilder {
protected:
  KernelBuilderBase(ImplicitLocOpBuilder &b)
      : LoweringBuilder(b, b.getLoc()), b(b), f32Type(b.getF32Type()) {}

  /// 2^x with the approximate instruction, as FlashAttention computes
  /// softmax. Spelled as PTX: math.exp2 would lower to libdevice's
  /// __nv_exp2f, which only links where a CUDA toolkit is found at compile
  /// time.
  Value exp2(Value x) {
    return NVVM::InlinePtxOp::create(b, TypeRange{f32Type}, ValueRange{x},
                                     ValueRange{}, "ex2.approx.ftz.f32 $0, $1;",
                                     Value())
        .getResult(0);
  }

  /// arith.maxnumf would lower to libdevice's __nv_fmaxf (see exp2);
  /// maximumf maps to PTX max.NaN.f32.
  Value maxF(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }

public:
  /// Natural log for OnlineSoftmax<KernelBuilderBase>::logSumExp: lg2.approx
  /// times ln 2 (math.log would need libdevice, see exp2).
  Value log(Value x) {
    return mulF(ptxLog2(b, b.getLoc(), x), f32(0.6931471805599453f));
  }

protected:
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  /// ex2.approx gives +0 at -inf, so the softmax rules need no guard.
  Softmax::Exponential exp{[this](Value x) { return exp2(x); },
                           /*zeroAtNegInf=*/true};

  ImplicitLocOpBuilder &b;
  Type f32Type;
};

/// Builds the body of one kernel. Both paths share the argument decoding and
/// the key-block range.
class KernelBuilder : public KernelBuilderBase {
public:
  KernelBuilder(ImplicitLocOpBuilder &b, const KernelSpec &spec,
                gpu::GPUFuncOp func)
      : KernelBuilderBase(b), spec(spec), func(func) {}

  void build() {
    decodeArguments();
    if (spec.tensorCores())
      buildTensorCoreKernel();
    else
      buildSIMTKernel();
    gpu::ReturnOp::create(b);
  }

private:
  /// Where a thread block works: grid x is query blocks x batch, y head
  /// blocks.
  struct BlockPosition {
    Value batch, rowBegin, rowEnd, headBlock;
  };
  BlockPosition decodeBlock(int64_t rowsPerBlock) {
    Value blockX = gpu::BlockIdOp::create(b, gpu::Dimension::x);
    Value queryBlocks = ceilDiv(queryLen, rowsPerBlock);
    Value rowBegin = mul(remU(blockX, queryBlocks), rowsPerBlock);
    return {divU(blockX, queryBlocks), rowBegin,
            minS(add(rowBegin, index(rowsPerBlock)), queryLen),
            gpu::BlockIdOp::create(b, gpu::Dimension::y)};
  }
  void decodeArguments();
  /// Key blocks [first, end) that some row in [rowBegin, rowEnd) can see.
  std::pair<Value, Value> keyBlockRange(Value rowBegin, Value rowEnd);
  /// Whether a block of keys starting at `keyStart` needs element masks for
  /// rows in [rowBegin, rowEnd).
  Value blockNeedsMask(Value keyStart, Value rowBegin, Value rowEnd);
  /// Whether key `key` is visible from query position `pos`.
  Value visible(Value pos, Value key);
  Value globalIndex(int operand, Value batch, Value head, Value pos, Value col);

  void buildTensorCoreKernel();
  void buildSIMTKernel();
  /// Stores the logsumexp of row `pos` of output head `outHead` from the
  /// base-2 running maximum and the sum of the online softmax.
  void storeLse(Value batch, Value outHead, Value pos, Value rowMaxLog2,
                Value sum) {
    Value rowMax = mulF(rowMaxLog2, f32(0.6931471805599453f));
    Value lse = OnlineSoftmax<KernelBuilderBase>::logSumExp(*this, rowMax, sum);
    Value dst = add(add(mul(batch, lseStrides[0]), mul(outHead, lseStrides[1])),
                    mul(pos, lseStrides[2]));
    memref::StoreOp::create(b, lse, lseMemref, ValueRange{dst});
  }

  Attribute workgroupSpace() {
    return gpu::AddressSpaceAttr::get(b.getContext(),
                                      gpu::AddressSpace::Workgroup);
  }
  Value dynamicSharedMemory() {
    return gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface(), workgroupSpace()));
  }
  /// Max or sum over the 4 threads of a quad (one accumulator row).
  Value quadReduce(Value v, bool isMax) {
    Value width = arith::ConstantIntOp::create(b, 32, 32);
    for (int32_t offset : {1, 2}) {
      Value other = gpu::ShuffleOp::create(
                        b, v, arith::ConstantIntOp::create(b, offset, 32),
                        width, gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      v = isMax ? maxF(v, other) : addF(v, other);
    }
    return v;
  }

  // Tensor-core pieces.
  Value sharedView(Value smem, Value byteOffset, int64_t rows, int64_t cols);
  void copyTile(int operand, Value dst, int64_t rows, int64_t cols,
                Value rowToBatch, function_ref<Value(Value)> rowToHead,
                function_ref<Value(Value)> rowToPos, Value posLimit);
  Value ldmatrix(Value tile, Value row, Value col, bool transpose);
  Value fragRow(Value fragments, int64_t i) {
    return vector::ExtractOp::create(b, fragments, i);
  }
  Frag mma(ArrayRef<Value> a, ArrayRef<Value> bFrag, const Frag &c);
  /// (row, column) of element `i` of `lane`'s m16n8 f32 accumulator
  /// fragment, from upstream's statement of the PTX layout.
  std::pair<Value, Value> accumulatorCoord(Value lane, int64_t i);
  Value packPair(Value x, Value y);

  const KernelSpec &spec;
  gpu::GPUFuncOp func;
  Value memrefs[gpu_abi::kNumBuffers];
  Value queryLen, keyLen, diagonal;
  Value strides[gpu_abi::kNumBuffers][3];
  /// With spec.withLse: the lse buffer and its (batch, head, position)
  /// strides.
  Value lseMemref, lseStrides[3];
  MaskBounds mask;
};

} // namespace

// The training list starts with the forward's buffers and scalars, in the
// same order.
static_assert(int(gpu_abi::kTrainingOut) == int(gpu_abi::kOut) &&
              int(gpu_abi::kTrainingDiagonal) == int(gpu_abi::kDiagonal) &&
              int(gpu_abi::kTrainingOutStridePos) ==
                  int(gpu_abi::kOutStridePos));

void KernelBuilder::decodeArguments() {
  using namespace gpu_abi;
  for (int i = 0; i < kNumBuffers; ++i)
    memrefs[i] = func.getArgument(i);
  int numBuffers = spec.withLse ? kNumTrainingBuffers : kNumBuffers;
  auto scalar = [&](int i) { return func.getArgument(numBuffers + i); };
  if (spec.withLse) {
    lseMemref = func.getArgument(kTrainingLse);
    for (int j = 0; j < 3; ++j)
      lseStrides[j] = scalar(trainingFirstStride(kTrainingLse) + j);
  }
  queryLen = scalar(kQueryLen);
  keyLen = scalar(kKeyLen);
  diagonal = scalar(kDiagonal);
  for (int i = 0; i < kNumBuffers; ++i)
    for (int j = 0; j < 3; ++j)
      strides[i][j] = scalar(firstStride(static_cast<Buffer>(i)) + j);
  mask = MaskBounds::get(spec.mask);
}

Value KernelBuilder::globalIndex(int operand, Value batch, Value head,
                                 Value pos, Value col) {
  Value *s = strides[operand];
  return add(add(add(mul(batch, s[0]), mul(head, s[1])), mul(pos, s[2])), col);
}

std::pair<Value, Value> KernelBuilder::keyBlockRange(Value rowBegin,
                                                     Value rowEnd) {
  return sqa::keyBlockRange(*this, mask, add(rowBegin, diagonal),
                            add(sub(rowEnd, index(1)), diagonal), keyLen,
                            spec.kvBlock);
}

Value KernelBuilder::blockNeedsMask(Value keyStart, Value rowBegin,
                                    Value rowEnd) {
  return sqa::blockNeedsMask(*this, mask, keyStart, spec.kvBlock, keyLen,
                             add(rowBegin, diagonal),
                             add(sub(rowEnd, index(1)), diagonal));
}

Value KernelBuilder::visible(Value pos, Value key) {
  return andI(slt(key, keyLen),
              isKeyVisible(*this, mask, add(pos, diagonal), key));
}

//===----------------------------------------------------------------------===//
// Tensor-core kernel (f16, bf16).
//===----------------------------------------------------------------------===//

Value KernelBuilder::sharedView(Value smem, Value byteOffset, int64_t rows,
                                int64_t cols) {
  auto type = MemRefType::get({rows, cols}, spec.elementType,
                              MemRefLayoutAttrInterface(), workgroupSpace());
  return memref::ViewOp::create(b, type, smem, byteOffset, ValueRange{});
}

/// Cooperative cp.async of `rows` x `cols` elements into `dst`, 16 bytes per
/// copy; rows at or past `posLimit` are zero-filled.
void KernelBuilder::copyTile(int operand, Value dst, int64_t rows, int64_t cols,
                             Value batch, function_ref<Value(Value)> rowToHead,
                             function_ref<Value(Value)> rowToPos,
                             Value posLimit) {
  int64_t perCopy = 16 / spec.elementBytes();
  int64_t chunksPerRow = cols / perCopy;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  forLoop(tid, index(rows * chunksPerRow), index(kThreads), [&](Value chunk) {
    Value row = divU(chunk, chunksPerRow);
    Value col = mul(remU(chunk, chunksPerRow), perCopy);
    Value pos = rowToPos(row);
    Value inside = cmp(arith::CmpIPredicate::slt, pos, posLimit);
    // Past the end nothing is read, but keep the address in bounds.
    Value clamped = maxS(index(0), minS(pos, sub(posLimit, index(1))));
    Value src = globalIndex(operand, batch, rowToHead(row), clamped, col);
    Value srcElements = select(inside, index(perCopy), index(0));
    nvgpu::DeviceAsyncCopyOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst,
        ValueRange{row, col}, memrefs[operand], ValueRange{src},
        b.getIndexAttr(perCopy), srcElements, b.getUnitAttr());
  });
}

Value KernelBuilder::ldmatrix(Value tile, Value row, Value col,
                              bool transpose) {
  auto type = VectorType::get({4, 2}, spec.elementType);
  return nvgpu::LdMatrixOp::create(b, type, tile, ValueRange{row, col},
                                   transpose, /*numTiles=*/4);
}

std::pair<Value, Value> KernelBuilder::accumulatorCoord(Value lane, int64_t i) {
  nvgpu::WarpMatrixInfo info{VectorType::get({16, 8}, f32Type),
                             nvgpu::MatMulOperandRole::C};
  FailureOr<AffineMap> map =
      nvgpu::getLaneIdAndValueIdToOperandCoord(b, b.getLoc(), info);
  assert(succeeded(map) && "m16n8 f32 accumulators have a layout");
  auto coord = [&](unsigned result) {
    OpFoldResult folded = affine::makeComposedFoldedAffineApply(
        b, b.getLoc(), map->getSubMap({result}),
        {OpFoldResult(lane), OpFoldResult(b.getIndexAttr(i))});
    return getValueOrCreateConstantIndexOp(b, b.getLoc(), folded);
  };
  return {coord(0), coord(1)};
}

/// Two f32 values as one packed pair of the element type.
Value KernelBuilder::packPair(Value x, Value y) {
  auto pairF32 = VectorType::get({2}, f32Type);
  Value pair = arith::ConstantOp::create(b, b.getZeroAttr(pairF32));
  pair = vector::InsertOp::create(b, x, pair, 0);
  pair = vector::InsertOp::create(b, y, pair, 1);
  return arith::TruncFOp::create(b, VectorType::get({2}, spec.elementType),
                                 pair);
}

Frag KernelBuilder::mma(ArrayRef<Value> a, ArrayRef<Value> bFrag,
                        const Frag &c) {
  return emitMmaSyncM16N8K16(b, spec.elementType, a, bFrag, c);
}

void KernelBuilder::buildTensorCoreKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t block = spec.kvBlock, rowsPerHead = spec.rowsPerHead();
  const int64_t rowTiles = spec.rowTilesPerWarp, blockRows = spec.blockRows();
  const int64_t keyStride = headDim + kRowPad, valueStride = valueDim + kRowPad;
  const int64_t bytes = spec.elementBytes();
  const int64_t scoreTiles = block / 8, outTiles = valueDim / 8;
  // Loop-carried values per row tile: output tiles, then max and sum of the
  // thread's two rows.
  const int64_t stateSize = outTiles * 4 + 4;

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value warp = divU(tid, 32), lane = remU(tid, 32);
  // This lane's (row, column) in an m16n8 accumulator tile, per element.
  SmallVector<std::pair<Value, Value>> accCoord;
  for (int64_t i = 0; i < 4; ++i)
    accCoord.push_back(accumulatorCoord(lane, i));
  BlockPosition position = decodeBlock(rowsPerHead);
  Value batch = position.batch, rowBegin = position.rowBegin,
        rowEnd = position.rowEnd;
  Value outHead0 = mul(position.headBlock, spec.headsPerBlock);
  Value kvHead = spec.heads.kvHeadOf(*this, outHead0);

  // Shared memory: Q [blockRows][D+8], K [2][block][D+8], V [2][block][Dv+8].
  Value smem = dynamicSharedMemory();
  int64_t keyBase = blockRows * keyStride * bytes;
  int64_t keyStage = block * keyStride * bytes;
  int64_t valueBase = keyBase + 2 * keyStage;
  int64_t valueStage = block * valueStride * bytes;
  Value queryTile = sharedView(smem, index(0), blockRows, keyStride);
  auto keyTile = [&](Value stage) {
    return sharedView(smem, add(index(keyBase), mul(stage, keyStage)), block,
                      keyStride);
  };
  auto valueTile = [&](Value stage) {
    return sharedView(smem, add(index(valueBase), mul(stage, valueStage)),
                      block, valueStride);
  };

  // Stacked row r of the block: output head outHead0 + r / rowsPerHead at
  // position rowBegin + r % rowsPerHead.
  auto queryHeadOfRow = [&](Value r) {
    return spec.heads.queryHeadOf(*this, add(outHead0, divU(r, rowsPerHead)));
  };
  auto posOfRow = [&](Value r) { return add(rowBegin, remU(r, rowsPerHead)); };
  auto loadKeysAndValues = [&](Value keyBlock, Value stage) {
    Value keyStart = mul(keyBlock, block);
    auto kvHeadOf = [&](Value) { return kvHead; };
    auto keyOf = [&](Value r) { return add(keyStart, r); };
    copyTile(1, keyTile(stage), block, headDim, batch, kvHeadOf, keyOf, keyLen);
    copyTile(2, valueTile(stage), block, valueDim, batch, kvHeadOf, keyOf,
             keyLen);
  };
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  auto commitAndWait = [&](int32_t pending) {
    Value group =
        nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
    nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(pending));
  };

  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) = keyBlockRange(rowBegin, rowEnd);
  copyTile(0, queryTile, blockRows, headDim, batch, queryHeadOfRow, posOfRow,
           queryLen);
  ifThen(cmp(arith::CmpIPredicate::slt, firstBlock, endBlock),
         [&] { loadKeysAndValues(firstBlock, index(0)); });
  commitAndWait(0);
  gpu::BarrierOp::create(b);

  // A row tile's Q fragments, one per 16 columns of D. With one row tile per
  // warp they stay in registers; with two, the registers go to the second
  // tile's accumulators and Q is re-read from shared memory per key block.
  Value warpRow0 = mul(warp, 16 * rowTiles);
  using QueryFrags = SmallVector<SmallVector<Value, 4>>;
  auto loadQueryFrags = [&](int64_t rowTile) {
    QueryFrags frags;
    for (int64_t kk = 0; kk < headDim / 16; ++kk) {
      Value tile = ldmatrix(
          queryTile, add(warpRow0, add(index(16 * rowTile), remU(lane, 16))),
          add(index(kk * 16), mul(divU(lane, 16), 8)),
          /*transpose=*/false);
      frags.push_back({fragRow(tile, 0), fragRow(tile, 1), fragRow(tile, 2),
                       fragRow(tile, 3)});
    }
    return frags;
  };
  QueryFrags registerQuery;
  if (rowTiles == 1)
    registerQuery = loadQueryFrags(0);

  // Query positions of this thread's two rows in each row tile.
  Value warpPos0 = add(rowBegin, remU(warpRow0, rowsPerHead));
  SmallVector<std::array<Value, 2>> rowPos;
  for (int64_t mt = 0; mt < rowTiles; ++mt) {
    Value tileRow0 = add(warpPos0, index(16 * mt));
    rowPos.push_back(
        {add(tileRow0, accCoord[0].first), add(tileRow0, accCoord[2].first)});
  }

  float negInf = -std::numeric_limits<float>::infinity();
  SmallVector<Value> init;
  for (int64_t mt = 0; mt < rowTiles; ++mt) {
    for (int64_t i = 0; i < outTiles * 4; ++i)
      init.push_back(f32(0.0f));
    init.append({f32(negInf), f32(negInf), f32(0.0f), f32(0.0f)});
  }
  const float scaleLog2 = spec.scale * kLog2EF32;

  SmallVector<Value> state = forLoop(
      firstBlock, endBlock, index(1), init,
      [&](Value keyBlock, ValueRange args) -> SmallVector<Value> {
        SmallVector<SmallVector<Frag>> acc(rowTiles,
                                           SmallVector<Frag>(outTiles));
        SmallVector<std::array<Value, 2>> rowMax(rowTiles), rowSum(rowTiles);
        for (int64_t mt = 0; mt < rowTiles; ++mt) {
          ValueRange tileArgs = args.slice(mt * stateSize, stateSize);
          for (int64_t t = 0; t < outTiles; ++t)
            for (int64_t i = 0; i < 4; ++i)
              acc[mt][t][i] = tileArgs[t * 4 + i];
          rowMax[mt] = {tileArgs[outTiles * 4], tileArgs[outTiles * 4 + 1]};
          rowSum[mt] = {tileArgs[outTiles * 4 + 2], tileArgs[outTiles * 4 + 3]};
        }

        Value stage = remU(sub(keyBlock, firstBlock), 2);
        Value next = add(keyBlock, index(1));
        ifThen(cmp(arith::CmpIPredicate::slt, next, endBlock),
               [&] { loadKeysAndValues(next, sub(index(1), stage)); });
        // All but the group just issued are complete: this block's tiles.
        commitAndWait(1);
        gpu::BarrierOp::create(b);
        Value keys = keyTile(stage), values = valueTile(stage);

        SmallVector<QueryFrags> queryFrags;
        for (int64_t mt = 0; mt < rowTiles; ++mt)
          queryFrags.push_back(rowTiles == 1 ? registerQuery
                                             : loadQueryFrags(mt));

        // S = Q.K^T for this warp's rows and the block's keys. One x4
        // ldmatrix yields the B fragments of two 8-key tiles, used by every
        // row tile.
        Value zero = f32(0.0f);
        SmallVector<SmallVector<Frag>> scores(
            rowTiles, SmallVector<Frag>(scoreTiles, {zero, zero, zero, zero}));
        for (int64_t p = 0; p < block / 16; ++p)
          for (int64_t kk = 0; kk < headDim / 16; ++kk) {
            Value frags = ldmatrix(
                keys,
                add(index(p * 16), add(mul(divU(lane, 16), 8), remU(lane, 8))),
                add(index(kk * 16), mul(remU(divU(lane, 8), 2), 8)),
                /*transpose=*/false);
            for (int64_t mt = 0; mt < rowTiles; ++mt) {
              scores[mt][2 * p] = mma(queryFrags[mt][kk],
                                      {fragRow(frags, 0), fragRow(frags, 1)},
                                      scores[mt][2 * p]);
              scores[mt][2 * p + 1] = mma(
                  queryFrags[mt][kk], {fragRow(frags, 2), fragRow(frags, 3)},
                  scores[mt][2 * p + 1]);
            }
          }
        Value scaleValue = f32(scaleLog2);
        for (auto &tileScores : scores)
          for (Frag &s : tileScores)
            for (Value &v : s)
              v = mulF(v, scaleValue);

        // Masks, only on blocks that cross a bound or run past T.
        Value keyStart = mul(keyBlock, block);
        SmallVector<Value> flat;
        for (auto &tileScores : scores)
          for (Frag &s : tileScores)
            flat.append(s.begin(), s.end());
        SmallVector<Type> flatTypes(flat.size(), f32Type);
        SmallVector<Value> masked = ifThenElse(
            blockNeedsMask(keyStart, rowBegin, rowEnd), flatTypes,
            [&]() -> SmallVector<Value> {
              SmallVector<Value> out;
              Value minusInf = f32(negInf);
              for (int64_t mt = 0; mt < rowTiles; ++mt)
                for (int64_t t = 0; t < scoreTiles; ++t)
                  for (int64_t i = 0; i < 4; ++i) {
                    Value key =
                        add(add(keyStart, index(t * 8)), accCoord[i].second);
                    out.push_back(select(visible(rowPos[mt][i / 2], key),
                                         flat[(mt * scoreTiles + t) * 4 + i],
                                         minusInf));
                  }
              return out;
            },
            [&]() -> SmallVector<Value> { return flat; });
        for (int64_t mt = 0; mt < rowTiles; ++mt)
          for (int64_t t = 0; t < scoreTiles; ++t)
            for (int64_t i = 0; i < 4; ++i)
              scores[mt][t][i] = masked[(mt * scoreTiles + t) * 4 + i];

        // Online softmax: each row lives in the 4 threads of a quad.
        for (int64_t mt = 0; mt < rowTiles; ++mt) {
          Value rescale[2];
          for (int64_t h = 0; h < 2; ++h) {
            Value blockMax = f32(negInf);
            for (Frag &s : scores[mt])
              blockMax = maxF(blockMax, maxF(s[2 * h], s[2 * h + 1]));
            blockMax = quadReduce(blockMax, /*isMax=*/true);
            Value newMax = maxF(rowMax[mt][h], blockMax);
            Value base = Softmax::shift(*this, newMax);
            rescale[h] = Softmax::rescale(*this, rowMax[mt][h], newMax, exp);
            Value partialSum = f32(0.0f);
            for (Frag &s : scores[mt])
              for (int64_t e = 0; e < 2; ++e) {
                s[2 * h + e] =
                    Softmax::probability(*this, s[2 * h + e], base, exp);
                partialSum = addF(partialSum, s[2 * h + e]);
              }
            // Sums stay per thread; the quad's partial sums are added once
            // at the end.
            rowSum[mt][h] =
                Softmax::nextSum(*this, rescale[h], rowSum[mt][h], partialSum);
            rowMax[mt][h] = newMax;
          }
          for (Frag &o : acc[mt])
            for (int64_t i = 0; i < 4; ++i)
              o[i] = mulF(o[i], rescale[i / 2]);
        }

        // O += P.V: two score tiles form the A fragment of 16 keys; one x4
        // transposed ldmatrix of V yields the B fragments of two 8-column
        // output tiles, used by every row tile.
        for (int64_t kk = 0; kk < block / 16; ++kk) {
          SmallVector<SmallVector<Value, 4>> probs;
          for (int64_t mt = 0; mt < rowTiles; ++mt) {
            const Frag &lo = scores[mt][2 * kk], &hi = scores[mt][2 * kk + 1];
            probs.push_back({packPair(lo[0], lo[1]), packPair(lo[2], lo[3]),
                             packPair(hi[0], hi[1]), packPair(hi[2], hi[3])});
          }
          for (int64_t q = 0; q < valueDim / 16; ++q) {
            Value frags = ldmatrix(
                values,
                add(index(kk * 16),
                    add(mul(remU(divU(lane, 8), 2), 8), remU(lane, 8))),
                add(index(q * 16), mul(divU(lane, 16), 8)), /*transpose=*/true);
            for (int64_t mt = 0; mt < rowTiles; ++mt) {
              acc[mt][2 * q] =
                  mma(probs[mt], {fragRow(frags, 0), fragRow(frags, 1)},
                      acc[mt][2 * q]);
              acc[mt][2 * q + 1] =
                  mma(probs[mt], {fragRow(frags, 2), fragRow(frags, 3)},
                      acc[mt][2 * q + 1]);
            }
          }
        }
        // The next iteration's prefetch overwrites the tiles just read.
        gpu::BarrierOp::create(b);

        SmallVector<Value> result;
        for (int64_t mt = 0; mt < rowTiles; ++mt) {
          for (Frag &o : acc[mt])
            result.append(o.begin(), o.end());
          result.append(
              {rowMax[mt][0], rowMax[mt][1], rowSum[mt][0], rowSum[mt][1]});
        }
        return result;
      });

  // Normalize and store: rows of this warp's head at or past S are padding.
  // A warp's rows all belong to one head (rowsPerHead is a multiple of
  // them).
  Value outHead = add(outHead0, divU(warpRow0, rowsPerHead));
  for (int64_t mt = 0; mt < rowTiles; ++mt) {
    ValueRange tileState = ValueRange(state).slice(mt * stateSize, stateSize);
    for (int64_t h = 0; h < 2; ++h) {
      Value sum = quadReduce(tileState[outTiles * 4 + 2 + h], /*isMax=*/false);
      Value inverse = Softmax::normalizer(*this, sum);
      // The quad's maximum is already common (reduced per block); one lane
      // of the quad stores the row's lse.
      if (spec.withLse)
        ifThen(andI(cmp(arith::CmpIPredicate::slt, rowPos[mt][h], queryLen),
                    cmp(arith::CmpIPredicate::eq, remU(lane, 4), index(0))),
               [&] {
                 storeLse(batch, outHead, rowPos[mt][h],
                          tileState[outTiles * 4 + h], sum);
               });
      ifThen(cmp(arith::CmpIPredicate::slt, rowPos[mt][h], queryLen), [&] {
        for (int64_t t = 0; t < outTiles; ++t) {
          Value x = mulF(tileState[t * 4 + 2 * h], inverse);
          Value y = mulF(tileState[t * 4 + 2 * h + 1], inverse);
          Value col = add(index(t * 8), accCoord[2 * h].second);
          Value dst = globalIndex(3, batch, outHead, rowPos[mt][h], col);
          vector::StoreOp::create(b, packPair(x, y), memrefs[3],
                                  ValueRange{dst});
        }
      });
    }
  }
}

//===----------------------------------------------------------------------===//
// SIMT kernel (f32).
//===----------------------------------------------------------------------===//

void KernelBuilder::buildSIMTKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t block = spec.kvBlock;
  float negInf = -std::numeric_limits<float>::infinity();

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  BlockPosition position = decodeBlock(kThreads);
  Value batch = position.batch, rowBegin = position.rowBegin,
        rowEnd = position.rowEnd;
  Value outHead = position.headBlock;
  Value pos = add(rowBegin, tid);
  Value active = cmp(arith::CmpIPredicate::slt, pos, queryLen);
  Value posClamped = minS(pos, sub(queryLen, index(1)));
  Value queryHead = spec.heads.queryHeadOf(*this, outHead);
  Value kvHead = spec.heads.kvHeadOf(*this, outHead);

  Value smem = dynamicSharedMemory();
  auto tileType = [&](int64_t cols) {
    return MemRefType::get({block, cols}, f32Type, MemRefLayoutAttrInterface(),
                           workgroupSpace());
  };
  Value keys = memref::ViewOp::create(b, tileType(headDim), smem, index(0),
                                      ValueRange{});
  Value values = memref::ViewOp::create(
      b, tileType(valueDim), smem, index(block * headDim * 4), ValueRange{});

  // The row's query (scaled into the exp2 domain) and accumulator.
  Value query =
      memref::AllocaOp::create(b, MemRefType::get({headDim}, f32Type));
  Value acc = memref::AllocaOp::create(b, MemRefType::get({valueDim}, f32Type));
  Value scale = f32(spec.scale * kLog2EF32);
  forLoop(index(0), index(headDim), index(1), [&](Value d) {
    Value x = memref::LoadOp::create(
        b, memrefs[0],
        ValueRange{globalIndex(0, batch, queryHead, posClamped, d)});
    memref::StoreOp::create(b, mulF(x, scale), query, ValueRange{d});
  });
  forLoop(index(0), index(valueDim), index(1), [&](Value d) {
    memref::StoreOp::create(b, f32(0.0f), acc, ValueRange{d});
  });

  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) = keyBlockRange(rowBegin, rowEnd);
  SmallVector<Value> state = forLoop(
      firstBlock, endBlock, index(1), ValueRange{f32(negInf), f32(0.0f)},
      [&](Value keyBlock, ValueRange args) -> SmallVector<Value> {
        Value keyStart = mul(keyBlock, block);
        gpu::BarrierOp::create(b);
        auto stage = [&](Value tile, int64_t cols, int operand) {
          forLoop(tid, index(block * cols), index(kThreads), [&](Value i) {
            Value r = divU(i, cols), c = remU(i, cols);
            Value key = minS(add(keyStart, r), sub(keyLen, index(1)));
            Value x = memref::LoadOp::create(
                b, memrefs[operand],
                ValueRange{globalIndex(operand, batch, kvHead, key, c)});
            memref::StoreOp::create(b, x, tile, ValueRange{r, c});
          });
        };
        stage(keys, headDim, 1);
        stage(values, valueDim, 2);
        gpu::BarrierOp::create(b);
        Value validKeys = minS(index(block), sub(keyLen, keyStart));
        return forLoop(
            index(0), validKeys, index(1), args,
            [&](Value n, ValueRange carried) -> SmallVector<Value> {
              Value dot = forLoop(
                  index(0), index(headDim), index(1), ValueRange{f32(0.0f)},
                  [&](Value d, ValueRange s) {
                    Value q = memref::LoadOp::create(b, query, ValueRange{d});
                    Value k = memref::LoadOp::create(b, keys, ValueRange{n, d});
                    return SmallVector<Value>{fma(q, k, s[0])};
                  })[0];
              Value score =
                  select(visible(pos, add(keyStart, n)), dot, f32(negInf));
              Value newMax = maxF(carried[0], score);
              Value rescale = Softmax::rescale(*this, carried[0], newMax, exp);
              Value p = Softmax::probability(
                  *this, score, Softmax::shift(*this, newMax), exp);
              forLoop(index(0), index(valueDim), index(1), [&](Value d) {
                Value o = memref::LoadOp::create(b, acc, ValueRange{d});
                Value v = memref::LoadOp::create(b, values, ValueRange{n, d});
                memref::StoreOp::create(b, fma(p, v, mulF(o, rescale)), acc,
                                        ValueRange{d});
              });
              return {newMax, Softmax::nextSum(*this, rescale, carried[1], p)};
            });
      });

  Value sum = state[1];
  Value inverse = Softmax::normalizer(*this, sum);
  ifThen(active, [&] {
    if (spec.withLse)
      storeLse(batch, outHead, pos, state[0], sum);
    forLoop(index(0), index(valueDim), index(1), [&](Value d) {
      Value o = memref::LoadOp::create(b, acc, ValueRange{d});
      memref::StoreOp::create(
          b, mulF(o, inverse), memrefs[3],
          ValueRange{globalIndex(3, batch, outHead, pos, d)});
    });
  });
}

//===----------------------------------------------------------------------===//
// Host side and the pass.
//===----------------------------------------------------------------------===//

namespace {

struct LowerAttentionToGPUPass
    : public sqa::impl::LowerAttentionToGPUBase<LowerAttentionToGPUPass> {
  using Base::Base;

  LogicalResult lower(AttentionOp op, gpu::GPUModuleOp kernels,
                      SymbolTable &kernelTable);
  void runOnOperation() override;
};

} // namespace

LogicalResult LowerAttentionToGPUPass::lower(AttentionOp op,
                                             gpu::GPUModuleOp kernels,
                                             SymbolTable &kernelTable) {
  if (!op.hasPureBufferSemantics())
    return op.emitOpError(
        "sqa-lower-attention-to-gpu needs buffer semantics; bufferize first");
  // Bounded before any size arithmetic: kv-block multiplies head dims.
  if (std::string bad = checkOptionRange("kv-block", kvBlock, 1, kMaxBlock);
      !bad.empty())
    return op.emitOpError(bad);
  KernelSpec spec;
  spec.elementType = op.getQueryType().getElementType();
  spec.headDim = op.getHeadDim();
  spec.valueDim = op.getValueHeadDim();
  spec.heads = op.getHeadMapping();
  spec.mask = op.getEffectiveMask();
  spec.scale = op.getScaleOrDefault();
  spec.kvBlock = kvBlock;
  spec.rowTilesPerWarp = rowsPerWarp / 16;
  spec.withLse = static_cast<bool>(op.getLse());

  SmallVector<Value> stridedOperands = {op.getQuery(), op.getKey(),
                                        op.getValue(), op.getInit()};
  if (spec.withLse)
    stridedOperands.push_back(op.getLse());
  for (Value operand : stridedOperands)
    if (!hasUnitInnerStride(cast<MemRefType>(operand.getType())))
      return op.emitOpError("the GPU kernel needs a static innermost stride "
                            "of 1 on every operand, got ")
             << operand.getType();
  if (spec.tensorCores()) {
    if (spec.headDim % 16 != 0 || spec.valueDim % 16 != 0)
      return op.emitOpError("tensor-core kernels need head dims that are "
                            "multiples of 16, got D = ")
             << spec.headDim << ", Dv = " << spec.valueDim;
    if (kvBlock <= 0 || kvBlock % 16 != 0)
      return op.emitOpError("kv-block must be a positive multiple of 16, got ")
             << static_cast<int64_t>(kvBlock);
    if (rowsPerWarp != 16 && rowsPerWarp != 32)
      return op.emitOpError("rows-per-warp must be 16 or 32, got ")
             << static_cast<int64_t>(rowsPerWarp);
    // Stacked heads must share a key/value head and fill whole warps.
    int64_t group = spec.heads.outputsPerKVHead();
    int64_t heads = headsPerBlock;
    if (heads == 0) {
      heads = 1;
      for (int64_t candidate : {4, 2})
        if (group % candidate == 0) {
          heads = candidate;
          break;
        }
    }
    if ((heads != 1 && heads != 2 && heads != 4) || group % heads != 0)
      return op.emitOpError("heads-per-block must be 1, 2 or 4 and divide the "
                            "output heads per key/value head (")
             << group << "), got " << heads;
    spec.headsPerBlock = heads;
  } else {
    if (kvBlock <= 0)
      return op.emitOpError("kv-block must be positive, got ")
             << static_cast<int64_t>(kvBlock);
    spec.headsPerBlock = 1;
  }
  // sm_90 allows 227 KiB of shared memory per block.
  if (spec.sharedMemoryBytes() > 227 * 1024)
    return op.emitOpError("the kernel needs ")
           << spec.sharedMemoryBytes()
           << " bytes of shared memory (more than 227 KiB); lower kv-block";

  // The kernel.
  MLIRContext *ctx = op.getContext();
  std::string name = kernelBaseName(op, "sqa") + "_attention";
  Type flatElements = flatBufferType(ctx, spec.elementType);
  SmallVector<Type> argTypes;
  if (spec.withLse) {
    argTypes.append(gpu_abi::kNumTrainingBuffers, flatElements);
    argTypes[gpu_abi::kTrainingLse] =
        flatBufferType(ctx, Float32Type::get(ctx));
    argTypes.append(gpu_abi::kNumTrainingScalars, IndexType::get(ctx));
    name += "_lse";
  } else {
    argTypes.append(gpu_abi::kNumBuffers, flatElements);
    argTypes.append(gpu_abi::kNumScalars, IndexType::get(ctx));
  }
  auto launch =
      GPULaunchAttr::get(ctx, kThreads, spec.rowsPerHead(), spec.headsPerBlock,
                         spec.heads.outputHeads(), spec.sharedMemoryBytes());
  gpu::GPUFuncOp func = createKernel(kernels, kernelTable, op.getLoc(), name,
                                     argTypes, kThreads, launch);
  Builder attrs(ctx);
  // Two blocks per SM is what the shared memory allows at D = 128; saying so
  // keeps ptxas from trading registers (and spilling) for more blocks.
  func->setAttr("nvvm.minctasm", attrs.getI32IntegerAttr(2));
  if (spec.withLse)
    func->setAttr(gpu_abi::kTrainingStageAttrName, StringAttr::get(ctx, "lse"));
  {
    ImplicitLocOpBuilder kb(op.getLoc(), ctx);
    kb.setInsertionPointToStart(&func.getBody().front());
    KernelBuilder(kb, spec, func).build();
  }

  // The launch, with parameters in GPUKernelABI.def's order.
  ImplicitLocOpBuilder b(op.getLoc(), op);
  using namespace gpu_abi;
  Value operands[kNumBuffers];
  operands[kQuery] = op.getQuery();
  operands[kKey] = op.getKey();
  operands[kValue] = op.getValue();
  operands[kOut] = op.getInit();
  int numBuffers = spec.withLse ? kNumTrainingBuffers : kNumBuffers;
  SmallVector<Value> args(numBuffers +
                          (spec.withLse ? kNumTrainingScalars : kNumScalars));
  SmallVector<Value> bufferOperands(operands, operands + kNumBuffers);
  if (spec.withLse) {
    // d_out, lse, dq, dk, dv: the forward reads none of the backward's
    // buffers; any memref of the right type fills their slots.
    bufferOperands.append(
        {op.getInit(), op.getLse(), op.getQuery(), op.getKey(), op.getValue()});
    // lse is [B, H, S]: its three strides are (batch, head, position).
  }
  for (int i = 0; i < numBuffers; ++i) {
    FlatOperand flat = flattenOperand(b, bufferOperands[i]);
    args[i] = flat.flat;
    for (int j = 0; j < 3; ++j)
      args[numBuffers + firstStride(static_cast<Buffer>(i)) + j] =
          flat.strides[j];
  }
  Value batch = memref::DimOp::create(b, op.getQuery(), 0);
  Value queryLen = memref::DimOp::create(b, op.getQuery(), 2);
  args[numBuffers + kQueryLen] = queryLen;
  args[numBuffers + kKeyLen] = memref::DimOp::create(b, op.getKey(), 2);
  args[numBuffers + kDiagonal] = spec.mask
                                     ? op.buildDiagonalOffset(b, op.getLoc())
                                     : arith::ConstantIndexOp::create(b, 0);

  launchOverRows(b, func, queryLen, launch.getRowsPerBlock(), batch,
                 launch.getGridY(), launch.getThreads(),
                 launch.getSharedMemoryBytes(), args);
  op.erase();
  return success();
}

void LowerAttentionToGPUPass::runOnOperation() {
  if (failed(lowerEachIntoKernelModule<AttentionOp>(
          getOperation(), [&](AttentionOp op, gpu::GPUModuleOp kernels,
                              SymbolTable &kernelTable) {
            return lower(op, kernels, kernelTable);
          })))
    signalPassFailure();
}
