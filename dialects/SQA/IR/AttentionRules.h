//===- AttentionRules.h - The one definition of each attention rule -------===//
//
// Every lowering of sqa.attention (the reference oracle, the CPU flash
// kernel, the GPU kernels, and the backward and decode kernels built on
// them) asks the same questions: which keys a query sees, which key blocks a
// block of queries must visit and which of them need element masks, which
// query and key/value head an output head uses, and how a row's softmax is
// accumulated block by block. Each answer is written once here.
//
// The rules are templates over an arithmetic "domain", so one definition
// serves both compile-time evaluation (ScalarDomain: int64_t / bool / double,
// used by MaskAttr::isVisible, verifiers and the drivers) and IR
// construction (sqa::LoweringBuilder in SQA/Utils: index / i1 / f32 Values,
// scalar or vector). A domain provides:
//
//   Int  index(int64_t)       Int add/sub/mul(Int, Int)
//   Int  floorDiv/ceilDiv(Int, int64_t)   Int minS/maxS(Int, Int)
//   Int  divU(Int, int64_t) (operands known non-negative)
//   Bool slt/sle/sgt/sge(Int, Int)        Bool andI/orI(Bool, Bool)
//   Bool trueValue()          Int select(Bool, Int, Int)
//   Float floatLike(Float, double)        Float addF/subF/mulF/divF(..)
//   Float maxF(Float, Float)  Float log(Float)
//   Bool isNegInf(Float)      Bool isPositive(Float)
//   Float selectF(Bool, Float, Float)
//
//===----------------------------------------------------------------------===//

#ifndef SQA_IR_ATTENTIONRULES_H
#define SQA_IR_ATTENTIONRULES_H

#include "SQA/IR/SQAAttrs.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>

namespace mlir::sqa {

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

/// The keys a query sees, relative to its diagonal (the key position of the
/// query row: `queryPos + diagonalOffset`): keys in
/// [diagonal - left, diagonal + right], each bound only when >= 0. This is
/// the one reading of #sqa.mask; causal is a right bound of 0.
struct MaskBounds {
  int64_t left = -1, right = -1;

  static MaskBounds get(MaskAttr mask) {
    if (!mask)
      return {};
    return {mask.getWindowLeft(), mask.getEffectiveRightBound()};
  }
  bool isRestrictive() const { return left >= 0 || right >= 0; }
};

/// Whether `key` is visible from a query whose diagonal is `diagonal`.
template <typename D>
typename D::Bool isKeyVisible(D &d, MaskBounds mask, typename D::Int diagonal,
                              typename D::Int key) {
  typename D::Bool visible = d.trueValue();
  if (mask.right >= 0)
    visible = d.andI(visible, d.sle(key, d.add(diagonal, d.index(mask.right))));
  if (mask.left >= 0)
    visible = d.andI(visible, d.sge(key, d.sub(diagonal, d.index(mask.left))));
  return visible;
}

/// Key blocks [first, end) of `blockSize` keys, among `keyLen` keys, that some
/// query with a diagonal in [firstDiagonal, lastDiagonal] sees. Blocks
/// outside are skipped by every kernel; `end >= first` always.
template <typename D>
std::pair<typename D::Int, typename D::Int>
keyBlockRange(D &d, MaskBounds mask, typename D::Int firstDiagonal,
              typename D::Int lastDiagonal, typename D::Int keyLen,
              int64_t blockSize) {
  typename D::Int firstKey = d.index(0), endKey = keyLen;
  if (mask.left >= 0)
    firstKey = d.maxS(d.index(0), d.sub(firstDiagonal, d.index(mask.left)));
  if (mask.right >= 0)
    endKey = d.minS(keyLen, d.add(lastDiagonal, d.index(mask.right + 1)));
  typename D::Int first = d.floorDiv(firstKey, blockSize);
  return {first, d.maxS(first, d.ceilDiv(endKey, blockSize))};
}

/// Whether the block of `blockSize` keys starting at `keyStart` needs element
/// masks for queries with diagonals in [firstDiagonal, lastDiagonal]: it runs
/// past `keyLen`, or some of those queries see only part of it.
template <typename D>
typename D::Bool blockNeedsMask(D &d, MaskBounds mask, typename D::Int keyStart,
                                int64_t blockSize, typename D::Int keyLen,
                                typename D::Int firstDiagonal,
                                typename D::Int lastDiagonal) {
  typename D::Bool partial = d.sgt(d.add(keyStart, d.index(blockSize)), keyLen);
  if (mask.right >= 0)
    partial = d.orI(partial, d.sgt(d.add(keyStart, d.index(blockSize - 1)),
                                   d.add(firstDiagonal, d.index(mask.right))));
  if (mask.left >= 0)
    partial = d.orI(partial,
                    d.slt(keyStart, d.sub(lastDiagonal, d.index(mask.left))));
  return partial;
}

//===----------------------------------------------------------------------===//
// Heads
//===----------------------------------------------------------------------===//

/// Which query and key/value head each output head uses (PyTorch's
/// repeat_interleave). With Hq >= Hkv the output has Hq heads and output
/// head h is query head h and kv head h / (Hq / Hkv); reverse SQA
/// (Hkv > Hq) has Hkv output heads: kv head h and query head h / (Hkv / Hq).
/// The output heads of one kv head are consecutive: kernels stack them so
/// that K/V are read once per group.
struct HeadMapping {
  int64_t queryHeads = 1, kvHeads = 1;

  int64_t outputHeads() const { return std::max(queryHeads, kvHeads); }
  bool isReverse() const { return kvHeads > queryHeads; }
  /// Heads shared one-to-one by both sides: min(Hq, Hkv).
  int64_t sharedHeads() const { return std::min(queryHeads, kvHeads); }
  /// Output heads per shared head: max / min.
  int64_t groupSize() const { return outputHeads() / sharedHeads(); }
  int64_t outputsPerQueryHead() const { return outputHeads() / queryHeads; }
  int64_t outputsPerKVHead() const { return outputHeads() / kvHeads; }

  template <typename D>
  typename D::Int queryHeadOf(D &d, typename D::Int outputHead) const {
    return d.divU(outputHead, outputsPerQueryHead());
  }
  template <typename D>
  typename D::Int kvHeadOf(D &d, typename D::Int outputHead) const {
    return d.divU(outputHead, outputsPerKVHead());
  }
  /// The first of the `outputsPerKVHead()` output heads of a kv head.
  template <typename D>
  typename D::Int firstOutputHeadOfKV(D &d, typename D::Int kvHead) const {
    return d.mul(kvHead, d.index(outputsPerKVHead()));
  }
  /// The first of the `outputsPerQueryHead()` output heads of a query head
  /// (several for reverse SQA; a backward sums dQ over them).
  template <typename D>
  typename D::Int firstOutputHeadOfQuery(D &d,
                                         typename D::Int queryHead) const {
    return d.mul(queryHead, d.index(outputsPerQueryHead()));
  }
};

//===----------------------------------------------------------------------===//
// Softmax
//===----------------------------------------------------------------------===//

/// The kernels' softmax runs in base 2 (exp2 is one instruction on GPUs and
/// the cheaper polynomial on CPUs): exp(x) = exp2(x * log2(e)), so Q or the
/// scores are pre-scaled by scale * log2(e), and a natural-log lse is
/// multiplied by log2(e) before it shifts base-2 scores.
inline constexpr double kLog2E = 1.4426950408889634;
/// log2(e) rounded to f32, for factors computed in f32 arithmetic (the GPU
/// specs hold an f32 scale): keeps their rounding exactly as it was.
inline constexpr float kLog2EF32 = static_cast<float>(kLog2E);

/// The online softmax of one row (FlashAttention): a running maximum m, a
/// running sum l of exp(s - m) and an accumulator O rescaled whenever m
/// grows. Scores of hidden keys are -inf.
template <typename D> struct OnlineSoftmax {
  using Float = typename D::Float;
  /// The kernel's exponential: natural, or base 2 on scores pre-scaled by
  /// log2(e). Where it is not known to give 0 at -inf (polynomial
  /// approximations), the rules guard it; hardware ex2 needs no guard.
  struct Exponential {
    std::function<Float(Float)> fn;
    bool zeroAtNegInf = false;
  };

  /// What scores are shifted by: the row maximum, or 0 while the row has
  /// seen only hidden keys (m = -inf), so that exp never sees -inf - -inf.
  static Float shift(D &d, Float rowMax) {
    return d.selectF(d.isNegInf(rowMax), d.floatLike(rowMax, 0.0), rowMax);
  }
  /// exp(score - shift), 0 for a hidden key.
  static Float probability(D &d, Float score, Float shift, Exponential exp) {
    Float p = exp.fn(d.subF(score, shift));
    if (exp.zeroAtNegInf)
      return p;
    return d.selectF(d.isNegInf(score), d.floatLike(score, 0.0), p);
  }
  /// Factor that rescales the sum and accumulator when the maximum moves
  /// from `oldMax` to `newMax`: exp(oldMax - shift(newMax)), 0 if the row
  /// had seen nothing yet.
  static Float rescale(D &d, Float oldMax, Float newMax, Exponential exp) {
    return probability(d, oldMax, shift(d, newMax), exp);
  }
  /// l' = alpha * l + (sum of the block's probabilities).
  static Float nextSum(D &d, Float alpha, Float oldSum, Float blockSum) {
    return d.addF(d.mulF(alpha, oldSum), blockSum);
  }
  /// Two partial states of one row over disjoint key sets (split-KV
  /// decode), merged: the common maximum, the factors that rescale each
  /// side's sum and accumulator to it (OnlineSoftmax's rescale; 0 for a side
  /// that saw no key), and the merged sum. Merging in a fixed order makes
  /// the result independent of how the splits were scheduled.
  struct Merged {
    Float max, alphaA, alphaB, sum;
  };
  static Merged merge(D &d, Float maxA, Float sumA, Float maxB, Float sumB,
                      Exponential exp) {
    Float m = d.maxF(maxA, maxB);
    Float a = rescale(d, maxA, m, exp), b = rescale(d, maxB, m, exp);
    return {m, a, b, d.addF(d.mulF(a, sumA), d.mulF(b, sumB))};
  }
  /// What the accumulator is multiplied by at the end: 1 / l, or 0 for a row
  /// that saw no key (its output is 0, never NaN).
  static Float normalizer(D &d, Float sum) {
    return d.selectF(d.isPositive(sum), d.divF(d.floatLike(sum, 1.0), sum),
                     d.floatLike(sum, 0.0));
  }
  /// The row's logsumexp in the natural-log domain, given m and l of the
  /// natural-exp recurrence: m + log(l), or -inf for a row that saw no key.
  static Float logSumExp(D &d, Float rowMax, Float sum) {
    return d.selectF(
        d.isPositive(sum), d.addF(rowMax, d.log(sum)),
        d.floatLike(sum, -std::numeric_limits<double>::infinity()));
  }

  // The backward pass (FlashAttention-2): probabilities are recomputed from
  // the forward's logsumexp instead of being stored.

  /// P = exp(score - lse), 0 for a hidden key and for every key of a row
  /// that saw none (lse = -inf: the shift is 0 and its scores are -inf).
  /// `lse` must be in the domain of `exp` (times log2(e) for base 2).
  static Float probabilityFromLogSumExp(D &d, Float score, Float lse,
                                        Exponential exp) {
    return probability(d, score, shift(d, lse), exp);
  }
  /// The gradient of a softmax input: dS = P * (dP - Delta), where dP is
  /// the gradient of P (d_out . v) and Delta = rowsum(d_out * out) =
  /// rowsum(P * dP).
  static Float scoreGradient(D &d, Float p, Float dp, Float delta) {
    return d.mulF(p, d.subF(dp, delta));
  }
};

//===----------------------------------------------------------------------===//
// The compile-time domain
//===----------------------------------------------------------------------===//

/// Plain integers, booleans and doubles: evaluates a rule where every input
/// is known (attributes, verifiers, drivers, tests).
struct ScalarDomain {
  using Int = int64_t;
  using Bool = bool;
  using Float = double;

  Int index(int64_t v) { return v; }
  Int add(Int x, Int y) { return x + y; }
  Int sub(Int x, Int y) { return x - y; }
  Int mul(Int x, Int y) { return x * y; }
  Int floorDiv(Int x, int64_t y) {
    Int q = x / y;
    return (x % y != 0 && ((x < 0) != (y < 0))) ? q - 1 : q;
  }
  Int ceilDiv(Int x, int64_t y) { return -floorDiv(-x, y); }
  Int divU(Int x, int64_t y) { return x / y; }
  Int minS(Int x, Int y) { return std::min(x, y); }
  Int maxS(Int x, Int y) { return std::max(x, y); }
  Bool slt(Int x, Int y) { return x < y; }
  Bool sle(Int x, Int y) { return x <= y; }
  Bool sgt(Int x, Int y) { return x > y; }
  Bool sge(Int x, Int y) { return x >= y; }
  Bool andI(Bool x, Bool y) { return x && y; }
  Bool orI(Bool x, Bool y) { return x || y; }
  Bool trueValue() { return true; }
  Int select(Bool c, Int x, Int y) { return c ? x : y; }

  Float floatLike(Float, double v) { return v; }
  Float addF(Float x, Float y) { return x + y; }
  Float subF(Float x, Float y) { return x - y; }
  Float mulF(Float x, Float y) { return x * y; }
  Float divF(Float x, Float y) { return x / y; }
  Float maxF(Float x, Float y) { return std::max(x, y); }
  Float log(Float x) { return std::log(x); }
  Bool isNegInf(Float x) {
    return x == -std::numeric_limits<double>::infinity();
  }
  Bool isPositive(Float x) { return x > 0; }
  Float selectF(Bool c, Float x, Float y) { return c ? x : y; }
};

} // namespace mlir::sqa

#endif // SQA_IR_ATTENTIONRULES_H
