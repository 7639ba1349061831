//===- LowerDecodeToGPU.cpp - Split-KV decode CUDA kernels ----------------===//
//
// Lowers buffer-form sqa.decode to up to three gpu.launch_funcs of
// generated SIMT kernels (decode is bound by memory bandwidth, not FLOPs):
//
//  1. append (with new tokens): each (batch row, kv head) copies its new
//     keys/values into the caches at [cache_lens[b], + new_len).
//  2. split: a block per (batch row, split of `split-keys` keys, kv head,
//     chunk of `rows-per-block` stacked query rows). The chunk stacks the
//     rows of every output head of the kv head's group x new_len, so each
//     K/V tile is read from global memory once per group (per chunk when a
//     group has more rows than a block). K/V tiles are staged in shared
//     memory with 16-byte vector loads, scores and P.V run from shared
//     memory, the online softmax per row in f32 (base 2, ex2.approx). The
//     block leaves its rows' partial max, sum and accumulator.
//  3. merge: a block per (batch row, kv head, chunk) merges the partials of
//     each row in split order (OnlineSoftmax::merge), normalizes, rounds
//     and stores.
//
// Splits are fixed key ranges of the cache capacity, so the result never
// depends on the lengths' distribution or the GPU's schedule: it is
// deterministic. Lengths live in device memory: a row whose lengths are out
// of range (lengthsInRange) is neither appended nor read and its output is
// NaN. Parameters follow GPUKernelABI.def's decode lists.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/GPUKernelABI.h"
#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "DecodeSupport.h"
#include "GPUHostSupport.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"

#include <algorithm>
#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERDECODETOGPU
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::gpu_abi;

namespace {

constexpr int64_t kThreads = 128;

struct DecodeSpec {
  Type elementType;
  int64_t headDim, valueDim;
  HeadMapping heads;
  MaskBounds mask;
  float scale;
  bool append;
  int64_t tileKeys, splitKeys, rowsPerBlock;

  int64_t elementBytes() const {
    return elementType.getIntOrFloatBitWidth() / 8;
  }
  /// f32 shared memory: Q [rows][D], K [tile][D], V [tile][Dv],
  /// scores [rows][tile], accumulators [rows][Dv], then per row max, sum
  /// and rescale factor.
  int64_t sharedMemoryBytes() const {
    return 4 * (rowsPerBlock * headDim + tileKeys * (headDim + valueDim) +
                rowsPerBlock * tileKeys + rowsPerBlock * valueDim +
                3 * rowsPerBlock);
  }
  /// Elements per 16-byte load, when the head dims allow it.
  int64_t vectorWidth() const {
    int64_t width = 16 / elementBytes();
    while (width > 1 && (headDim % width || valueDim % width))
      width /= 2;
    return width;
  }
};

class DecodeKernelBuilder : public LoweringBuilder {
public:
  DecodeKernelBuilder(ImplicitLocOpBuilder &b, const DecodeSpec &spec,
                      gpu::GPUFuncOp func)
      : LoweringBuilder(b, b.getLoc()), b(b), spec(spec), func(func),
        f32Type(b.getF32Type()),
        rows([&](int i) { return scalar(i); },
             [](int buffer) {
               return decodeFirstStride(static_cast<DecodeBuffer>(buffer));
             }) {
    for (int i = 0; i < kNumDecodeBuffers; ++i)
      buffers[i] = func.getArgument(i);
    newLen = scalar(kDecodeNewLen);
    capacity = scalar(kDecodeCapacity);
    splits = scalar(kDecodeSplits);
  }

  /// arith.maxnumf would lower to libdevice's __nv_fmaxf; maximumf maps to
  /// PTX max.NaN.f32 (as the attention kernels). Hides LoweringBuilder's so
  /// that the rules, instantiated on this class, use it.
  Value maxF(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }

  void buildAppend();
  void buildSplit();
  void buildMerge();

private:
  using Softmax = OnlineSoftmax<DecodeKernelBuilder>;

  /// 2^x with the approximate instruction (exact 0 at -inf), spelled as PTX
  /// for the reason LowerAttentionToGPU gives.
  Value exp2(Value x) {
    return NVVM::InlinePtxOp::create(b, TypeRange{f32Type}, ValueRange{x},
                                     ValueRange{}, "ex2.approx.ftz.f32 $0, $1;",
                                     Value())
        .getResult(0);
  }
  Softmax::Exponential exponential() {
    return {[this](Value x) { return exp2(x); }, /*zeroAtNegInf=*/true};
  }

  Value globalIndex(int buffer, Value batch, Value head, Value pos, Value col) {
    return add(rows.rowOffset(*this, buffer, batch, head, pos), col);
  }
  /// Scalar argument `i` of the decode list (after the buffers).
  Value scalar(int i) { return func.getArgument(kNumDecodeBuffers + i); }
  Value threadId() { return gpu::ThreadIdOp::create(b, gpu::Dimension::x); }
  Value blockId(gpu::Dimension dim) { return gpu::BlockIdOp::create(b, dim); }
  /// Threads of the block stride over [0, n).
  void blockLoop(Value n, function_ref<void(Value)> body) {
    forLoop(threadId(), n, index(kThreads), body);
  }
  void barrier() { gpu::BarrierOp::create(b); }
  Value sharedView(Value smem, int64_t offsetFloats, ArrayRef<int64_t> shape) {
    auto type =
        MemRefType::get(shape, f32Type, MemRefLayoutAttrInterface(),
                        gpu::AddressSpaceAttr::get(
                            b.getContext(), gpu::AddressSpace::Workgroup));
    return memref::ViewOp::create(b, type, smem, index(4 * offsetFloats),
                                  ValueRange{});
  }
  /// The alignment of `width` elements at an index that is a multiple of
  /// `width` (strides are multiples of the head dims; base pointers are
  /// 16-byte aligned): what makes the loads 16-byte vector accesses.
  llvm::MaybeAlign globalAlign(int64_t width) const {
    return llvm::MaybeAlign(width * spec.elementBytes());
  }
  /// The same for f32 vectors in shared memory (every view starts at a
  /// multiple of the widest vector; dynamic shared memory is 16-byte
  /// aligned).
  llvm::MaybeAlign sharedAlign(int64_t width) const {
    return llvm::MaybeAlign(std::min<int64_t>(16, width * 4));
  }
  /// `width` elements of a buffer at flat index `at`, as f32.
  Value loadF32(int buffer, Value at, int64_t width) {
    Value x = vector::LoadOp::create(
        b, VectorType::get({width}, spec.elementType), buffers[buffer],
        ValueRange{at}, /*nontemporal=*/false, globalAlign(width));
    if (spec.elementType != f32Type)
      x = arith::ExtFOp::create(b, VectorType::get({width}, f32Type), x);
    return x;
  }

  /// What a block of the split/merge grid works on.
  struct RowChunk {
    Value batch, kvHead, chunk, rows, cached, valid, inRange;
  };
  RowChunk decodeChunk(Value batch);
  /// Global row `r` of a chunk (r < rows): its output head and position.
  std::pair<Value, Value> rowPlace(const RowChunk &c, Value r) {
    Value outHead0 = spec.heads.firstOutputHeadOfKV(*this, c.kvHead);
    return {add(outHead0, divU(r, newLen)), remU(r, newLen)};
  }
  /// Flat index of the partials of (item, row) where item is (batch row,
  /// block y, split): accumulator columns, then max and sum.
  Value partialIndex(Value batch, Value split, Value row) {
    Value gridY = gpu::GridDimOp::create(b, gpu::Dimension::y);
    Value item = add(
        mul(add(mul(batch, gridY), blockId(gpu::Dimension::y)), splits), split);
    return mul(add(mul(item, spec.rowsPerBlock), row), spec.valueDim + 2);
  }

  ImplicitLocOpBuilder &b;
  const DecodeSpec &spec;
  gpu::GPUFuncOp func;
  Type f32Type;
  RowStrides<kNumDecodeStridedBuffers> rows;
  Value buffers[kNumDecodeBuffers];
  Value newLen, capacity, splits;
};

} // namespace

DecodeKernelBuilder::RowChunk DecodeKernelBuilder::decodeChunk(Value batch) {
  int64_t group = spec.heads.outputsPerKVHead();
  Value totalRows = mul(newLen, group);
  Value chunks = ceilDiv(totalRows, spec.rowsPerBlock);
  Value blockY = blockId(gpu::Dimension::y);
  RowChunk c;
  c.batch = batch;
  c.kvHead = divU(blockY, chunks);
  c.chunk = remU(blockY, chunks);
  c.rows = minS(index(spec.rowsPerBlock),
                sub(totalRows, mul(c.chunk, spec.rowsPerBlock)));
  c.cached = cachedLength(*this, buffers[kDecodeCacheLens], batch);
  Value valid = validLength(*this, spec.append, c.cached, newLen);
  c.inRange = lengthsInRange(*this, c.cached, valid, capacity);
  c.valid = select(c.inRange, valid, index(0));
  return c;
}

void DecodeKernelBuilder::buildAppend() {
  Value batch = blockId(gpu::Dimension::x);
  Value kvHead = blockId(gpu::Dimension::y);
  Value cached = cachedLength(*this, buffers[kDecodeCacheLens], batch);
  Value valid = validLength(*this, /*append=*/true, cached, newLen);
  // The element type is copied as is (bit-exact, as appendNewTokens).
  ifThen(lengthsInRange(*this, cached, valid, capacity), [&] {
    std::pair<int, int> pairs[] = {{kDecodeKeyNew, kDecodeKeyCache},
                                   {kDecodeValueNew, kDecodeValueCache}};
    for (auto pair : pairs) {
      int source = pair.first, cache = pair.second;
      int64_t dim = source == kDecodeKeyNew ? spec.headDim : spec.valueDim;
      int64_t width = spec.vectorWidth();
      int64_t perRow = dim / width;
      auto vecType = VectorType::get({width}, spec.elementType);
      blockLoop(mul(newLen, perRow), [&](Value i) {
        Value pos = divU(i, perRow), col = mul(remU(i, perRow), width);
        Value x = vector::LoadOp::create(
            b, vecType, buffers[source],
            ValueRange{globalIndex(source, batch, kvHead, pos, col)},
            /*nontemporal=*/false, globalAlign(width));
        vector::StoreOp::create(b, x, buffers[cache],
                                ValueRange{globalIndex(cache, batch, kvHead,
                                                       add(cached, pos), col)},
                                /*nontemporal=*/false, globalAlign(width));
      });
    }
  });
}

void DecodeKernelBuilder::buildSplit() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t tile = spec.tileKeys, rowsMax = spec.rowsPerBlock;
  const int64_t width = spec.vectorWidth();
  const float inf = std::numeric_limits<float>::infinity();
  Value blockX = blockId(gpu::Dimension::x);
  Value batch = divU(blockX, splits), split = remU(blockX, splits);
  RowChunk c = decodeChunk(batch);
  Value rowBase = mul(c.chunk, rowsMax);

  Value smem = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                         MemRefLayoutAttrInterface(),
                         gpu::AddressSpaceAttr::get(
                             b.getContext(), gpu::AddressSpace::Workgroup)));
  int64_t offset = 0;
  auto carve = [&](ArrayRef<int64_t> shape) {
    Value view = sharedView(smem, offset, shape);
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    offset += n;
    return view;
  };
  Value queries = carve({rowsMax, headDim});
  Value keys = carve({tile, headDim});
  Value values = carve({tile, valueDim});
  Value scores = carve({rowsMax, tile});
  Value acc = carve({rowsMax, valueDim});
  Value rowMax = carve({rowsMax}), rowSum = carve({rowsMax}),
        rowAlpha = carve({rowsMax});

  // Q pre-scaled by scale * log2(e): the softmax runs in base 2. Rows past
  // the chunk's end repeat its last row (never stored).
  Value scale = f32(spec.scale * kLog2EF32);
  auto f32Vec = VectorType::get({width}, f32Type);
  int64_t qChunks = headDim / width;
  blockLoop(index(rowsMax * qChunks), [&](Value i) {
    Value r = divU(i, qChunks), col = mul(remU(i, qChunks), width);
    auto [outHead, pos] =
        rowPlace(c, add(rowBase, minS(r, sub(c.rows, index(1)))));
    Value head = spec.heads.queryHeadOf(*this, outHead);
    Value q = loadF32(kDecodeQuery,
                      globalIndex(kDecodeQuery, batch, head, pos, col), width);
    vector::StoreOp::create(
        b, mulF(q, vector::BroadcastOp::create(b, f32Vec, scale)), queries,
        ValueRange{r, col}, /*nontemporal=*/false, sharedAlign(width));
  });
  blockLoop(index(rowsMax * valueDim), [&](Value i) {
    store(f32(0.0f), acc, {divU(i, valueDim), remU(i, valueDim)});
  });
  blockLoop(index(rowsMax), [&](Value r) {
    store(f32(-inf), rowMax, {r});
    store(f32(0.0f), rowSum, {r});
  });

  // The split's tiles that some row of the chunk sees: keyBlockRange over
  // the chunk's diagonals, cut to the split's keys.
  Value firstDiagonal = sub(c.valid, newLen);
  Value lastDiagonal = sub(c.valid, index(1));
  auto [firstTile, endTile] = keyBlockRange(*this, spec.mask, firstDiagonal,
                                            lastDiagonal, c.valid, tile);
  int64_t tilesPerSplit = spec.splitKeys / tile;
  Value splitFirst = mul(split, tilesPerSplit);
  Value first = maxS(firstTile, splitFirst);
  Value end = maxS(first, minS(endTile, add(splitFirst, tilesPerSplit)));
  Value lastKey = sub(c.valid, index(1));

  forLoop(first, end, 1, [&](Value t) {
    Value keyStart = mul(t, tile);
    barrier();
    // Stage the tile (keys past the row's end re-read its last key; they
    // are masked below).
    auto stage = [&](Value tileView, int buffer, int64_t cols) {
      int64_t perRow = cols / width;
      blockLoop(index(tile * perRow), [&](Value i) {
        Value n = divU(i, perRow), col = mul(remU(i, perRow), width);
        Value key = minS(add(keyStart, n), lastKey);
        Value x = loadF32(
            buffer, globalIndex(buffer, batch, c.kvHead, key, col), width);
        vector::StoreOp::create(b, x, tileView, ValueRange{n, col},
                                /*nontemporal=*/false, sharedAlign(width));
      });
    };
    stage(keys, kDecodeKeyCache, headDim);
    stage(values, kDecodeValueCache, valueDim);
    barrier();
    // Scores, masked by the rules.
    blockLoop(index(rowsMax * tile), [&](Value i) {
      Value r = divU(i, tile), n = remU(i, tile);
      Value dot = forLoop(
          index(0), index(headDim), 1, ValueRange{f32(0.0f)},
          [&](Value d, ValueRange s) -> SmallVector<Value> {
            return {fma(load(queries, {r, d}), load(keys, {n, d}), s[0])};
          })[0];
      Value row = add(rowBase, minS(r, sub(c.rows, index(1))));
      Value diagonal = add(firstDiagonal, remU(row, newLen));
      Value key = add(keyStart, n);
      Value visible = andI(slt(key, c.valid),
                           isKeyVisible(*this, spec.mask, diagonal, key));
      store(select(visible, dot, f32(-inf)), scores, {r, n});
    });
    barrier();
    // The tile's online softmax, a thread per row.
    blockLoop(index(rowsMax), [&](Value r) {
      Value tileMax = forLoop(index(0), index(tile), 1, ValueRange{f32(-inf)},
                              [&](Value n, ValueRange m) -> SmallVector<Value> {
                                return {maxF(m[0], load(scores, {r, n}))};
                              })[0];
      Value oldMax = load(rowMax, {r});
      Value newMax = maxF(oldMax, tileMax);
      Value alpha = Softmax::rescale(*this, oldMax, newMax, exponential());
      Value shift = Softmax::shift(*this, newMax);
      Value tileSum =
          forLoop(index(0), index(tile), 1, ValueRange{f32(0.0f)},
                  [&](Value n, ValueRange s) -> SmallVector<Value> {
                    Value p = Softmax::probability(*this, load(scores, {r, n}),
                                                   shift, exponential());
                    store(p, scores, {r, n});
                    return {addF(s[0], p)};
                  })[0];
      store(Softmax::nextSum(*this, alpha, load(rowSum, {r}), tileSum), rowSum,
            {r});
      store(newMax, rowMax, {r});
      store(alpha, rowAlpha, {r});
    });
    barrier();
    // O = alpha * O + P.V, a thread per (row, value column).
    blockLoop(index(rowsMax * valueDim), [&](Value i) {
      Value r = divU(i, valueDim), col = remU(i, valueDim);
      Value init = mulF(load(rowAlpha, {r}), load(acc, {r, col}));
      Value sum = forLoop(
          index(0), index(tile), 1, ValueRange{init},
          [&](Value n, ValueRange s) -> SmallVector<Value> {
            return {fma(load(scores, {r, n}), load(values, {n, col}), s[0])};
          })[0];
      store(sum, acc, {r, col});
    });
  });
  barrier();

  // The partials of the chunk's rows (a split that saw nothing leaves
  // max -inf, sum 0: merge gives it no weight).
  Value partials = buffers[kDecodePartials];
  blockLoop(mul(c.rows, valueDim + 2), [&](Value i) {
    Value r = divU(i, valueDim + 2), col = remU(i, valueDim + 2);
    Value at = add(partialIndex(batch, split, r), col);
    Value isAcc = slt(col, index(valueDim));
    Value accCol = minS(col, index(valueDim - 1));
    Value x = select(isAcc, load(acc, {r, accCol}),
                     select(cmp(arith::CmpIPredicate::eq, col, index(valueDim)),
                            load(rowMax, {r}), load(rowSum, {r})));
    store(x, partials, {at});
  });
}

void DecodeKernelBuilder::buildMerge() {
  const int64_t valueDim = spec.valueDim;
  Value batch = blockId(gpu::Dimension::x);
  RowChunk c = decodeChunk(batch);
  Value rowBase = mul(c.chunk, spec.rowsPerBlock);
  Value partials = buffers[kDecodePartials];
  Value nan = f32(std::numeric_limits<float>::quiet_NaN());
  blockLoop(mul(c.rows, valueDim), [&](Value i) {
    Value r = divU(i, valueDim), col = remU(i, valueDim);
    SmallVector<Value> state = forLoop(
        index(0), splits, 1,
        ValueRange{f32(-std::numeric_limits<float>::infinity()), f32(0.0f),
                   f32(0.0f)},
        [&](Value s, ValueRange st) -> SmallVector<Value> {
          Value base = partialIndex(batch, s, r);
          Softmax::Merged m = Softmax::merge(
              *this, st[0], st[1], load(partials, {add(base, valueDim)}),
              load(partials, {add(base, valueDim + 1)}), exponential());
          Value partial = load(partials, {add(base, col)});
          return {m.max, m.sum, fma(m.alphaB, partial, mulF(m.alphaA, st[2]))};
        });
    Value y = mulF(state[2], Softmax::normalizer(*this, state[1]));
    y = select(c.inRange, y, nan);
    if (spec.elementType != f32Type)
      y = arith::TruncFOp::create(b, spec.elementType, y);
    auto [outHead, pos] = rowPlace(c, add(rowBase, r));
    store(y, buffers[kDecodeOut],
          {globalIndex(kDecodeOut, batch, outHead, pos, col)});
  });
}

namespace {

struct LowerDecodeToGPUPass
    : public sqa::impl::LowerDecodeToGPUBase<LowerDecodeToGPUPass> {
  using Base::Base;

  LogicalResult lower(DecodeOp op, gpu::GPUModuleOp kernels,
                      SymbolTable &kernelTable);
  void runOnOperation() override;
};

} // namespace

LogicalResult LowerDecodeToGPUPass::lower(DecodeOp op, gpu::GPUModuleOp kernels,
                                          SymbolTable &kernelTable) {
  DecodeSpec spec;
  spec.elementType = op.getOutType().getElementType();
  spec.headDim = op.getHeadDim();
  spec.valueDim = op.getValueHeadDim();
  spec.heads = op.getHeadMapping();
  spec.mask = MaskBounds::get(op.getEffectiveMask());
  spec.scale = op.getScaleOrDefault();
  spec.append = op.hasAppend();
  spec.tileKeys = kvBlock;
  spec.splitKeys = splitKeys;
  spec.rowsPerBlock = rowsPerBlock;
  if (!spec.elementType.isF32() && !spec.elementType.isF16() &&
      !spec.elementType.isBF16())
    return op.emitOpError("the GPU decode kernels take f32, f16 or bf16");
  SmallVector<Value> operands = {op.getQuery(), op.getKeyCache(),
                                 op.getValueCache(), op.getOut()};
  if (spec.append)
    operands.append({op.getKeyNew(), op.getValueNew()});
  for (Value operand : operands)
    if (!hasUnitInnerStride(cast<MemRefType>(operand.getType())))
      return op.emitOpError("the GPU kernels need a static innermost stride "
                            "of 1 on every operand, got ")
             << operand.getType();
  if (spec.sharedMemoryBytes() > 227 * 1024)
    return op.emitOpError("the split kernel needs ")
           << spec.sharedMemoryBytes()
           << " bytes of shared memory (more than 227 KiB); lower kv-block or "
              "rows-per-block";

  MLIRContext *ctx = op.getContext();
  std::string prefix = kernelBaseName(op, "sqa_decode");
  SmallVector<Type> params(kNumDecodeBuffers,
                           flatBufferType(ctx, spec.elementType));
  params[kDecodeCacheLens] = flatBufferType(ctx, IntegerType::get(ctx, 64));
  params[kDecodePartials] = flatBufferType(ctx, Float32Type::get(ctx));
  params.append(kNumDecodeScalars, IndexType::get(ctx));

  Builder attrs(ctx);
  int64_t group = spec.heads.outputsPerKVHead();
  auto makeKernel = [&](StringRef stage, int64_t sharedBytes) {
    gpu::GPUFuncOp func =
        createKernel(kernels, kernelTable, op.getLoc(),
                     prefix + "_" + stage.str(), params, kThreads,
                     GPULaunchAttr::get(ctx, kThreads, spec.rowsPerBlock, group,
                                        spec.heads.outputHeads(), sharedBytes));
    func->setAttr(kDecodeStageAttrName, attrs.getStringAttr(stage));
    return func;
  };
  auto build = [&](gpu::GPUFuncOp func, auto body) {
    ImplicitLocOpBuilder kb(op.getLoc(), ctx);
    kb.setInsertionPointToStart(&func.getBody().front());
    DecodeKernelBuilder builder(kb, spec, func);
    body(builder);
    gpu::ReturnOp::create(kb);
  };
  gpu::GPUFuncOp append;
  if (spec.append) {
    append = makeKernel("append", 0);
    build(append, [](DecodeKernelBuilder &k) { k.buildAppend(); });
  }
  gpu::GPUFuncOp split = makeKernel("split", spec.sharedMemoryBytes());
  split->setAttr(kDecodeSplitKeysAttrName,
                 attrs.getI64IntegerAttr(spec.splitKeys));
  build(split, [](DecodeKernelBuilder &k) { k.buildSplit(); });
  gpu::GPUFuncOp merge = makeKernel("merge", 0);
  build(merge, [](DecodeKernelBuilder &k) { k.buildMerge(); });

  // The launches, with parameters in GPUKernelABI.def's decode order.
  ImplicitLocOpBuilder b(op.getLoc(), op);
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
  Value batch = memref::DimOp::create(b, op.getQuery(), 0);
  Value newLen = memref::DimOp::create(b, op.getQuery(), 2);
  Value capacity = memref::DimOp::create(b, op.getKeyCache(), 2);
  Value numSplits =
      arith::CeilDivUIOp::create(b, capacity, cst(spec.splitKeys));
  Value chunks = arith::CeilDivUIOp::create(
      b, arith::MulIOp::create(b, newLen, cst(group)), cst(spec.rowsPerBlock));
  Value gridY = arith::MulIOp::create(b, chunks, cst(spec.heads.kvHeads));
  SmallVector<Value> args(kNumDecodeBuffers + kNumDecodeScalars);
  Value elementOperands[kNumDecodeStridedBuffers] = {
      op.getQuery(),  op.getKeyCache(), op.getValueCache(),
      op.getKeyNew(), op.getValueNew(), op.getOut()};
  for (int i = 0; i < kNumDecodeStridedBuffers; ++i) {
    Value operand = elementOperands[i];
    if (!operand) {
      // No append: an empty view of the query stands in for k_new/v_new.
      operand = op.getQuery();
    }
    FlatOperand flat = flattenOperand(b, operand);
    args[i] = flat.flat;
    for (int j = 0; j < 3; ++j)
      args[kNumDecodeBuffers + decodeFirstStride(static_cast<DecodeBuffer>(i)) +
           j] = flat.strides[j];
  }
  args[kDecodeCacheLens] =
      memref::CastOp::create(b, params[kDecodeCacheLens], op.getCacheLens());
  Value partialElements = cst(1);
  for (Value v : {batch, gridY, numSplits, Value(cst(spec.rowsPerBlock)),
                  Value(cst(spec.valueDim + 2))})
    partialElements = arith::MulIOp::create(b, partialElements, v);
  auto partialType = MemRefType::get({ShapedType::kDynamic}, b.getF32Type());
  Value partialBuffer =
      gpu::AllocOp::create(b, partialType, Type(), ValueRange{},
                           ValueRange{partialElements}, ValueRange{})
          .getMemref();
  args[kDecodePartials] =
      memref::CastOp::create(b, params[kDecodePartials], partialBuffer);
  args[kNumDecodeBuffers + kDecodeNewLen] = newLen;
  args[kNumDecodeBuffers + kDecodeCapacity] = capacity;
  args[kNumDecodeBuffers + kDecodeSplits] = numSplits;

  Value one = cst(1), threads = cst(kThreads);
  auto launch = [&](gpu::GPUFuncOp func, Value x, Value y, int64_t bytes) {
    gpu::LaunchFuncOp::create(
        b, func, gpu::KernelDim3{x, y, one}, gpu::KernelDim3{threads, one, one},
        arith::ConstantIntOp::create(b, b.getI32Type(), bytes), args);
  };
  if (append)
    launch(append, batch, cst(spec.heads.kvHeads), 0);
  launch(split, arith::MulIOp::create(b, batch, numSplits), gridY,
         spec.sharedMemoryBytes());
  launch(merge, batch, gridY, 0);
  gpu::DeallocOp::create(b, Type(), ValueRange{}, partialBuffer);
  op.erase();
  return success();
}

void LowerDecodeToGPUPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(emitOptionErrors(
          module,
          {checkOptionRange("kv-block", kvBlock, 1, kMaxBlock),
           checkOptionRange("split-keys", splitKeys, 1, kMaxBlock),
           checkOptionRange("rows-per-block", rowsPerBlock, 1, kThreads)})))
    return signalPassFailure();
  if (splitKeys % kvBlock != 0) {
    emitError(module.getLoc()) << "kv-block (" << static_cast<int64_t>(kvBlock)
                               << ") must divide split-keys ("
                               << static_cast<int64_t>(splitKeys) << ")";
    return signalPassFailure();
  }
  if (failed(lowerEachIntoKernelModule<DecodeOp>(
          module,
          [&](DecodeOp op, gpu::GPUModuleOp kernels, SymbolTable &kernelTable) {
            return lower(op, kernels, kernelTable);
          })))
    signalPassFailure();
}
