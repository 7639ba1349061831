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

/// `lens[batch]` (an i64 memref: the op's cache_lens or a kernel's view of
/// it) as an index.
inline Value cachedLength(LoweringBuilder &d, Value lens, Value batch) {
  OpBuilder &b = d.getBuilder();
  Value length = memref::LoadOp::create(b, d.getLoc(), lens, ValueRange{batch});
  return arith::IndexCastOp::create(b, d.getLoc(), b.getIndexType(), length);
}
inline Value cachedLength(LoweringBuilder &d, DecodeOp op, Value batch) {
  return cachedLength(d, op.getCacheLens(), batch);
}

/// The keys a batch row attends to: its cached tokens plus the appended
/// ones. Query row i's diagonal is `valid - newLen + i`.
inline Value validLength(LoweringBuilder &d, bool append, Value cached,
                         Value newLen) {
  return append ? d.add(cached, newLen) : cached;
}
inline Value validLength(LoweringBuilder &d, DecodeOp op, Value batch,
                         Value newLen) {
  return validLength(d, op.hasAppend(), cachedLength(d, op, batch), newLen);
}

/// Whether a row's lengths are in range: 0 <= cached and valid <= capacity.
/// Host entries check this before the call; a GPU kernel, whose lengths sit
/// in device memory, checks it itself.
inline Value lengthsInRange(LoweringBuilder &d, Value cached, Value valid,
                            Value capacity) {
  return d.andI(d.sge(cached, d.index(0)), d.sle(valid, capacity));
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
        for (const auto &pair : pairs) {
          // Named values, not a structured binding: the loop lambda
          // captures them.
          Value source = pair.first, cache = pair.second;
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
