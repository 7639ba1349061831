//===- LowerAttentionBackwardToGPU.cpp - FlashAttention-2 backward (CUDA) -===//
//
// Lowers buffer-form sqa.attention_backward to two SIMT CUDA kernels with
// FlashAttention-2's structure, deterministic (no atomics):
//
//  * dK/dV: a block per (batch, kv head, 128 keys), a thread per key. It
//    loops over every output head of the kv head (grouped heads reduced in
//    registers, never expanded) and the query tiles that see its keys
//    (keyBlockRange), stages Q, dO, lse and Delta of a tile in shared
//    memory, recomputes P from lse and accumulates dK and dV.
//  * dQ: a block per (batch, query head, 128 query rows), a thread per row,
//    looping over the output heads of the query head (several for reverse
//    SQA) and their key blocks (keyBlockRange), K/V tiles in shared memory.
//
// Delta = rowsum(dO * O) is recomputed where a row is staged instead of by
// a preprocess kernel: it costs Dv multiply-adds per row and tile, against
// 2 * tile * (D + Dv) for the tile's products, and needs no scratch buffer
// or extra launch. Arithmetic is f32 (f16/bf16 inputs are extended); each
// gradient is rounded once to the element type. Parameters follow
// GPUKernelABI.def's training list. f16/bf16 kernels whose head dims fit
// run the same structure on tensor cores (TensorCoreBackward.cpp).
//
//===----------------------------------------------------------------------===//

#include "GPUHostSupport.h"
#include "TensorCoreBackward.h"
#include "sqa/Transforms/GPUKernelABI.h"
#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERATTENTIONBACKWARDTOGPU
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::gpu_abi;

namespace {

/// Threads per block, and the keys (dK/dV) or query rows (dQ) of a block.
constexpr int64_t kThreads = 128;

enum class Stage { KeyValue, Query };

struct BackwardSpec {
  Type elementType;
  int64_t headDim, valueDim;
  HeadMapping heads;
  MaskAttr mask;
  float scale;
  /// Rows staged per shared-memory tile: query rows (dK/dV), keys (dQ).
  int64_t tile;

  int64_t sharedMemoryBytes(Stage stage) const {
    if (stage == Stage::KeyValue) // Q, dO, lse * log2(e), Delta.
      return tile * (headDim + valueDim + 2) * 4;
    return tile * (headDim + valueDim) * 4; // K, V.
  }
};

class BackwardKernelBuilder : public LoweringBuilder,
                              private TrainingKernelArguments {
public:
  BackwardKernelBuilder(ImplicitLocOpBuilder &b, const BackwardSpec &spec,
                        gpu::GPUFuncOp func)
      : LoweringBuilder(b, b.getLoc()), TrainingKernelArguments(func), b(b),
        spec(spec), func(func) {
    mask = MaskBounds::get(spec.mask);
  }

  void buildKeyValueKernel();
  void buildQueryKernel();

private:
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  /// ex2.approx gives +0 at -inf: the rules need no guard.
  Softmax::Exponential exp{
      [this](Value x) { return ptxExp2(b, b.getLoc(), x); },
      /*zeroAtNegInf=*/true};

  /// Element `col` of row (batch, head, pos) of `buffer`, as f32.
  Value loadF32(int buffer, Value batch, Value head, Value pos, Value col) {
    Value x = memref::LoadOp::create(
        b, memrefs[buffer],
        ValueRange{add(rowOffset(*this, buffer, batch, head, pos), col)});
    return toF32(x);
  }
  void storeElement(Value x, int buffer, Value batch, Value head, Value pos,
                    Value col) {
    if (!spec.elementType.isF32())
      x = arith::TruncFOp::create(b, spec.elementType, x);
    memref::StoreOp::create(
        b, x, memrefs[buffer],
        ValueRange{add(rowOffset(*this, buffer, batch, head, pos), col)});
  }
  Value alloca(int64_t n) {
    return memref::AllocaOp::create(b, MemRefType::get({n}, b.getF32Type()));
  }
  Value sharedTile(Value smem, int64_t byteOffset, int64_t rows, int64_t cols) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    auto type = MemRefType::get({rows, cols}, b.getF32Type(),
                                MemRefLayoutAttrInterface(), space);
    return memref::ViewOp::create(b, type, smem, index(byteOffset),
                                  ValueRange{});
  }
  Value dynamicSharedMemory() {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    return gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface(), space));
  }
  /// sum_d x[d] * y[d] over `n` elements.
  Value dot(int64_t n, function_ref<Value(Value)> x,
            function_ref<Value(Value)> y) {
    return forLoop(index(0), index(n), 1, ValueRange{f32(0.0f)},
                   [&](Value d, ValueRange acc) -> SmallVector<Value> {
                     return {fma(x(d), y(d), acc[0])};
                   })[0];
  }
  Value loadAt(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, memref, indices);
  }
  void storeAt(Value x, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, x, memref, indices);
  }
  /// Delta = rowsum(dO * O) of one row.
  Value delta(Value batch, Value head, Value pos) {
    return dot(
        spec.valueDim,
        [&](Value d) { return loadF32(kTrainingDOut, batch, head, pos, d); },
        [&](Value d) { return loadF32(kTrainingOut, batch, head, pos, d); });
  }
  /// The row's lse in the exp2 domain.
  Value lse2(Value batch, Value head, Value pos) {
    Value lse = memref::LoadOp::create(
        b, memrefs[kTrainingLse],
        ValueRange{rowOffset(*this, kTrainingLse, batch, head, pos)});
    return mulF(lse, f32(kLog2EF32));
  }
  /// The score in the exp2 domain, -inf unless query row `pos` (< S when
  /// `rowValid`) sees `key` (< T).
  Value maskedScore(Value dotScaled, Value rowValid, Value pos, Value key) {
    Value visible = andI(andI(rowValid, slt(key, keyLen)),
                         isKeyVisible(*this, mask, add(pos, diagonal), key));
    return select(visible, dotScaled,
                  f32(-std::numeric_limits<float>::infinity()));
  }

  ImplicitLocOpBuilder &b;
  const BackwardSpec &spec;
  gpu::GPUFuncOp func;
  MaskBounds mask;
};

} // namespace

void BackwardKernelBuilder::buildKeyValueKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t tile = spec.tile;
  const float scaleLog2 = spec.scale * kLog2EF32;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value blockX = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value keyBlocks = ceilDiv(keyLen, kThreads);
  Value batch = divU(blockX, keyBlocks);
  Value keyBlock = remU(blockX, keyBlocks);
  Value kvHead = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value key = add(mul(keyBlock, kThreads), tid);
  Value keyClamped = minS(key, sub(keyLen, index(1)));

  // This thread's key and value rows and its dK, dV accumulators.
  Value keyRow = alloca(headDim), valueRow = alloca(valueDim);
  Value dk = alloca(headDim), dv = alloca(valueDim);
  forLoop(index(0), index(headDim), 1, [&](Value d) {
    storeAt(loadF32(kTrainingKey, batch, kvHead, keyClamped, d), keyRow, {d});
    storeAt(f32(0.0f), dk, {d});
  });
  forLoop(index(0), index(valueDim), 1, [&](Value d) {
    storeAt(loadF32(kTrainingValue, batch, kvHead, keyClamped, d), valueRow,
            {d});
    storeAt(f32(0.0f), dv, {d});
  });

  Value smem = dynamicSharedMemory();
  Value queries = sharedTile(smem, 0, tile, headDim);
  Value dOuts = sharedTile(smem, tile * headDim * 4, tile, valueDim);
  Value rowState =
      sharedTile(smem, tile * (headDim + valueDim) * 4, tile, 2); // lse2, Delta

  int64_t group = spec.heads.outputsPerKVHead();
  Value firstHead = spec.heads.firstOutputHeadOfKV(*this, kvHead);
  forLoop(index(0), index(group), 1, [&](Value g) {
    Value outHead = add(firstHead, g);
    Value queryHead = spec.heads.queryHeadOf(*this, outHead);
    forLoop(index(0), ceilDiv(queryLen, tile), 1, [&](Value queryTile) {
      Value rowBegin = mul(queryTile, tile);
      Value rowEnd = minS(add(rowBegin, index(tile)), queryLen);
      // The tile's rows visit this block's keys: the forward's block range,
      // in blocks of this kernel's keys. Uniform over the block, so the
      // barriers inside are reached by every thread.
      auto [first, end] = sqa::keyBlockRange(
          *this, mask, add(rowBegin, diagonal),
          add(sub(rowEnd, index(1)), diagonal), keyLen, kThreads);
      ifThen(andI(sle(first, keyBlock), slt(keyBlock, end)), [&] {
        gpu::BarrierOp::create(b);
        Value rows = sub(rowEnd, rowBegin);
        auto stage = [&](Value dst, int64_t cols, int buffer, Value head) {
          forLoop(tid, index(tile * cols), index(kThreads), [&](Value i) {
            Value r = divU(i, cols), c = remU(i, cols);
            Value pos = add(rowBegin, minS(r, sub(rows, index(1))));
            storeAt(loadF32(buffer, batch, head, pos, c), dst, {r, c});
          });
        };
        stage(queries, headDim, kTrainingQuery, queryHead);
        stage(dOuts, valueDim, kTrainingDOut, outHead);
        forLoop(tid, index(tile), index(kThreads), [&](Value r) {
          Value pos = add(rowBegin, minS(r, sub(rows, index(1))));
          storeAt(lse2(batch, outHead, pos), rowState, {r, index(0)});
          storeAt(delta(batch, outHead, pos), rowState, {r, index(1)});
        });
        gpu::BarrierOp::create(b);
        forLoop(index(0), rows, 1, [&](Value r) {
          Value pos = add(rowBegin, r);
          Value s = mulF(dot(
                             headDim,
                             [&](Value d) {
                               return loadAt(queries, {r, d});
                             },
                             [&](Value d) { return loadAt(keyRow, {d}); }),
                         f32(scaleLog2));
          Value score = maskedScore(s, trueValue(), pos, key);
          Value p = Softmax::probabilityFromLogSumExp(
              *this, score, loadAt(rowState, {r, index(0)}), exp);
          Value dp = dot(
              valueDim,
              [&](Value d) {
                return loadAt(dOuts, {r, d});
              },
              [&](Value d) { return loadAt(valueRow, {d}); });
          Value ds = Softmax::scoreGradient(*this, p, dp,
                                            loadAt(rowState, {r, index(1)}));
          forLoop(index(0), index(valueDim), 1, [&](Value d) {
            storeAt(fma(p, loadAt(dOuts, {r, d}), loadAt(dv, {d})), dv, {d});
          });
          forLoop(index(0), index(headDim), 1, [&](Value d) {
            storeAt(fma(ds, loadAt(queries, {r, d}), loadAt(dk, {d})), dk, {d});
          });
        });
      });
    });
  });

  ifThen(slt(key, keyLen), [&] {
    forLoop(index(0), index(headDim), 1, [&](Value d) {
      storeElement(mulF(loadAt(dk, {d}), f32(spec.scale)), kTrainingDKey, batch,
                   kvHead, key, d);
    });
    forLoop(index(0), index(valueDim), 1, [&](Value d) {
      storeElement(loadAt(dv, {d}), kTrainingDValue, batch, kvHead, key, d);
    });
  });
  gpu::ReturnOp::create(b);
}

void BackwardKernelBuilder::buildQueryKernel() {
  const int64_t headDim = spec.headDim, valueDim = spec.valueDim;
  const int64_t tile = spec.tile;
  const float scaleLog2 = spec.scale * kLog2EF32;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value blockX = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value queryBlocks = ceilDiv(queryLen, kThreads);
  Value batch = divU(blockX, queryBlocks);
  Value rowBegin = mul(remU(blockX, queryBlocks), kThreads);
  Value rowEnd = minS(add(rowBegin, index(kThreads)), queryLen);
  Value queryHead = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value pos = add(rowBegin, tid);
  Value active = slt(pos, queryLen);
  Value posClamped = minS(pos, sub(queryLen, index(1)));

  // The row's query (scaled into the exp2 domain), dO and dQ accumulator.
  Value query = alloca(headDim), dOut = alloca(valueDim), dq = alloca(headDim);
  forLoop(index(0), index(headDim), 1, [&](Value d) {
    storeAt(mulF(loadF32(kTrainingQuery, batch, queryHead, posClamped, d),
                 f32(scaleLog2)),
            query, {d});
    storeAt(f32(0.0f), dq, {d});
  });

  Value smem = dynamicSharedMemory();
  Value keys = sharedTile(smem, 0, tile, headDim);
  Value values = sharedTile(smem, tile * headDim * 4, tile, valueDim);

  // Named values, not a structured binding: the loop lambdas capture them.
  Value firstBlock, endBlock;
  std::tie(firstBlock, endBlock) =
      sqa::keyBlockRange(*this, mask, add(rowBegin, diagonal),
                         add(sub(rowEnd, index(1)), diagonal), keyLen, tile);
  int64_t perQuery = spec.heads.outputsPerQueryHead();
  Value firstHead = spec.heads.firstOutputHeadOfQuery(*this, queryHead);
  forLoop(index(0), index(perQuery), 1, [&](Value g) {
    Value outHead = add(firstHead, g);
    Value kvHead = spec.heads.kvHeadOf(*this, outHead);
    forLoop(index(0), index(valueDim), 1, [&](Value d) {
      storeAt(loadF32(kTrainingDOut, batch, outHead, posClamped, d), dOut, {d});
    });
    Value rowLse2 = lse2(batch, outHead, posClamped);
    Value rowDelta = delta(batch, outHead, posClamped);
    forLoop(firstBlock, endBlock, 1, [&](Value keyBlock) {
      Value keyStart = mul(keyBlock, tile);
      gpu::BarrierOp::create(b);
      auto stage = [&](Value dst, int64_t cols, int buffer) {
        forLoop(tid, index(tile * cols), index(kThreads), [&](Value i) {
          Value r = divU(i, cols), c = remU(i, cols);
          Value k = minS(add(keyStart, r), sub(keyLen, index(1)));
          storeAt(loadF32(buffer, batch, kvHead, k, c), dst, {r, c});
        });
      };
      stage(keys, headDim, kTrainingKey);
      stage(values, valueDim, kTrainingValue);
      gpu::BarrierOp::create(b);
      Value validKeys = minS(index(tile), sub(keyLen, keyStart));
      forLoop(index(0), validKeys, 1, [&](Value n) {
        Value s = dot(
            headDim, [&](Value d) { return loadAt(query, {d}); },
            [&](Value d) {
              return loadAt(keys, {n, d});
            });
        Value score = maskedScore(s, active, pos, add(keyStart, n));
        Value p = Softmax::probabilityFromLogSumExp(*this, score, rowLse2, exp);
        Value dp = dot(
            valueDim, [&](Value d) { return loadAt(dOut, {d}); },
            [&](Value d) {
              return loadAt(values, {n, d});
            });
        Value ds = Softmax::scoreGradient(*this, p, dp, rowDelta);
        forLoop(index(0), index(headDim), 1, [&](Value d) {
          storeAt(fma(ds, loadAt(keys, {n, d}), loadAt(dq, {d})), dq, {d});
        });
      });
    });
  });

  ifThen(active, [&] {
    forLoop(index(0), index(headDim), 1, [&](Value d) {
      storeElement(mulF(loadAt(dq, {d}), f32(spec.scale)), kTrainingDQuery,
                   batch, queryHead, pos, d);
    });
  });
  gpu::ReturnOp::create(b);
}

//===----------------------------------------------------------------------===//
// Host side and the pass.
//===----------------------------------------------------------------------===//

namespace {

struct LowerAttentionBackwardToGPUPass
    : public sqa::impl::LowerAttentionBackwardToGPUBase<
          LowerAttentionBackwardToGPUPass> {
  using Base::Base;

  LogicalResult lower(AttentionBackwardOp op, gpu::GPUModuleOp kernels,
                      SymbolTable &kernelTable);
  void runOnOperation() override;
};

} // namespace

LogicalResult LowerAttentionBackwardToGPUPass::lower(AttentionBackwardOp op,
                                                     gpu::GPUModuleOp kernels,
                                                     SymbolTable &kernelTable) {
  if (!op.hasPureBufferSemantics())
    return op.emitOpError("sqa-lower-attention-backward-to-gpu needs buffer "
                          "semantics; bufferize first");
  if (std::string bad = checkOptionRange("tile", tile, 1, kMaxBlock);
      !bad.empty())
    return op.emitOpError(bad);
  BackwardSpec spec;
  spec.elementType = op.getQueryType().getElementType();
  spec.headDim = op.getHeadDim();
  spec.valueDim = op.getValueHeadDim();
  spec.heads = op.getHeadMapping();
  spec.mask = op.getEffectiveMask();
  spec.scale = op.getScaleOrDefault();
  spec.tile = tile;

  Value operands[kNumTrainingBuffers] = {
      op.getQuery(), op.getKey(),    op.getValue(), op.getOut(),   op.getDOut(),
      op.getLse(),   op.getDQuery(), op.getDKey(),  op.getDValue()};
  for (Value operand : operands)
    if (!hasUnitInnerStride(cast<MemRefType>(operand.getType())))
      return op.emitOpError("the GPU kernels need a static innermost stride "
                            "of 1 on every operand, got ")
             << operand.getType();
  // f16/bf16 with whole MMA tiles take the tensor-core kernels
  // (TensorCoreBackward.cpp); the rest, and tensor-cores=false, SIMT.
  TensorCoreBackwardSpec tcSpec{spec.elementType, spec.headDim, spec.valueDim,
                                spec.heads,       spec.mask,    spec.scale};
  bool tc = tensorCores && supportsTensorCoreBackward(
                               spec.elementType, spec.headDim, spec.valueDim);
  auto sharedBytes = [&](Stage stage) {
    return tc ? tensorCoreBackwardSharedBytes(tcSpec, stage == Stage::KeyValue)
              : spec.sharedMemoryBytes(stage);
  };
  int64_t rowsPerBlock = tc ? kTensorCoreBackwardRows : kThreads;
  for (Stage stage : {Stage::KeyValue, Stage::Query})
    if (sharedBytes(stage) > 227 * 1024)
      return op.emitOpError("the backward kernels need ")
             << sharedBytes(stage)
             << " bytes of shared memory (more than 227 KiB); lower tile";

  MLIRContext *ctx = op.getContext();
  SmallVector<Type> argTypes(kNumTrainingBuffers,
                             flatBufferType(ctx, spec.elementType));
  argTypes[kTrainingLse] = flatBufferType(ctx, Float32Type::get(ctx));
  argTypes.append(kNumTrainingScalars, IndexType::get(ctx));

  // The launch arguments (shared by both kernels).
  ImplicitLocOpBuilder b(op.getLoc(), op);
  SmallVector<Value> args(kNumTrainingBuffers + kNumTrainingScalars);
  for (int i = 0; i < kNumTrainingBuffers; ++i) {
    FlatOperand flat = flattenOperand(b, operands[i]);
    args[i] = flat.flat;
    for (int j = 0; j < 3; ++j)
      args[kNumTrainingBuffers +
           trainingFirstStride(static_cast<TrainingBuffer>(i)) + j] =
          flat.strides[j];
  }
  Value batch = memref::DimOp::create(b, op.getQuery(), 0);
  Value queryLen = memref::DimOp::create(b, op.getQuery(), 2);
  Value keyLen = memref::DimOp::create(b, op.getKey(), 2);
  args[kNumTrainingBuffers + kTrainingQueryLen] = queryLen;
  args[kNumTrainingBuffers + kTrainingKeyLen] = keyLen;
  args[kNumTrainingBuffers + kTrainingDiagonal] =
      spec.mask ? op.buildDiagonalOffset(b, op.getLoc())
                : arith::ConstantIndexOp::create(b, 0);

  std::string baseName = kernelBaseName(op, "sqa");
  for (Stage stage : {Stage::KeyValue, Stage::Query}) {
    bool kv = stage == Stage::KeyValue;
    // Grid y: one kv head (dK/dV) or query head (dQ) per block row.
    int64_t heads = kv ? spec.heads.kvHeads : spec.heads.queryHeads;
    auto launch = GPULaunchAttr::get(ctx, kThreads, rowsPerBlock, 1, heads,
                                     sharedBytes(stage));
    gpu::GPUFuncOp func = createKernel(kernels, kernelTable, op.getLoc(),
                                       baseName + (kv ? "_dkdv" : "_dq"),
                                       argTypes, kThreads, launch);
    func->setAttr(kTrainingStageAttrName,
                  StringAttr::get(ctx, kv ? "dkdv" : "dq"));
    {
      ImplicitLocOpBuilder kb(op.getLoc(), ctx);
      kb.setInsertionPointToStart(&func.getBody().front());
      if (tc && kv)
        buildTensorCoreKeyValueKernel(kb, tcSpec, func);
      else if (tc)
        buildTensorCoreQueryKernel(kb, tcSpec, func);
      else if (kv)
        BackwardKernelBuilder(kb, spec, func).buildKeyValueKernel();
      else
        BackwardKernelBuilder(kb, spec, func).buildQueryKernel();
    }
    launchOverRows(b, func, kv ? keyLen : queryLen, rowsPerBlock, batch, heads,
                   kThreads, sharedBytes(stage), args);
  }
  op.erase();
  return success();
}

void LowerAttentionBackwardToGPUPass::runOnOperation() {
  if (failed(lowerEachIntoKernelModule<AttentionBackwardOp>(
          getOperation(), [&](AttentionBackwardOp op, gpu::GPUModuleOp kernels,
                              SymbolTable &kernelTable) {
            return lower(op, kernels, kernelTable);
          })))
    signalPassFailure();
}
