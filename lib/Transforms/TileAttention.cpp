//===- TileAttention.cpp - Tile sqa.attention into an scf.forall ----------===//

#include "sqa/Transforms/OptionLimits.h"
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

/// Rows (stacked heads x query rows) beyond which a tile's scratch no longer
/// fits the L2 cache of the machines we target.
static constexpr int64_t kMaxTileRows = 256;

namespace {
struct TileAttentionPass
    : public sqa::impl::TileAttentionBase<TileAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    // A tile is meant to fit a cache; the bounds keep the tile loops' index
    // math (offset + tile) far from int64's limit.
    if (failed(emitOptionErrors(
            getOperation(),
            {checkOptionRange("query-tile", queryTile, 1, kMaxQueryTile),
             checkOptionRange("head-tile", headTile, 0, kMaxHeads)})))
      return signalPassFailure();
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) {
      if (op.hasPureTensorSemantics())
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      int64_t groupSize =
          op.isReverse() ? 1 : op.getNumQueryHeads() / op.getNumKVHeads();
      // By default a tile stacks as many heads of one group as keep it at
      // most 256 rows (scores, accumulator and stacked queries stay in
      // L2), using the largest divisor of the group that fits.
      int64_t heads = headTile;
      if (heads <= 0) {
        int64_t fit = std::max<int64_t>(1, kMaxTileRows / queryTile);
        heads = 1;
        for (int64_t d = 1; d <= groupSize; ++d)
          if (groupSize % d == 0 && d <= fit)
            heads = d;
      }
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
