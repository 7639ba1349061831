//===- LowerProjections.cpp - Projection GEMMs with vector micro-kernels --===//
//
// The layer's projections are x [B, L, K] times a shared weight [K, N]. They
// become a blocked GEMM over the flattened rows: weight blocks of kc x nc
// stay in cache while all threads sweep row blocks of it, and each
// mr x (nr * W) output tile accumulates in registers over the k block.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/OptionLimits.h"
#include "sqa/Transforms/Passes.h"

#include "OuterProductLoop.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/Support/CheckedArithmetic.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERPROJECTIONS
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {

struct GemmShape {
  int64_t vectorWidth, rows, vectors, kBlock, nBlock;
};

/// True for batch_matmul(A [B, L, K], W [K, N]) -> C [B, L, N] f32 buffers.
static bool isProjection(linalg::BatchMatmulOp op, int64_t vectorWidth) {
  if (!op.hasPureBufferSemantics())
    return false;
  auto maps = op.getIndexingMapsArray();
  MLIRContext *ctx = op.getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  if (maps.size() != 3 ||
      maps[0] != AffineMap::get(4, 0, {d(0), d(1), d(3)}, ctx) ||
      maps[1] != AffineMap::get(4, 0, {d(3), d(2)}, ctx) ||
      maps[2] != AffineMap::get(4, 0, {d(0), d(1), d(2)}, ctx))
    return false;
  auto out = cast<MemRefType>(op.getDpsInits()[0].getType());
  auto weight = cast<MemRefType>(op.getDpsInputs()[1].getType());
  return out.getElementType().isF32() && weight.hasStaticShape() &&
         weight.getDimSize(1) % vectorWidth == 0;
}

class GemmBuilder {
public:
  GemmBuilder(RewriterBase &b, linalg::BatchMatmulOp op, GemmShape shape)
      : b(b), loc(op.getLoc()), shape(shape), f32(b.getF32Type()),
        vecType(VectorType::get({shape.vectorWidth}, b.getF32Type())),
        lhs(op.getDpsInputs()[0]), weight(op.getDpsInputs()[1]),
        out(op.getDpsInits()[0]) {}

  void build();

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }

  void forLoop(Value lb, Value ub, Value step, function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, step);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }

  /// C[rows, cols..] += A[rows, k0:k1] * W[k0:k1, cols..] for `mr` rows
  /// (flat indices) and `nr` vectors starting at `col`.
  void kernel(ArrayRef<Value> batchIdx, ArrayRef<Value> rowIdx, Value col,
              int64_t nr, Value k0, Value k1, Value packed, Value colBase);

  RewriterBase &b;
  Location loc;
  GemmShape shape;
  Type f32;
  VectorType vecType;
  Value lhs, weight, out;
};

} // namespace

void GemmBuilder::kernel(ArrayRef<Value> batchIdx, ArrayRef<Value> rowIdx,
                         Value col, int64_t nr, Value k0, Value k1,
                         Value packed, Value colBase) {
  int64_t mr = rowIdx.size(), w = shape.vectorWidth;
  int64_t chunk = shape.vectors * w;
  // The packed panel holding `col`, and the lane offset within it.
  Value rel = arith::SubIOp::create(b, loc, col, colBase);
  Value panel = arith::DivUIOp::create(b, loc, rel, idx(chunk));
  Value lane = arith::RemUIOp::create(b, loc, rel, idx(chunk));
  SmallVector<Value> cols, init;
  for (int64_t v = 0; v < nr; ++v)
    cols.push_back(add(col, idx(v * w)));
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nr; ++v)
      init.push_back(vector::LoadOp::create(
          b, loc, vecType, out, ValueRange{batchIdx[i], rowIdx[i], cols[v]}));
  SmallVector<Value> sums = sqa::emitOuterProductLoop(
      b, loc, k0, k1, init, mr, nr, vecType,
      [&](Value k, int64_t v) -> Value {
        Value kk = arith::SubIOp::create(b, loc, k, k0);
        return vector::LoadOp::create(
            b, loc, vecType, packed,
            ValueRange{panel, kk, add(lane, idx(v * w))});
      },
      [&](Value k, int64_t i) -> Value {
        Value a = memref::LoadOp::create(b, loc, lhs,
                                         ValueRange{batchIdx[i], rowIdx[i], k});
        return a.getType() == f32 ? a : arith::ExtFOp::create(b, loc, f32, a);
      });
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nr; ++v)
      vector::StoreOp::create(b, loc, sums[i * nr + v], out,
                              ValueRange{batchIdx[i], rowIdx[i], cols[v]});
}

void GemmBuilder::build() {
  auto weightType = cast<MemRefType>(weight.getType());
  int64_t kSize = weightType.getDimSize(0), nSize = weightType.getDimSize(1);
  int64_t w = shape.vectorWidth, mr = shape.rows,
          chunk = shape.vectors * shape.vectorWidth;
  Value batch = memref::DimOp::create(b, loc, out, 0);
  Value len = memref::DimOp::create(b, loc, out, 1);
  Value rows = mul(batch, len);
  Value rowBlocks = arith::CeilDivSIOp::create(b, loc, rows, idx(mr));
  int64_t nc = std::max(chunk, shape.nBlock / chunk * chunk);
  nc = std::min(nc, (nSize + chunk - 1) / chunk * chunk);
  // Weight blocks are packed into f32 panels [nc / chunk][kc][chunk]: the
  // micro-kernel then streams contiguous lines instead of one row of W
  // (N * 4 bytes apart) per k, and converts bf16/f16 only once.
  Type inputType = weightType.getElementType();
  VectorType inputVec = VectorType::get({w}, inputType);
  Value packed = memref::AllocOp::create(
      b, loc, MemRefType::get({nc / chunk, shape.kBlock, chunk}, f32),
      ValueRange{}, b.getI64IntegerAttr(64));

  forLoop(idx(0), idx(nSize), idx(nc), [&](Value jc) {
    Value jEnd = min(add(jc, idx(nc)), idx(nSize));
    forLoop(idx(0), idx(kSize), idx(shape.kBlock), [&](Value pc) {
      Value kEnd = min(add(pc, idx(shape.kBlock)), idx(kSize));
      forLoop(pc, kEnd, idx(1), [&](Value k) {
        forLoop(jc, jEnd, idx(w), [&](Value j) {
          Value x = vector::LoadOp::create(b, loc, inputVec, weight,
                                           ValueRange{k, j});
          if (inputType != f32)
            x = arith::ExtFOp::create(b, loc, vecType, x);
          Value rel = arith::SubIOp::create(b, loc, j, jc);
          vector::StoreOp::create(
              b, loc, x, packed,
              ValueRange{arith::DivUIOp::create(b, loc, rel, idx(chunk)),
                         arith::SubIOp::create(b, loc, k, pc),
                         arith::RemUIOp::create(b, loc, rel, idx(chunk))});
        });
      });
      // All threads share this weight block while sweeping the rows.
      auto forall = scf::ForallOp::create(
          b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{rowBlocks},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)}, ValueRange{},
          std::nullopt);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(forall.getBody()->getTerminator());
      Value r0 = mul(forall.getInductionVar(0), idx(mr));
      Value valid = min(idx(mr), arith::SubIOp::create(b, loc, rows, r0));
      auto rowsOf = [&](int64_t count, Value first) {
        SmallVector<Value> batchIdx, rowIdx;
        for (int64_t i = 0; i < count; ++i) {
          Value r = add(first, idx(i));
          batchIdx.push_back(arith::DivUIOp::create(b, loc, r, len));
          rowIdx.push_back(arith::RemUIOp::create(b, loc, r, len));
        }
        return std::make_pair(batchIdx, rowIdx);
      };
      // Full column chunks, then single vectors up to the block's end.
      Value fullEnd = add(
          jc,
          mul(arith::DivUIOp::create(
                  b, loc, arith::SubIOp::create(b, loc, jEnd, jc), idx(chunk)),
              idx(chunk)));
      auto columns = [&](ArrayRef<Value> batchIdx, ArrayRef<Value> rowIdx) {
        forLoop(jc, fullEnd, idx(chunk), [&](Value col) {
          kernel(batchIdx, rowIdx, col, shape.vectors, pc, kEnd, packed, jc);
        });
        forLoop(fullEnd, jEnd, idx(w), [&](Value col) {
          kernel(batchIdx, rowIdx, col, 1, pc, kEnd, packed, jc);
        });
      };
      Value full = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         valid, idx(mr));
      auto ifOp = scf::IfOp::create(b, loc, full, /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        auto [batchIdx, rowIdx] = rowsOf(mr, r0);
        columns(batchIdx, rowIdx);
        b.setInsertionPointToStart(ifOp.elseBlock());
        forLoop(idx(0), valid, idx(1), [&](Value i) {
          auto [oneBatch, oneRow] = rowsOf(1, add(r0, i));
          columns(oneBatch, oneRow);
        });
      }
    });
  });
  memref::DeallocOp::create(b, loc, packed);
}

namespace {
struct LowerProjectionsPass
    : public sqa::impl::LowerProjectionsBase<LowerProjectionsPass> {
  using Base::Base;
  void runOnOperation() override {
    // The micro-kernel is unrolled mr x nr times; the blocks size a scratch
    // buffer of kc x nc f32.
    if (failed(emitOptionErrors(
            getOperation(),
            {checkOptionRange("vector-width", vectorWidth, 1, kMaxVectorWidth),
             checkOptionRange("mr", rowsPerKernel, 1, kMaxRowsPerKernel),
             checkOptionRange("nr", vectorsPerKernel, 1, kMaxVectorsPerKernel),
             checkOptionRange("kc", kBlock, 1, kMaxBlock),
             checkOptionRange("nc", nBlock, 1, kMaxBlock)})))
      return signalPassFailure();
    GemmShape shape{vectorWidth, rowsPerKernel, vectorsPerKernel, kBlock,
                    nBlock};
    SmallVector<linalg::BatchMatmulOp> ops;
    getOperation()->walk([&](linalg::BatchMatmulOp op) {
      if (isProjection(op, vectorWidth))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::BatchMatmulOp op : ops) {
      // Column blocks round N up to whole chunks: N must stay far from
      // int64's limit (it does for any weight that fits in memory).
      auto weightType = cast<MemRefType>(op.getDpsInputs()[1].getType());
      int64_t k = weightType.getDimSize(0), n = weightType.getDimSize(1);
      std::optional<int64_t> bytes = llvm::checkedMul(k, n);
      if (bytes)
        bytes = llvm::checkedMul(*bytes, int64_t(4));
      if (!bytes || n > std::numeric_limits<int64_t>::max() / 2) {
        op.emitOpError() << "weight of " << k << " x " << n
                         << " elements is too large to index in int64";
        return signalPassFailure();
      }
      rewriter.setInsertionPoint(op);
      GemmBuilder(rewriter, op, shape).build();
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
