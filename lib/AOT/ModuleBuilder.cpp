//===- ModuleBuilder.cpp - The kernel module of a configuration -----------===//
//
// Builds `<name>_kernel` with OpBuilder: memref arguments in the library's
// layout, viewed as BHSD tensors, one sqa.attention (or sqa.attention_layer)
// op, and the result materialized into the output argument.
//
//===----------------------------------------------------------------------===//

#include "sqa/AOT/AttentionLibrary.h"

#include "SQA/IR/SQADialect.h"
#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

static Type elementType(MLIRContext *context, ElementKind kind) {
  switch (kind) {
  case ElementKind::F32:
    return Float32Type::get(context);
  case ElementKind::F16:
    return Float16Type::get(context);
  case ElementKind::BF16:
    return BFloat16Type::get(context);
  }
  llvm_unreachable("unknown element kind");
}

/// `#sqa.mask` of the configuration, or null when it hides no key.
static MaskAttr maskAttr(MLIRContext *context, const AttentionConfig &config) {
  if (!config.causal && config.windowLeft < 0 && config.windowRight < 0)
    return {};
  return MaskAttr::get(context, config.causal, config.alignment,
                       config.windowLeft, config.windowRight);
}

/// The mask of a decode step: rows sit at the end of their cache row, so the
/// configuration's mask is used bottom-right aligned (for a prefill with
/// S = T both alignments agree).
static MaskAttr decodeMaskAttr(MLIRContext *context,
                               const AttentionConfig &config) {
  MaskAttr mask = maskAttr(context, config);
  if (!mask)
    return mask;
  return MaskAttr::get(context, mask.getCausal(), MaskAlignment::BottomRight,
                       mask.getWindowLeft(), mask.getWindowRight());
}

static FloatAttr scaleAttr(OpBuilder &b, const AttentionConfig &config) {
  return config.scale ? b.getF32FloatAttr(*config.scale) : FloatAttr();
}

static HeadsAttr headsAttr(MLIRContext *context,
                           const AttentionConfig &config) {
  return HeadsAttr::get(context, config.heads.total, config.heads.query,
                        config.heads.kv);
}

/// A kernel function with `argTypes` and the C interface, the builder at the
/// start of its body.
static func::FuncOp createKernel(OpBuilder &b, ModuleOp module,
                                 const AttentionConfig &config,
                                 TypeRange argTypes) {
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), config.name + "_kernel",
                                   b.getFunctionType(argTypes, {}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  b.setInsertionPointToStart(func.addEntryBlock());
  return func;
}

/// The tensor a kernel argument (or its BHSD view) holds; `writable` for the
/// destination.
static Value toTensor(OpBuilder &b, Location loc, Value memref, bool writable) {
  auto type = cast<MemRefType>(memref.getType());
  auto tensorType =
      RankedTensorType::get(type.getShape(), type.getElementType());
  return bufferization::ToTensorOp::create(
      b, loc, tensorType, memref, b.getUnitAttr(),
      writable ? b.getUnitAttr() : UnitAttr());
}

static void materialize(OpBuilder &b, Location loc, Value result,
                        Value destination) {
  bufferization::MaterializeInDestinationOp::create(
      b, loc, TypeRange(), result, destination, /*restrict=*/true,
      /*writable=*/true);
  func::ReturnOp::create(b, loc);
}

/// `memref<?xHEADSx?xDIM, strided<[?, ?, ?, 1]>>`: a [B, H, S, D] view with
/// element strides chosen per call, the head dim contiguous.
static MemRefType stridedBHSDType(MLIRContext *context, int64_t heads,
                                  int64_t dim, Type element) {
  int64_t dyn = ShapedType::kDynamic;
  return MemRefType::get(
      {dyn, heads, dyn, dim}, element,
      StridedLayoutAttr::get(context, /*offset=*/0, {dyn, dyn, dyn, 1}));
}

static void buildDecodeKernel(OpBuilder &b, ModuleOp module,
                              const AttentionConfig &config, bool append);

/// `<name>_kernel_lse` (q, k, v, out, lse) and `<name>_kernel_backward` (q,
/// k, v, out, d_out, lse, dq, dk, dv): the forward with its logsumexp and the
/// gradients, for training. `argTypes` are the forward's q, k, v, out; lse
/// is f32 [B, OUT_HEADS, S] in every layout.
static void buildTrainingKernels(OpBuilder &b, ModuleOp module,
                                 const AttentionConfig &config,
                                 ArrayRef<Type> argTypes) {
  MLIRContext *context = module.getContext();
  Location loc = FileLineColLoc::get(b.getStringAttr("sqa-aot-training"), 1, 1);
  bool bshd = config.layout == Layout::BSHD;
  int64_t dyn = ShapedType::kDynamic;
  auto lseType =
      MemRefType::get({dyn, config.outputHeads(), dyn}, b.getF32Type());
  AffineMap toBHSD =
      AffineMap::getPermutationMap(ArrayRef<unsigned>{0, 2, 1, 3}, context);
  // BHSD views of the 4-D arguments; lse is already [B, H, S].
  auto views = [&](func::FuncOp func) {
    SmallVector<Value> result;
    for (Value arg : func.getArguments())
      result.push_back(bshd && cast<MemRefType>(arg.getType()).getRank() == 4
                           ? memref::TransposeOp::create(
                                 b, loc, arg, AffineMapAttr::get(toBHSD))
                                 .getResult()
                           : arg);
    return result;
  };

  // Forward with lse: q, k, v, out, lse.
  SmallVector<Type> lseArgs(argTypes);
  lseArgs.push_back(lseType);
  func::FuncOp lseFunc = createKernel(b, module, config, lseArgs);
  lseFunc.setSymName(config.name + "_kernel_lse");
  SmallVector<Value> v = views(lseFunc);
  SmallVector<Value> t;
  for (auto [i, view] : llvm::enumerate(v))
    t.push_back(toTensor(b, loc, view, /*writable=*/i >= 3));
  auto forward = AttentionOp::create(
      b, loc, TypeRange{t[3].getType(), t[4].getType()}, t[0], t[1], t[2], t[3],
      t[4], /*diagonal_offset=*/Value(), scaleAttr(b, config),
      maskAttr(context, config), headsAttr(context, config));
  bufferization::MaterializeInDestinationOp::create(
      b, loc, TypeRange(), forward->getResult(0), v[3], /*restrict=*/true,
      /*writable=*/true);
  materialize(b, loc, forward->getResult(1), v[4]);

  // Backward: q, k, v, out, d_out, lse, dq, dk, dv.
  SmallVector<Type> backwardArgs = {argTypes[0], argTypes[1], argTypes[2],
                                    argTypes[3], argTypes[3], lseType,
                                    argTypes[0], argTypes[1], argTypes[2]};
  func::FuncOp backwardFunc = createKernel(b, module, config, backwardArgs);
  backwardFunc.setSymName(config.name + "_kernel_backward");
  v = views(backwardFunc);
  t.clear();
  for (auto [i, view] : llvm::enumerate(v))
    t.push_back(toTensor(b, loc, view, /*writable=*/i >= 6));
  auto backward = AttentionBackwardOp::create(
      b, loc, TypeRange{t[6].getType(), t[7].getType(), t[8].getType()}, t[0],
      t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8],
      /*diagonal_offset=*/Value(), scaleAttr(b, config),
      maskAttr(context, config), headsAttr(context, config));
  for (int i = 0; i < 2; ++i)
    bufferization::MaterializeInDestinationOp::create(
        b, loc, TypeRange(), backward->getResult(i), v[6 + i],
        /*restrict=*/true, /*writable=*/true);
  materialize(b, loc, backward->getResult(2), v[8]);
}

static OwningOpRef<ModuleOp> buildCoreModule(MLIRContext &context,
                                             const AttentionConfig &config) {
  OpBuilder b(&context);
  Location loc = FileLineColLoc::get(b.getStringAttr("sqa-aot-config"), 1, 1);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  Type element = elementType(&context, config.elementKind);
  bool bshd = config.layout == Layout::BSHD;
  int64_t dyn = ShapedType::kDynamic;
  // q, k, v, out: (heads, dim) of each, in ABI order.
  std::pair<int64_t, int64_t> shapes[] = {
      {config.heads.query, config.headDim},
      {config.heads.kv, config.headDim},
      {config.heads.kv, config.valueHeadDim},
      {config.outputHeads(), config.valueHeadDim}};
  // Contiguous buffers in the configured layout.
  SmallVector<Type> argTypes;
  for (auto [heads, dim] : shapes)
    argTypes.push_back(bshd ? MemRefType::get({dyn, dyn, heads, dim}, element)
                            : MemRefType::get({dyn, heads, dyn, dim}, element));
  // The CPU forward kernel takes [B, H, S, D] views with any element strides
  // of batch, head and position instead (the head dim contiguous): the C
  // entry layer passes BHSD, BSHD or sliced (fused-QKV) operands without
  // copies.
  bool strided = config.target == Target::CPU;
  SmallVector<Type> stridedTypes;
  for (auto [heads, dim] : shapes)
    stridedTypes.push_back(stridedBHSDType(&context, heads, dim, element));
  func::FuncOp func =
      createKernel(b, *module, config, strided ? stridedTypes : argTypes);

  // BSHD arguments are read through a [B, H, S, D] transposed view.
  AffineMap toBHSD =
      AffineMap::getPermutationMap(ArrayRef<unsigned>{0, 2, 1, 3}, &context);
  SmallVector<Value> views, tensors;
  for (auto [i, arg] : llvm::enumerate(func.getArguments())) {
    Value view = arg;
    if (bshd && !strided)
      view =
          memref::TransposeOp::create(b, loc, arg, AffineMapAttr::get(toBHSD));
    views.push_back(view);
    tensors.push_back(toTensor(b, loc, view, /*writable=*/i == 3));
  }
  auto op = AttentionOp::create(
      b, loc, TypeRange{tensors[3].getType()}, tensors[0], tensors[1],
      tensors[2], tensors[3], /*diagonal_offset=*/Value(), scaleAttr(b, config),
      maskAttr(&context, config), headsAttr(&context, config));
  materialize(b, loc, op->getResult(0), views[3]);
  // Decode (sqa-lower-decode-split-kv on CPU, sqa-lower-decode-to-gpu on
  // CUDA).
  for (bool append : {false, true})
    buildDecodeKernel(b, *module, config, append);
  buildTrainingKernels(b, *module, config, argTypes);
  return module;
}

/// `<name>_decode_kernel` (no append) or `<name>_decode_append_kernel`:
/// q, k_cache, v_cache, cache_lens, [k_new, v_new,] out in the library's
/// layout, one sqa.decode on BHSD views. Decode rows sit at the end of their
/// cache row, so the configuration's mask is used bottom-right aligned (for
/// a prefill with S = T both alignments agree).
static void buildDecodeKernel(OpBuilder &b, ModuleOp module,
                              const AttentionConfig &config, bool append) {
  MLIRContext *context = b.getContext();
  Location loc = FileLineColLoc::get(b.getStringAttr("sqa-aot-decode"), 1, 1);
  Type element = elementType(context, config.elementKind);
  bool bshd = config.layout == Layout::BSHD;
  int64_t dyn = ShapedType::kDynamic;
  auto shaped = [&](int64_t heads, int64_t dim) -> Type {
    return bshd ? MemRefType::get({dyn, dyn, heads, dim}, element)
                : MemRefType::get({dyn, heads, dyn, dim}, element);
  };
  Type q = shaped(config.heads.query, config.headDim),
       k = shaped(config.heads.kv, config.headDim),
       v = shaped(config.heads.kv, config.valueHeadDim),
       out = shaped(config.outputHeads(), config.valueHeadDim),
       lens = MemRefType::get({dyn}, b.getI64Type());
  SmallVector<Type> argTypes = {q, k, v, lens};
  if (append)
    argTypes.append({k, v});
  argTypes.push_back(out);
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(
      b, loc,
      config.name + (append ? "_decode_append_kernel" : "_decode_kernel"),
      b.getFunctionType(argTypes, {}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  b.setInsertionPointToStart(func.addEntryBlock());
  AffineMap toBHSD =
      AffineMap::getPermutationMap(ArrayRef<unsigned>{0, 2, 1, 3}, context);
  SmallVector<Value> views;
  for (Value arg : func.getArguments())
    views.push_back(bshd && cast<MemRefType>(arg.getType()).getRank() == 4
                        ? memref::TransposeOp::create(
                              b, loc, arg, AffineMapAttr::get(toBHSD))
                              .getResult()
                        : arg);
  MaskAttr mask = decodeMaskAttr(context, config);
  Value keyNew = append ? views[4] : Value(),
        valueNew = append ? views[5] : Value();
  DecodeOp::create(b, loc, views[0], views[1], views[2], views[3], keyNew,
                   valueNew, views.back(), scaleAttr(b, config), mask,
                   headsAttr(context, config));
  func::ReturnOp::create(b, loc);
}

/// `#sqa.rope` of a layer configuration, or null without RoPE.
static RopeAttr ropeAttr(MLIRContext *context,
                         const AttentionConfig::Layer &layer) {
  if (!layer.rope)
    return {};
  return RopeAttr::get(context, *layer.rope, llvm::APFloat(layer.ropeBase),
                       llvm::APFloat(layer.ropeFactor),
                       layer.ropeOriginalMaxPositions, layer.ropePositionOffset,
                       layer.ropeQueriesOnly);
}

namespace {
/// A layer kernel operand in ABI order; absent ones are not arguments.
struct LayerOperand {
  MemRefType type;
  bool present;
};
} // namespace

/// `<name>_kernel_backward`: the layer's inputs (x, memory, weights,
/// biases as `inputs`, absent ones skipped), d_y, then the gradient of each
/// present input in the same order; one sqa.attention_layer_backward.
static void buildLayerBackwardKernel(OpBuilder &b, ModuleOp module,
                                     const AttentionConfig &config,
                                     ArrayRef<LayerOperand> inputs) {
  MLIRContext *context = module.getContext();
  Location loc =
      FileLineColLoc::get(b.getStringAttr("sqa-aot-layer-backward"), 1, 1);
  const AttentionConfig::Layer &layer = *config.layer;
  SmallVector<Type> argTypes;
  for (const LayerOperand &operand : inputs)
    if (operand.present)
      argTypes.push_back(operand.type);
  argTypes.push_back(inputs[0].type); // d_y
  for (const LayerOperand &operand : inputs)
    if (operand.present)
      argTypes.push_back(operand.type);
  func::FuncOp func = createKernel(b, module, config, argTypes);
  func.setSymName(config.name + "_kernel_backward");

  // Tensors of the inputs (absent: null), d_y, and the gradients' inits.
  size_t count = inputs.size();
  SmallVector<Value> primal(count), gradient(count), gradientMemrefs(count);
  unsigned next = 0;
  for (size_t i = 0; i < count; ++i)
    if (inputs[i].present)
      primal[i] = toTensor(b, loc, func.getArgument(next++), false);
  Value dOut = toTensor(b, loc, func.getArgument(next++), false);
  for (size_t i = 0; i < count; ++i)
    if (inputs[i].present) {
      gradientMemrefs[i] = func.getArgument(next++);
      gradient[i] = toTensor(b, loc, gradientMemrefs[i], true);
    }
  RopeAttr rope = ropeAttr(context, layer);
  SmallVector<Type> resultTypes;
  for (Value g : gradient)
    if (g)
      resultTypes.push_back(g.getType());
  auto op = AttentionLayerBackwardOp::create(
      b, loc, resultTypes, primal[0], primal[1], primal[2], primal[3],
      primal[4], primal[5], primal[6], primal[7], primal[8], primal[9], dOut,
      gradient[0], gradient[1], gradient[2], gradient[3], gradient[4],
      gradient[5], gradient[6], gradient[7], gradient[8], gradient[9],
      headsAttr(context, config), rope, maskAttr(context, config),
      scaleAttr(b, config));
  unsigned result = 0;
  for (Value destination : gradientMemrefs)
    if (destination)
      bufferization::MaterializeInDestinationOp::create(
          b, loc, TypeRange(), op->getResult(result++), destination,
          /*restrict=*/true, /*writable=*/true);
  func::ReturnOp::create(b, loc);
}

/// `<name>_layer_decode_kernel` (x_new, w_q, [w_k, w_v,] w_o, the configured
/// biases ([b_k, b_v] only with w_k), k_cache, v_cache, cache_lens, y): one
/// sqa.attention_layer_decode, caches [B, KV_HEADS, C, dh]. Cross-attention
/// layers have no w_k, w_v in the step and also get
/// `<name>_layer_memory_kv_kernel` (memory, w_k, w_v, [b_k, b_v,] k_cache,
/// v_cache): sqa.attention_layer_kv into the caches' first mem_len
/// positions. `inputs` are the forward's (x, memory, weights, biases).
static void buildLayerDecodeKernels(OpBuilder &b, ModuleOp module,
                                    const AttentionConfig &config,
                                    ArrayRef<LayerOperand> inputs) {
  const AttentionConfig::Layer &layer = *config.layer;
  MLIRContext *context = b.getContext();
  Location loc =
      FileLineColLoc::get(b.getStringAttr("sqa-aot-layer-decode"), 1, 1);
  Type element = elementType(context, config.elementKind);
  int64_t dyn = ShapedType::kDynamic;
  auto cache =
      MemRefType::get({dyn, config.heads.kv, dyn, config.headDim}, element);
  auto lens = MemRefType::get({dyn}, b.getI64Type());
  bool append = !layer.crossAttention;
  enum { X, WQ, WK, WV, WO, BQ, BK, BV, BO, KC, VC, LENS, Y, kNum };
  // The forward's operands, less the memory; k and v only when appended.
  LayerOperand operands[kNum] = {inputs[0],
                                 inputs[2],
                                 {inputs[3].type, append},
                                 {inputs[4].type, append},
                                 inputs[5],
                                 inputs[6],
                                 {inputs[7].type, append && inputs[7].present},
                                 {inputs[8].type, append && inputs[8].present},
                                 inputs[9],
                                 {cache, true},
                                 {cache, true},
                                 {lens, true},
                                 inputs[0]};
  SmallVector<Type> argTypes;
  for (const LayerOperand &operand : operands)
    if (operand.present)
      argTypes.push_back(operand.type);
  func::FuncOp func = createKernel(b, module, config, argTypes);
  func.setSymName(config.name + "_layer_decode_kernel");
  Value args[kNum];
  unsigned next = 0;
  for (unsigned i = 0; i < kNum; ++i) {
    if (!operands[i].present)
      continue;
    Value arg = func.getArgument(next++);
    // Caches and lengths stay buffers: the op updates the caches in place.
    args[i] = i == KC || i == VC || i == LENS
                  ? arg
                  : toTensor(b, loc, arg, /*writable=*/i == Y);
  }
  RopeAttr rope = ropeAttr(context, layer);
  auto op = AttentionLayerDecodeOp::create(
      b, loc, args[Y].getType(), args[X], args[WQ], args[WO], args[WK],
      args[WV], args[BQ], args[BK], args[BV], args[BO], args[KC], args[VC],
      args[LENS], args[Y], headsAttr(context, config), rope,
      decodeMaskAttr(context, config), scaleAttr(b, config));
  materialize(b, loc, op.getResult(), func.getArgument(next - 1));
  if (append)
    return;

  // memory, w_k, w_v, [b_k, b_v,] k_cache, v_cache.
  SmallVector<Type> kvTypes;
  for (unsigned i : {1, 3, 4, 7, 8})
    if (inputs[i].present)
      kvTypes.push_back(inputs[i].type);
  kvTypes.append({cache, cache});
  func::FuncOp kvFunc = createKernel(b, module, config, kvTypes);
  kvFunc.setSymName(config.name + "_layer_memory_kv_kernel");
  SmallVector<Value> kvArgs;
  for (Value arg : kvFunc.getArguments().drop_back(2))
    kvArgs.push_back(toTensor(b, loc, arg, /*writable=*/false));
  Value memory = kvFunc.getArgument(0);
  // The caches' [B, KV_HEADS, mem_len, dh] prefix receives k and v.
  SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0)),
      strides(4, b.getIndexAttr(1));
  SmallVector<OpFoldResult> sizes = {
      memref::DimOp::create(b, loc, memory, 0).getResult(),
      b.getIndexAttr(config.heads.kv),
      memref::DimOp::create(b, loc, memory, 1).getResult(),
      b.getIndexAttr(config.headDim)};
  SmallVector<Value> prefixes, inits;
  for (Value cacheArg : kvFunc.getArguments().take_back(2)) {
    Value prefix =
        memref::SubViewOp::create(b, loc, cacheArg, offsets, sizes, strides);
    prefixes.push_back(prefix);
    inits.push_back(toTensor(b, loc, prefix, /*writable=*/true));
  }
  unsigned biasIndex = 3;
  Value bK = layer.biasK ? kvArgs[biasIndex++] : Value();
  Value bV = layer.biasV ? kvArgs[biasIndex++] : Value();
  auto kv = AttentionLayerKVOp::create(
      b, loc, TypeRange{inits[0].getType(), inits[1].getType()}, kvArgs[0],
      kvArgs[1], kvArgs[2], bK, bV, inits[0], inits[1],
      headsAttr(context, config), rope);
  bufferization::MaterializeInDestinationOp::create(
      b, loc, TypeRange(), kv.getKey(), prefixes[0], /*restrict=*/true,
      /*writable=*/true);
  materialize(b, loc, kv.getValue(), prefixes[1]);
}

static OwningOpRef<ModuleOp> buildLayerModule(MLIRContext &context,
                                              const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  OpBuilder b(&context);
  Location loc = FileLineColLoc::get(b.getStringAttr("sqa-aot-layer"), 1, 1);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  Type element = elementType(&context, config.elementKind);
  int64_t dyn = ShapedType::kDynamic, d = config.modelDim(),
          dh = config.headDim, nq = config.heads.query * dh,
          nkv = config.heads.kv * dh, nout = config.outputHeads() * dh;
  auto act = MemRefType::get({dyn, dyn, d}, element);
  auto mat = [&](int64_t r, int64_t c) {
    return MemRefType::get({r, c}, element);
  };
  auto vec = [&](int64_t n) { return MemRefType::get({n}, element); };
  // The operands in ABI order with whether the configuration has them;
  // absent ones are not arguments.
  LayerOperand operands[] = {{act, true},
                             {act, layer.crossAttention},
                             {mat(d, nq), true},
                             {mat(d, nkv), true},
                             {mat(d, nkv), true},
                             {mat(nout, d), true},
                             {vec(nq), layer.biasQ},
                             {vec(nkv), layer.biasK},
                             {vec(nkv), layer.biasV},
                             {vec(d), layer.biasO},
                             {act, true}};
  constexpr unsigned kNumOperands = std::size(operands);
  SmallVector<Type> argTypes;
  for (const LayerOperand &operand : operands)
    if (operand.present)
      argTypes.push_back(operand.type);
  func::FuncOp func = createKernel(b, *module, config, argTypes);

  Value memrefs[kNumOperands], tensors[kNumOperands];
  unsigned next = 0;
  for (unsigned i = 0; i < kNumOperands; ++i) {
    if (!operands[i].present)
      continue;
    memrefs[i] = func.getArgument(next++);
    tensors[i] = toTensor(b, loc, memrefs[i], i + 1 == kNumOperands);
  }
  RopeAttr rope = ropeAttr(&context, layer);
  Value out = tensors[kNumOperands - 1];
  auto op = AttentionLayerOp::create(
      b, loc, out.getType(), tensors[0], tensors[1], tensors[2], tensors[3],
      tensors[4], tensors[5], tensors[6], tensors[7], tensors[8], tensors[9],
      out, headsAttr(&context, config), rope, maskAttr(&context, config),
      scaleAttr(b, config));
  materialize(b, loc, op.getResult(), memrefs[kNumOperands - 1]);
  buildLayerBackwardKernel(b, *module, config,
                           ArrayRef<LayerOperand>(operands).drop_back());
  // Cross-attention with RoPE has no decode step: query positions unknown.
  if (!(layer.crossAttention && layer.rope))
    buildLayerDecodeKernels(b, *module, config,
                            ArrayRef<LayerOperand>(operands).drop_back());
  return module;
}

OwningOpRef<ModuleOp> aot::buildAttentionModule(MLIRContext &context,
                                                const AttentionConfig &config) {
  context.loadDialect<SQADialect, func::FuncDialect, memref::MemRefDialect,
                      bufferization::BufferizationDialect>();
  OwningOpRef<ModuleOp> module = config.layer
                                     ? buildLayerModule(context, config)
                                     : buildCoreModule(context, config);
  // The verifier is the last word on what the configuration may be.
  if (failed(verify(*module)))
    return nullptr;
  return module;
}
