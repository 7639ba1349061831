//===- SQAOps.cpp - SQA operations ----------------------------------------===//

#include "SQA/IR/SQAOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <cmath>
#include <type_traits>

using namespace mlir;
using namespace mlir::sqa;

#define GET_OP_CLASSES
#include "SQA/IR/SQAOps.cpp.inc"

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

namespace {
/// Names of the BHSD dimensions of each operand, for diagnostics.
struct OperandLayout {
  StringRef name;
  StringRef shape;
};
} // namespace

static bool isSupportedElementType(Type type) {
  return type.isF32() || type.isF16() || type.isBF16();
}

/// Checks that dimension `dim` of `a` and `b` agree where both are static.
static LogicalResult verifyDimsAgree(Operation *op, ShapedType a,
                                     StringRef aName, ShapedType b,
                                     StringRef bName, unsigned dim,
                                     StringRef what) {
  int64_t sa = a.getDimSize(dim), sb = b.getDimSize(dim);
  if (ShapedType::isDynamic(sa) || ShapedType::isDynamic(sb) || sa == sb)
    return success();
  return op->emitOpError() << bName << " " << what << " (" << sb
                           << ") must match " << aName << " " << what << " ("
                           << sa << ")";
}

static std::string formatShape(ArrayRef<int64_t> shape);

/// Rejects a static shape whose element count, byte size or (for a strided
/// memref) largest linear index does not fit int64: every lowering computes
/// them in int64. Dynamic dims are checked by the callers at run time.
static LogicalResult verifyStaticExtent(Operation *op, StringRef name,
                                        ShapedType type, int64_t elementBytes) {
  int64_t count = 1;
  for (int64_t size : type.getShape()) {
    if (ShapedType::isDynamic(size))
      continue;
    std::optional<int64_t> next = llvm::checkedMul(count, size);
    if (!next)
      return op->emitOpError() << name << " " << formatShape(type.getShape())
                               << " has more elements than int64 can count ("
                               << count << " x " << size << " overflows)";
    count = *next;
  }
  if (!llvm::checkedMul(count, elementBytes))
    return op->emitOpError()
           << name << " " << formatShape(type.getShape()) << " is " << count
           << " elements of " << elementBytes
           << " bytes: the byte size overflows int64";
  auto memref = dyn_cast<MemRefType>(type);
  if (!memref || !memref.hasStaticShape())
    return success();
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(memref.getStridesAndOffset(strides, offset)) ||
      ShapedType::isDynamic(offset) ||
      llvm::any_of(strides, ShapedType::isDynamic))
    return success();
  // The largest element index: offset + sum((size - 1) * |stride|).
  std::optional<int64_t> last = offset;
  for (auto [size, stride] : llvm::zip_equal(memref.getShape(), strides)) {
    std::optional<int64_t> step =
        stride == std::numeric_limits<int64_t>::min()
            ? std::nullopt
            : llvm::checkedMul(size - 1, stride < 0 ? -stride : stride);
    last = step && last ? llvm::checkedAdd(*last, *step) : std::nullopt;
  }
  if (!last || !llvm::checkedMul(*last, elementBytes))
    return op->emitOpError() << name << " " << type
                             << ": its largest element offset overflows int64";
  return success();
}

/// Element size in bytes of the (already verified) float element type.
static int64_t elementBytes(ShapedType type) {
  return std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
}

/// Value semantics (tensors, `numTensorResults` results) or buffer semantics
/// (memrefs, no result), never a mix: the ops that consume either form rely
/// on it.
static LogicalResult verifySemantics(Operation *op, ArrayRef<Value> shaped,
                                     unsigned numTensorResults) {
  bool allTensors = llvm::all_of(
      shaped, [](Value v) { return isa<RankedTensorType>(v.getType()); });
  bool allMemRefs = llvm::all_of(
      shaped, [](Value v) { return isa<MemRefType>(v.getType()); });
  if (!allTensors && !allMemRefs)
    return op->emitOpError() << "operands must be all ranked tensors or all "
                                "ranked memrefs";
  if (allTensors && op->getNumResults() != numTensorResults)
    return op->emitOpError() << "on tensors must return "
                             << (numTensorResults == 1   ? "one result"
                                 : numTensorResults == 2 ? "two results"
                                                         : "three results")
                             << ", got " << op->getNumResults();
  if (allMemRefs && op->getNumResults() != 0)
    return op->emitOpError()
           << "on memrefs must not return results, got " << op->getNumResults();
  return success();
}

/// The rules sqa.attention and sqa.attention_backward share: element types,
/// the BHSD ranks, static heads and head dims within the limits, agreeing
/// dims, the head ratio, the scale and the head configuration. `out` is the
/// forward's result (the init of sqa.attention).
static LogicalResult
verifyAttentionOperands(Operation *op, ShapedType queryType, ShapedType keyType,
                        ShapedType valueType, ShapedType outType,
                        StringRef outName, FloatAttr scale, HeadsAttr heads) {
  Type elementType = queryType.getElementType();
  if (!isSupportedElementType(elementType))
    return op->emitOpError() << "element type " << elementType
                             << " is not supported; expected f32, f16 or bf16";
  std::pair<StringRef, ShapedType> others[] = {
      {"key", keyType}, {"value", valueType}, {outName, outType}};
  for (auto [name, type] : others)
    if (type.getElementType() != elementType)
      return op->emitOpError()
             << name << " element type " << type.getElementType()
             << " must match query element type " << elementType;

  // Rank, then the dimensions a kernel is specialized on: heads and head dim.
  std::string outShape = "[B, max(Hq, Hkv), S, Dv]";
  OperandLayout layouts[] = {{"query", "[B, Hq, S, D]"},
                             {"key", "[B, Hkv, T, D]"},
                             {"value", "[B, Hkv, T, Dv]"},
                             {outName, outShape}};
  ShapedType types[] = {queryType, keyType, valueType, outType};
  for (auto [layout, type] : llvm::zip_equal(layouts, types)) {
    if (type.getRank() != 4)
      return op->emitOpError()
             << layout.name << " must have rank 4 " << layout.shape
             << ", got rank " << type.getRank();
    for (auto [dim, what] : {std::pair<unsigned, StringRef>{1, "heads"},
                             std::pair<unsigned, StringRef>{3, "head dim"}}) {
      int64_t size = type.getDimSize(dim);
      if (ShapedType::isDynamic(size))
        return op->emitOpError()
               << layout.name << " " << what << " (dim " << dim << " of "
               << layout.shape << ") must be static";
      if (size <= 0)
        return op->emitOpError() << layout.name << " " << what
                                 << " must be positive, got " << size;
      int64_t limit = dim == 1 ? kMaxHeads : kMaxHeadDim;
      if (size > limit)
        return op->emitOpError()
               << layout.name << " " << what << " (" << size
               << ") exceeds the supported maximum (" << limit << ")";
    }
    // An empty batch or sequence has nothing to compute, and the kernels
    // assume at least one row and one key: static zeros are rejected here
    // (dynamic ones by the callers at run time).
    for (auto [dim, what] :
         {std::pair<unsigned, StringRef>{0, "batch size"},
          std::pair<unsigned, StringRef>{2, "sequence length"}})
      if (type.getDimSize(dim) == 0)
        return op->emitOpError()
               << layout.name << " " << what << " (dim " << dim << " of "
               << layout.shape << ") is a static 0; sizes must be positive";
    if (failed(verifyStaticExtent(op, layout.name, type, elementBytes(type))))
      return failure();
  }

  // Batch everywhere; sequence lengths and head dims pairwise.
  for (auto [name, type] : others)
    if (failed(verifyDimsAgree(op, queryType, "query", type, name, 0,
                               "batch size")))
      return failure();
  if (failed(verifyDimsAgree(op, queryType, "query", keyType, "key", 3,
                             "head dim")) ||
      failed(verifyDimsAgree(op, keyType, "key", valueType, "value", 1,
                             "heads")) ||
      failed(verifyDimsAgree(op, keyType, "key", valueType, "value", 2,
                             "sequence length")) ||
      failed(verifyDimsAgree(op, queryType, "query", outType, outName, 2,
                             "sequence length")) ||
      failed(verifyDimsAgree(op, valueType, "value", outType, outName, 3,
                             "head dim")))
    return failure();

  int64_t numQueryHeads = queryType.getDimSize(1),
          numKVHeads = keyType.getDimSize(1);
  if (numQueryHeads >= numKVHeads && numQueryHeads % numKVHeads != 0)
    return op->emitOpError()
           << "query heads (" << numQueryHeads
           << ") must be a multiple of key/value heads (" << numKVHeads << ")";
  if (numKVHeads > numQueryHeads && numKVHeads % numQueryHeads != 0)
    return op->emitOpError()
           << "key/value heads (" << numKVHeads
           << ") must be a multiple of query heads (" << numQueryHeads << ")";
  int64_t numOutputHeads = std::max(numQueryHeads, numKVHeads);
  if (outType.getDimSize(1) != numOutputHeads)
    return op->emitOpError()
           << outName << " heads (" << outType.getDimSize(1)
           << ") must equal max(query heads, key/value heads) = "
           << numOutputHeads;

  if (scale && !std::isfinite(scale.getValueAsDouble()))
    return op->emitOpError()
           << "scale must be finite, got " << scale.getValueAsDouble();

  if (heads) {
    if (heads.getQuery() != numQueryHeads)
      return op->emitOpError() << "query heads (" << numQueryHeads
                               << ") do not match the head configuration's ("
                               << heads.getQuery() << ")";
    if (heads.getKv() != numKVHeads)
      return op->emitOpError() << "key/value heads (" << numKVHeads
                               << ") do not match the head configuration's ("
                               << heads.getKv() << ")";
  }
  return success();
}

/// The logsumexp operand: f32 [B, max(Hq, Hkv), S], dims as `out`'s.
static LogicalResult verifyLse(Operation *op, ShapedType lseType,
                               ShapedType outType, StringRef outName) {
  if (lseType.getRank() != 3)
    return op->emitOpError()
           << "lse must have rank 3 [B, max(Hq, Hkv), S], got rank "
           << lseType.getRank();
  if (!lseType.getElementType().isF32())
    return op->emitOpError()
           << "lse element type " << lseType.getElementType() << " must be f32";
  for (auto [dim, what] :
       {std::pair<unsigned, StringRef>{0, "batch size"},
        std::pair<unsigned, StringRef>{1, "heads"},
        std::pair<unsigned, StringRef>{2, "sequence length"}})
    if (failed(
            verifyDimsAgree(op, outType, outName, lseType, "lse", dim, what)))
      return failure();
  return verifyStaticExtent(op, "lse", lseType, 4);
}

LogicalResult AttentionOp::verify() {
  SmallVector<Value> shaped = {getQuery(), getKey(), getValue(), getInit()};
  if (getLse())
    shaped.push_back(getLse());
  if (failed(verifySemantics(*this, shaped, getLse() ? 2 : 1)))
    return failure();
  ShapedType initType = getInitType();
  if (failed(verifyAttentionOperands(*this, getQueryType(), getKeyType(),
                                     getValueType(), initType, "init",
                                     getScaleAttr(), getHeadsAttr())))
    return failure();
  if (hasPureTensorSemantics() && getResult().getType() != initType)
    return emitOpError() << "result type " << getResult().getType()
                         << " must match init type " << initType;
  if (Value lse = getLse()) {
    if (failed(verifyLse(*this, cast<ShapedType>(lse.getType()), initType,
                         "init")))
      return failure();
    if (hasPureTensorSemantics() && getResults()[1].getType() != lse.getType())
      return emitOpError() << "lse result type " << getResults()[1].getType()
                           << " must match lse init type " << lse.getType();
  }
  return success();
}

/// Effects of a destination-style attention op: none on tensors; on buffers
/// it reads its inputs and writes its inits.
static void addDestinationStyleEffects(
    DestinationStyleOpInterface op,
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  if (!op.hasPureBufferSemantics())
    return;
  for (OpOperand *input : op.getDpsInputOperands())
    effects.emplace_back(MemoryEffects::Read::get(), input,
                         SideEffects::DefaultResource::get());
  for (OpOperand &init : op.getDpsInitsMutable())
    effects.emplace_back(MemoryEffects::Write::get(), &init,
                         SideEffects::DefaultResource::get());
}

/// The default scale rule of every attention op: `scale` if set, else
/// 1 / sqrt(D).
static float scaleOrDefault(FloatAttr scale, int64_t headDim) {
  if (scale)
    return static_cast<float>(scale.getValueAsDouble());
  return 1.0f / std::sqrt(static_cast<float>(headDim));
}

/// The mask if it hides anything, else null (every attention op).
static MaskAttr effectiveMask(MaskAttr mask) {
  return mask && mask.isRestrictive() ? mask : MaskAttr();
}

float AttentionOp::getScaleOrDefault() {
  return scaleOrDefault(getScaleAttr(), getHeadDim());
}

Value AttentionOp::getResult() {
  return getNumResults() ? getResults().front() : Value();
}

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  addDestinationStyleEffects(*this, effects);
}

MaskAttr AttentionOp::getEffectiveMask() {
  return effectiveMask(getMaskAttr());
}

/// Canonical form: a mask is present only if it hides keys and carries no
/// window bound that causal already implies; an explicit scale equal to the
/// default is dropped.
LogicalResult AttentionOp::canonicalize(AttentionOp op,
                                        PatternRewriter &rewriter) {
  bool changed = false;
  if (MaskAttr mask = op.getMaskAttr()) {
    MaskAttr canonical;
    if (mask.isRestrictive()) {
      int64_t right = mask.getWindowRight();
      if (mask.getCausal() && right >= 0)
        right = -1;
      canonical =
          MaskAttr::get(op.getContext(), mask.getCausal(), mask.getAlignment(),
                        mask.getWindowLeft(), right);
    }
    if (canonical != mask) {
      rewriter.modifyOpInPlace(op, [&] {
        if (canonical)
          op.setMaskAttr(canonical);
        else
          op.removeMaskAttr();
      });
      changed = true;
    }
  }
  if (FloatAttr scale = op.getScaleAttr()) {
    float defaultScale = 1.0f / std::sqrt(static_cast<float>(op.getHeadDim()));
    if (static_cast<float>(scale.getValueAsDouble()) == defaultScale) {
      rewriter.modifyOpInPlace(op, [&] { op.removeScaleAttr(); });
      changed = true;
    }
  }
  return success(changed);
}

//===----------------------------------------------------------------------===//
// AttentionBackwardOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionBackwardOp::verify() {
  if (failed(verifySemantics(*this,
                             {getQuery(), getKey(), getValue(), getOut(),
                              getDOut(), getLse(), getDQuery(), getDKey(),
                              getDValue()},
                             3)))
    return failure();
  ShapedType outType = getOutType();
  if (failed(verifyAttentionOperands(*this, getQueryType(), getKeyType(),
                                     getValueType(), outType, "out",
                                     getScaleAttr(), getHeadsAttr())))
    return failure();
  // d_out is shaped as out; each gradient as its primal.
  std::tuple<StringRef, Value, StringRef, ShapedType> pairs[] = {
      {"d_out", getDOut(), "out", outType},
      {"d_query", getDQuery(), "query", getQueryType()},
      {"d_key", getDKey(), "key", getKeyType()},
      {"d_value", getDValue(), "value", getValueType()}};
  for (auto [name, value, primalName, primal] : pairs) {
    auto type = cast<ShapedType>(value.getType());
    if (type.getElementType() != primal.getElementType())
      return emitOpError() << name << " element type " << type.getElementType()
                           << " must match " << primalName << " element type "
                           << primal.getElementType();
    if (type.getRank() != primal.getRank())
      return emitOpError() << name << " must have the rank of " << primalName
                           << " (" << primal.getRank() << "), got rank "
                           << type.getRank();
    for (unsigned dim = 0; dim < 4; ++dim) {
      int64_t a = type.getDimSize(dim), b = primal.getDimSize(dim);
      if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
        return emitOpError()
               << name << " dim " << dim << " (" << a << ") must match "
               << primalName << " dim " << dim << " (" << b << ")";
    }
  }
  if (failed(verifyLse(*this, cast<ShapedType>(getLse().getType()), outType,
                       "out")))
    return failure();
  if (hasPureTensorSemantics())
    for (auto [result, init] : llvm::zip_equal(
             getResults(), ValueRange{getDQuery(), getDKey(), getDValue()}))
      if (result.getType() != init.getType())
        return emitOpError() << "result type " << result.getType()
                             << " must match its init type " << init.getType();
  return success();
}

float AttentionBackwardOp::getScaleOrDefault() {
  return scaleOrDefault(getScaleAttr(), getHeadDim());
}

MaskAttr AttentionBackwardOp::getEffectiveMask() {
  return effectiveMask(getMaskAttr());
}

void AttentionBackwardOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  addDestinationStyleEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// AttentionLayerOp
//===----------------------------------------------------------------------===//

static std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (auto [i, size] : llvm::enumerate(shape)) {
    if (i)
      text += ", ";
    text += ShapedType::isDynamic(size) ? "?" : std::to_string(size);
  }
  return text + "]";
}

/// Static dims must equal `expected`; dynamic dims (ShapedType::kDynamic in
/// either) are only checked at run time.
static LogicalResult verifyShape(Operation *op, StringRef name, ShapedType type,
                                 ArrayRef<int64_t> expected,
                                 StringRef meaning) {
  bool ok = type.getRank() == static_cast<int64_t>(expected.size());
  for (unsigned i = 0; ok && i < expected.size(); ++i)
    ok = ShapedType::isDynamic(expected[i]) || type.isDynamicDim(i) ||
         type.getDimSize(i) == expected[i];
  if (ok)
    return success();
  return op->emitOpError() << name << " shape " << formatShape(type.getShape())
                           << " must be " << meaning << " = "
                           << formatShape(expected);
}

namespace {
/// The operands and attributes the layer ops share; absent ones are null
/// (the memory K/V op has no w_q, w_o; a cross-attention decode step no
/// w_k, w_v).
struct LayerOperands {
  Value input, memory, wQ, wK, wV, wO, bQ, bK, bV, bO;
  HeadsAttr heads;
  RopeAttr rope;
  FloatAttr scale;
  /// What the diagnostics call `input` (the memory K/V op's is the memory).
  StringRef inputName = "input";
};
} // namespace

/// The LayerOperands of an op with sqa.attention_layer's accessors. The
/// decode step has no memory operand: its caches hold the keys.
template <typename OpTy> static LayerOperands layerOperands(OpTy op) {
  LayerOperands layer = {
      op.getInput(), Value(),          op.getWQ(),       op.getWK(), op.getWV(),
      op.getWO(),    op.getBQ(),       op.getBK(),       op.getBV(), op.getBO(),
      op.getHeads(), op.getRopeAttr(), op.getScaleAttr()};
  if constexpr (!std::is_same_v<OpTy, AttentionLayerDecodeOp>)
    layer.memory = op.getMemory();
  return layer;
}

/// The forward's rules, for every layer op: shapes, element types, sizes,
/// RoPE and scale. Element types and extents are checked on every operand
/// of `op` (gradients, inits and caches included).
static LogicalResult verifyLayerOperands(Operation *op,
                                         const LayerOperands &layer) {
  auto emitOpError = [&]() { return op->emitOpError(); };
  HeadsAttr heads = layer.heads;
  StringRef inputName = layer.inputName;
  auto inputType = cast<ShapedType>(layer.input.getType());
  if (inputType.getRank() != 3)
    return emitOpError() << inputName
                         << " must have rank 3 [B, S, d_model], got rank "
                         << inputType.getRank();
  int64_t modelDim = inputType.getDimSize(2);
  if (ShapedType::isDynamic(modelDim))
    return emitOpError() << "d_model (dim 2 of the " << inputName
                         << ") must be static";
  if (modelDim <= 0)
    return emitOpError() << "d_model must be positive, got " << modelDim;
  if (modelDim % heads.getTotal() != 0)
    return emitOpError() << "d_model (" << modelDim
                         << ") must be divisible by total heads ("
                         << heads.getTotal() << ")";
  int64_t headDim = modelDim / heads.getTotal();
  if (headDim > kMaxHeadDim)
    return emitOpError() << "head dim d_model / total heads (" << headDim
                         << ") exceeds the supported maximum (" << kMaxHeadDim
                         << ")";
  int64_t q = heads.getQuery() * headDim, kv = heads.getKv() * headDim;
  int64_t out = heads.getOutputHeads() * headDim;

  // The decode step's cache_lens (i64) is the only operand that is no data.
  Type elementType = inputType.getElementType();
  for (OpOperand &operand : op->getOpOperands()) {
    Type type = cast<ShapedType>(operand.get().getType()).getElementType();
    if (!isa<IntegerType>(type) && type != elementType)
      return emitOpError() << "operand #" << operand.getOperandNumber()
                           << " element type " << type << " must match "
                           << inputName << " element type " << elementType;
  }

  int64_t batch = inputType.getDimSize(0), seqLen = inputType.getDimSize(1);
  int64_t dyn = ShapedType::kDynamic;
  // As for sqa.attention: static empty batches and sequences are rejected.
  std::pair<StringRef, int64_t> lengths[] = {{"batch size", batch},
                                             {"sequence length", seqLen}};
  for (auto [what, size] : lengths)
    if (size == 0)
      return emitOpError() << inputName << " " << what
                           << " is a static 0; sizes must be positive";
  if (Value memory = layer.memory)
    if (cast<ShapedType>(memory.getType()).getRank() == 3 &&
        cast<ShapedType>(memory.getType()).getDimSize(1) == 0)
      return emitOpError()
             << "memory sequence length is a static 0; sizes must be positive";
  // The decomposition makes f32 copies of [B, S or T, <= d_model]: every
  // operand's static extent must fit int64 even at 4 bytes per element.
  for (OpOperand &operand : op->getOpOperands())
    if (failed(verifyStaticExtent(
            op, "operand #" + std::to_string(operand.getOperandNumber()),
            cast<ShapedType>(operand.get().getType()), 4)))
      return failure();
  if (Value memory = layer.memory)
    if (failed(verifyShape(op, "memory", cast<ShapedType>(memory.getType()),
                           {batch, dyn, modelDim}, "[B, T, d_model]")))
      return failure();
  std::tuple<StringRef, Value, int64_t, int64_t, StringRef> weights[] = {
      {"w_q", layer.wQ, modelDim, q, "[d_model, Hq*dh]"},
      {"w_k", layer.wK, modelDim, kv, "[d_model, Hkv*dh]"},
      {"w_v", layer.wV, modelDim, kv, "[d_model, Hkv*dh]"},
      {"w_o", layer.wO, out, modelDim, "[max(Hq, Hkv)*dh, d_model]"}};
  for (auto [name, weight, rows, cols, meaning] : weights)
    if (weight &&
        failed(verifyShape(op, name, cast<ShapedType>(weight.getType()),
                           {rows, cols}, meaning)))
      return failure();
  std::tuple<StringRef, Value, int64_t, StringRef> biases[] = {
      {"b_q", layer.bQ, q, "[Hq*dh]"},
      {"b_k", layer.bK, kv, "[Hkv*dh]"},
      {"b_v", layer.bV, kv, "[Hkv*dh]"},
      {"b_o", layer.bO, modelDim, "[d_model]"}};
  for (auto [name, bias, size, meaning] : biases)
    if (bias && failed(verifyShape(op, name, cast<ShapedType>(bias.getType()),
                                   {size}, meaning)))
      return failure();
  if (RopeAttr rope = layer.rope) {
    if (headDim % 2 != 0)
      return emitOpError() << "RoPE needs an even head dim, got " << headDim;
    if (rope.getQueriesOnly() && !layer.memory)
      return emitOpError() << "rope queries_only is for cross-attention, but "
                              "there is no memory operand";
  }
  if (FloatAttr scale = layer.scale;
      scale && !std::isfinite(scale.getValueAsDouble()))
    return emitOpError() << "scale must be finite, got "
                         << scale.getValueAsDouble();
  return success();
}

/// `name` (of type `type`) has the input's rows: [B, S, d_model] (the
/// decode step's [B, N, d_model]).
static LogicalResult verifyLayerRows(Operation *op, StringRef name,
                                     ShapedType type, Value input,
                                     StringRef meaning = "[B, S, d_model]") {
  auto inputType = cast<ShapedType>(input.getType());
  return verifyShape(op, name, type,
                     {inputType.getDimSize(0), inputType.getDimSize(1),
                      inputType.getDimSize(2)},
                     meaning);
}

LogicalResult AttentionLayerOp::verify() {
  if (failed(verifyLayerOperands(*this, layerOperands(*this))) ||
      failed(verifyLayerRows(*this, "init", getInit().getType(), getInput())))
    return failure();
  if (getResult().getType() != getInit().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must match init type " << getInit().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionLayerBackwardOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionLayerBackwardOp::verify() {
  if (failed(verifyLayerOperands(*this, layerOperands(*this))) ||
      failed(verifyLayerRows(*this, "d_out", getDOut().getType(), getInput())))
    return failure();
  // Each gradient is given exactly when its operand is, with its type.
  std::tuple<StringRef, Value, Value> gradients[] = {
      {"input", getInput(), getDInput()}, {"memory", getMemory(), getDMemory()},
      {"w_q", getWQ(), getDWQ()},         {"w_k", getWK(), getDWK()},
      {"w_v", getWV(), getDWV()},         {"w_o", getWO(), getDWO()},
      {"b_q", getBQ(), getDBQ()},         {"b_k", getBK(), getDBK()},
      {"b_v", getBV(), getDBV()},         {"b_o", getBO(), getDBO()}};
  for (auto [name, primal, gradient] : gradients) {
    if (static_cast<bool>(primal) != static_cast<bool>(gradient))
      return emitOpError() << "d_" << name << " must be given exactly when "
                           << name << " is";
    if (primal && primal.getType() != gradient.getType())
      return emitOpError() << "d_" << name << " type " << gradient.getType()
                           << " must match " << name << " type "
                           << primal.getType();
  }
  // One result per gradient, in the inits' order.
  ValueRange inits = getDpsInits();
  if (getNumResults() != inits.size())
    return emitOpError() << "expected " << inits.size()
                         << " results (one per gradient), got "
                         << getNumResults();
  for (auto [i, result, init] : llvm::enumerate(getResults(), inits))
    if (result.getType() != init.getType())
      return emitOpError() << "result #" << i << " type " << result.getType()
                           << " must match its init type " << init.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionLayerDecodeOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionLayerDecodeOp::verify() {
  if (static_cast<bool>(getWK()) != static_cast<bool>(getWV()))
    return emitOpError() << "w_k and w_v must be given together";
  if (!hasAppend() && (getBK() || getBV()))
    return emitOpError() << "b_k and b_v need kv_weights (without them the "
                            "caches already hold keys and values)";
  if (failed(verifyLayerOperands(*this, layerOperands(*this))) ||
      failed(verifyLayerRows(*this, "init", getInit().getType(), getInput(),
                             "[B, N, d_model]")))
    return failure();
  if (getResult().getType() != getInit().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must match init type " << getInit().getType();
  int64_t batch = getInput().getType().getDimSize(0),
          dyn = ShapedType::kDynamic;
  for (auto [name, cache] :
       {std::pair<StringRef, Value>{"key_cache", getKeyCache()},
        {"value_cache", getValueCache()}}) {
    auto type = cast<ShapedType>(cache.getType());
    if (failed(verifyShape(*this, name, type,
                           {batch, getHeads().getKv(), dyn, getHeadDim()},
                           "[B, Hkv, C, dh]")))
      return failure();
    if (type.isDynamicDim(1) || type.isDynamicDim(3))
      return emitOpError() << name << " heads and head dim must be static";
  }
  if (failed(verifyShape(*this, "cache_lens", getCacheLens().getType(), {batch},
                         "[B]")))
    return failure();
  // Cached keys carry no positions the step could rotate queries against.
  if (getRopeAttr() && !hasAppend())
    return emitOpError() << "RoPE needs kv_weights: a cross-attention "
                            "decode step has no query positions";
  if (MaskAttr mask = effectiveMask(getMaskAttr());
      mask && mask.getAlignment() != MaskAlignment::BottomRight)
    return emitOpError() << "decode rows sit at the end of their cache row: "
                            "a restrictive mask must have alignment = "
                            "bottom_right";
  return success();
}

void AttentionLayerDecodeOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  auto *resource = SideEffects::DefaultResource::get();
  effects.emplace_back(MemoryEffects::Read::get(), &getCacheLensMutable(),
                       resource);
  for (OpOperand *operand : {&getKeyCacheMutable(), &getValueCacheMutable()}) {
    effects.emplace_back(MemoryEffects::Read::get(), operand, resource);
    if (hasAppend())
      effects.emplace_back(MemoryEffects::Write::get(), operand, resource);
  }
}

//===----------------------------------------------------------------------===//
// AttentionLayerKVOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionLayerKVOp::verify() {
  // The memory is both the rows and the key source of the forward's rules.
  Value memory = getMemory();
  LayerOperands layer = {memory,      memory,  Value(),    getWK(),
                         getWV(),     Value(), Value(),    getBK(),
                         getBV(),     Value(), getHeads(), getRopeAttr(),
                         FloatAttr(), "memory"};
  if (failed(verifyLayerOperands(*this, layer)))
    return failure();
  ShapedType memoryType = getMemory().getType();
  SmallVector<int64_t> expected = {memoryType.getDimSize(0), getHeads().getKv(),
                                   memoryType.getDimSize(1), getHeadDim()};
  for (auto [name, init, result] :
       {std::tuple<StringRef, Value, Value>{"key_init", getKeyInit(), getKey()},
        {"value_init", getValueInit(), getValue()}}) {
    if (failed(verifyShape(*this, name, cast<ShapedType>(init.getType()),
                           expected, "[B, Hkv, T, dh]")))
      return failure();
    if (result.getType() != init.getType())
      return emitOpError() << name << " and its result must have one type";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// DecodeOp
//===----------------------------------------------------------------------===//

LogicalResult DecodeOp::verify() {
  if (hasAppend() != static_cast<bool>(getValueNew()))
    return emitOpError() << "key_new and value_new must be given together";
  Type elementType = getQueryType().getElementType();
  if (!isSupportedElementType(elementType))
    return emitOpError() << "element type " << elementType
                         << " is not supported; expected f32, f16 or bf16";

  struct Operand {
    StringRef name, shape;
    Value value;
  };
  SmallVector<Operand> operands = {
      {"query", "[B, Hq, N, D]", getQuery()},
      {"key_cache", "[B, Hkv, C, D]", getKeyCache()},
      {"value_cache", "[B, Hkv, C, Dv]", getValueCache()},
      {"out", "[B, max(Hq, Hkv), N, Dv]", getOut()}};
  if (hasAppend()) {
    operands.push_back({"key_new", "[B, Hkv, N, D]", getKeyNew()});
    operands.push_back({"value_new", "[B, Hkv, N, Dv]", getValueNew()});
  }
  for (const Operand &operand : operands) {
    auto type = cast<MemRefType>(operand.value.getType());
    if (type.getElementType() != elementType)
      return emitOpError() << operand.name << " element type "
                           << type.getElementType()
                           << " must match query element type " << elementType;
    if (type.getRank() != 4)
      return emitOpError() << operand.name << " must have rank 4 "
                           << operand.shape << ", got rank " << type.getRank();
    for (auto [dim, what, limit] :
         {std::tuple<unsigned, StringRef, int64_t>{1, "heads", kMaxHeads},
          std::tuple<unsigned, StringRef, int64_t>{3, "head dim",
                                                   kMaxHeadDim}}) {
      int64_t size = type.getDimSize(dim);
      if (ShapedType::isDynamic(size))
        return emitOpError() << operand.name << " " << what << " (dim " << dim
                             << " of " << operand.shape << ") must be static";
      if (size <= 0 || size > limit)
        return emitOpError() << operand.name << " " << what << " (" << size
                             << ") must be in [1, " << limit << "]";
    }
    for (unsigned dim : {0u, 2u})
      if (type.getDimSize(dim) == 0)
        return emitOpError()
               << operand.name << " dim " << dim << " of " << operand.shape
               << " is a static 0; sizes must be positive";
    if (failed(
            verifyStaticExtent(*this, operand.name, type, elementBytes(type))))
      return failure();
  }
  auto lensType = getCacheLens().getType();
  if (lensType.getRank() != 1)
    return emitOpError() << "cache_lens must have rank 1 [B], got rank "
                         << lensType.getRank();

  // Each (operand, dim) must agree with the first operand that names the
  // same size, where both are static.
  auto agree = [&](StringRef aName, ShapedType a, unsigned aDim,
                   StringRef bName, ShapedType b, unsigned bDim,
                   StringRef what) -> LogicalResult {
    int64_t sa = a.getDimSize(aDim), sb = b.getDimSize(bDim);
    if (ShapedType::isDynamic(sa) || ShapedType::isDynamic(sb) || sa == sb)
      return success();
    return emitOpError() << bName << " " << what << " (" << sb
                         << ") must match " << aName << " " << what << " ("
                         << sa << ")";
  };
  MemRefType q = getQueryType(), kc = getKeyCacheType(),
             vc = getValueCacheType(), out = getOutType();
  for (const Operand &operand : ArrayRef(operands).drop_front())
    if (failed(agree("query", q, 0, operand.name,
                     cast<ShapedType>(operand.value.getType()), 0,
                     "batch size")))
      return failure();
  if (failed(agree("query", q, 0, "cache_lens", lensType, 0, "batch size")) ||
      failed(agree("query", q, 3, "key_cache", kc, 3, "head dim")) ||
      failed(agree("key_cache", kc, 1, "value_cache", vc, 1, "heads")) ||
      failed(agree("key_cache", kc, 2, "value_cache", vc, 2, "capacity")) ||
      failed(agree("query", q, 2, "out", out, 2, "new length")) ||
      failed(agree("value_cache", vc, 3, "out", out, 3, "head dim")))
    return failure();
  if (hasAppend()) {
    MemRefType kn = getKeyNew().getType(), vn = getValueNew().getType();
    if (failed(agree("key_cache", kc, 1, "key_new", kn, 1, "heads")) ||
        failed(agree("key_cache", kc, 3, "key_new", kn, 3, "head dim")) ||
        failed(agree("query", q, 2, "key_new", kn, 2, "new length")) ||
        failed(agree("value_cache", vc, 1, "value_new", vn, 1, "heads")) ||
        failed(agree("value_cache", vc, 3, "value_new", vn, 3, "head dim")) ||
        failed(agree("query", q, 2, "value_new", vn, 2, "new length")))
      return failure();
  }

  int64_t numQueryHeads = getNumQueryHeads(), numKVHeads = getNumKVHeads();
  HeadMapping heads = getHeadMapping();
  if (heads.outputHeads() % heads.sharedHeads() != 0)
    return emitOpError() << "the larger head count (" << heads.outputHeads()
                         << ") must be a multiple of the smaller ("
                         << heads.sharedHeads() << ")";
  if (out.getDimSize(1) != heads.outputHeads())
    return emitOpError() << "out heads (" << out.getDimSize(1)
                         << ") must equal max(query heads, key/value heads) = "
                         << heads.outputHeads();
  if (FloatAttr scale = getScaleAttr();
      scale && !std::isfinite(scale.getValueAsDouble()))
    return emitOpError() << "scale must be finite, got "
                         << scale.getValueAsDouble();
  if (MaskAttr mask = getEffectiveMask();
      mask && mask.getAlignment() != MaskAlignment::BottomRight)
    return emitOpError() << "decode rows sit at the end of their cache row: "
                            "a restrictive mask must have alignment = "
                            "bottom_right";
  if (HeadsAttr attr = getHeadsAttr())
    if (attr.getQuery() != numQueryHeads || attr.getKv() != numKVHeads)
      return emitOpError() << "heads (query " << numQueryHeads << ", kv "
                           << numKVHeads
                           << ") do not match the head configuration's (query "
                           << attr.getQuery() << ", kv " << attr.getKv() << ")";
  return success();
}

float DecodeOp::getScaleOrDefault() {
  return scaleOrDefault(getScaleAttr(), getHeadDim());
}

MaskAttr DecodeOp::getEffectiveMask() { return effectiveMask(getMaskAttr()); }

void DecodeOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  auto *resource = SideEffects::DefaultResource::get();
  for (OpOperand *operand : {&getQueryMutable(), &getCacheLensMutable()})
    effects.emplace_back(MemoryEffects::Read::get(), operand, resource);
  for (OpOperand &operand : getKeyNewMutable())
    effects.emplace_back(MemoryEffects::Read::get(), &operand, resource);
  for (OpOperand &operand : getValueNewMutable())
    effects.emplace_back(MemoryEffects::Read::get(), &operand, resource);
  // The caches are read, and written when new tokens are appended.
  for (OpOperand *operand : {&getKeyCacheMutable(), &getValueCacheMutable()}) {
    effects.emplace_back(MemoryEffects::Read::get(), operand, resource);
    if (hasAppend())
      effects.emplace_back(MemoryEffects::Write::get(), operand, resource);
  }
  effects.emplace_back(MemoryEffects::Write::get(), &getOutMutable(), resource);
}
