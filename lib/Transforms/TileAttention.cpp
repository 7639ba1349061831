//===- TileAttention.cpp - Tile sqa.attention into an scf.forall ----------===//

#include "sqa/Transforms/Passes.h"

#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_TILEATTENTION
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;
using namespace mlir::sqa;

namespace {
struct TileAttentionPass
    : public sqa::impl::TileAttentionBase<TileAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    if (queryTile <= 0) {
      emitError(getOperation()->getLoc()) << "query-tile must be positive, got "
                                          << static_cast<int64_t>(queryTile);
      return signalPassFailure();
    }
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) {
      if (op.hasPureTensorSemantics())
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      int64_t groupSize =
          op.isReverse() ? 1 : op.getNumQueryHeads() / op.getNumKVHeads();
      int64_t heads = headTile > 0 ? static_cast<int64_t>(headTile) : groupSize;
      if (op.getNumOutputHeads() % heads != 0) {
        op.emitOpError() << "head tile (" << heads
                         << ") must divide the output heads ("
                         << op.getNumOutputHeads() << ")";
        return signalPassFailure();
      }
      scf::SCFTilingOptions options;
      options.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
      options.setTileSizes({rewriter.getIndexAttr(1),
                            rewriter.getIndexAttr(heads),
                            rewriter.getIndexAttr(queryTile)});
      rewriter.setInsertionPoint(op);
      FailureOr<scf::SCFTilingResult> tiled = scf::tileUsingSCF(
          rewriter, cast<TilingInterface>(op.getOperation()), options);
      if (failed(tiled))
        return signalPassFailure();
      rewriter.replaceOp(op, tiled->replacements);
    }
  }
};
} // namespace
