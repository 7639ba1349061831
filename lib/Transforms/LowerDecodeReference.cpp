//===- LowerDecodeReference.cpp - Naive sqa.decode lowering ---------------===//
//
// The oracle for the split-KV kernel: per batch row, output head and query
// row, a max pass, an exp-sum-and-accumulate pass and a normalization over
// the row's valid keys, in scalar f32. Obvious rather than fast.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/Passes.h"

#include "DecodeSupport.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

namespace mlir::sqa {
#define GEN_PASS_DEF_LOWERDECODEREFERENCE
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

static void lowerDecodeReference(RewriterBase &rewriter, DecodeOp op) {
  LoweringBuilder d(rewriter, op.getLoc());
  Location loc = op.getLoc();
  using Softmax = OnlineSoftmax<LoweringBuilder>;
  auto load = [&](Value memref, ValueRange indices) {
    return d.toF32(memref::LoadOp::create(rewriter, loc, memref, indices));
  };
  Type f32 = rewriter.getF32Type();
  Type elementType = op.getOutType().getElementType();
  HeadMapping heads = op.getHeadMapping();
  MaskBounds mask = MaskBounds::get(op.getEffectiveMask());
  int64_t headDim = op.getHeadDim(), valueDim = op.getValueHeadDim();
  Value batchSize = memref::DimOp::create(rewriter, loc, op.getQuery(), 0);
  Value newLen = memref::DimOp::create(rewriter, loc, op.getQuery(), 2);
  Value scale = d.f32(op.getScaleOrDefault());
  float inf = std::numeric_limits<float>::infinity();

  appendNewTokens(d, op, batchSize, newLen);
  Value acc =
      memref::AllocOp::create(rewriter, loc, MemRefType::get({valueDim}, f32));
  d.forLoop(d.index(0), batchSize, 1, [&](Value batch) {
    Value valid = validLength(d, op, batch, newLen);
    d.forLoop(d.index(0), d.index(heads.outputHeads()), 1, [&](Value head) {
      Value queryHead = heads.queryHeadOf(d, head);
      Value kvHead = heads.kvHeadOf(d, head);
      d.forLoop(d.index(0), newLen, 1, [&](Value i) {
        Value diagonal = d.add(d.sub(valid, newLen), i);
        // Visible keys' scores; hidden keys are -inf.
        auto score = [&](Value key) {
          Value dot = d.forLoop(
              d.index(0), d.index(headDim), 1, ValueRange{d.f32(0.0f)},
              [&](Value c, ValueRange sum) -> SmallVector<Value> {
                Value q = load(op.getQuery(), {batch, queryHead, i, c});
                Value k = load(op.getKeyCache(), {batch, kvHead, key, c});
                return {d.addF(sum[0], d.mulF(q, k))};
              })[0];
          Value visible = isKeyVisible(d, mask, diagonal, key);
          return d.select(visible, d.mulF(dot, scale), d.f32(-inf));
        };
        Value rowMax =
            d.forLoop(d.index(0), valid, 1, ValueRange{d.f32(-inf)},
                      [&](Value key, ValueRange m) {
                        return SmallVector<Value>{d.maxF(m[0], score(key))};
                      })[0];
        Value shift = Softmax::shift(d, rowMax);
        Softmax::Exponential exp{[&](Value x) { return d.exp(x); },
                                 /*zeroAtNegInf=*/false};
        d.forLoop(d.index(0), d.index(valueDim), 1, [&](Value c) {
          memref::StoreOp::create(rewriter, loc, d.f32(0.0f), acc,
                                  ValueRange{c});
        });
        Value sum = d.forLoop(
            d.index(0), valid, 1, ValueRange{d.f32(0.0f)},
            [&](Value key, ValueRange l) -> SmallVector<Value> {
              Value p = Softmax::probability(d, score(key), shift, exp);
              d.forLoop(d.index(0), d.index(valueDim), 1, [&](Value c) {
                Value v = load(op.getValueCache(), {batch, kvHead, key, c});
                Value a =
                    memref::LoadOp::create(rewriter, loc, acc, ValueRange{c});
                memref::StoreOp::create(rewriter, loc, d.addF(a, d.mulF(p, v)),
                                        acc, ValueRange{c});
              });
              return {d.addF(l[0], p)};
            })[0];
        Value inverse = Softmax::normalizer(d, sum);
        d.forLoop(d.index(0), d.index(valueDim), 1, [&](Value c) {
          Value y =
              d.mulF(memref::LoadOp::create(rewriter, loc, acc, ValueRange{c}),
                     inverse);
          if (elementType != f32)
            y = arith::TruncFOp::create(rewriter, loc, elementType, y);
          memref::StoreOp::create(rewriter, loc, y, op.getOut(),
                                  ValueRange{batch, head, i, c});
        });
      });
    });
  });
  memref::DeallocOp::create(rewriter, loc, acc);
}

namespace {
struct LowerDecodeReferencePass
    : public sqa::impl::LowerDecodeReferenceBase<LowerDecodeReferencePass> {
  void runOnOperation() override {
    SmallVector<DecodeOp> ops;
    getOperation()->walk([&](DecodeOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (DecodeOp op : ops) {
      rewriter.setInsertionPoint(op);
      lowerDecodeReference(rewriter, op);
      rewriter.eraseOp(op);
    }
  }
};
} // namespace
