//===- DecodeSupport.h - What every sqa.decode lowering shares ------------===//
//
// The parts of sqa.decode's semantics that are not attention rules: a batch
// row's valid length and the append of the new tokens. Both lowerings (the
// reference and the split-KV kernel) call these, so they cannot disagree.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_DECODESUPPORT_H
#define SQA_TRANSFORMS_DECODESUPPORT_H

#include "SQA/IR/SQAOps.h"
#include "SQA/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::sqa {

/// `cache_lens[batch]` as an index.
inline Value cachedLength(LoweringBuilder &d, DecodeOp op, Value batch) {
  OpBuilder &b = d.getBuilder();
  Value length = memref::LoadOp::create(b, d.getLoc(), op.getCacheLens(),
                                        ValueRange{batch});
  return arith::IndexCastOp::create(b, d.getLoc(), b.getIndexType(), length);
}

/// The keys batch row `batch` attends to: its cached tokens plus the
/// appended ones. Query row i's diagonal is `valid - newLen + i`.
inline Value validLength(LoweringBuilder &d, DecodeOp op, Value batch,
                         Value newLen) {
  Value cached = cachedLength(d, op, batch);
  return op.hasAppend() ? d.add(cached, newLen) : cached;
}

/// Copies key_new/value_new into the caches at [cache_lens[b], +newLen),
/// element by element in the element type (bit-exact).
inline void appendNewTokens(LoweringBuilder &d, DecodeOp op, Value batchSize,
                            Value newLen) {
  if (!op.hasAppend())
    return;
  OpBuilder &b = d.getBuilder();
  Location loc = d.getLoc();
  std::pair<Value, Value> pairs[] = {{op.getKeyNew(), op.getKeyCache()},
                                     {op.getValueNew(), op.getValueCache()}};
  d.forLoop(d.index(0), batchSize, 1, [&](Value batch) {
    Value start = cachedLength(d, op, batch);
    d.forLoop(d.index(0), d.index(op.getNumKVHeads()), 1, [&](Value head) {
      d.forLoop(d.index(0), newLen, 1, [&](Value i) {
        for (auto [source, cache] : pairs) {
          int64_t dim = cast<MemRefType>(source.getType()).getDimSize(3);
          d.forLoop(d.index(0), d.index(dim), 1, [&](Value c) {
            Value x = memref::LoadOp::create(b, loc, source,
                                             ValueRange{batch, head, i, c});
            memref::StoreOp::create(
                b, loc, x, cache, ValueRange{batch, head, d.add(start, i), c});
          });
        }
      });
    });
  });
}

} // namespace mlir::sqa

#endif // SQA_TRANSFORMS_DECODESUPPORT_H
