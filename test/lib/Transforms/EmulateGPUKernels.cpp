//===- EmulateGPUKernels.cpp - Run generated CUDA kernels on the CPU ------===//
//
// A testing aid for machines without a GPU. Each kernel of
// `gpu.module @sqa_kernels` becomes a host function that one CPU thread per
// GPU thread runs (test/lib/cuda/gpu_emulator.c launches the grid).
// Warp-collective operations become calls into that runtime, which
// implements them from the PTX ISA's definitions (ldmatrix, mma.sync m16n8k16
// fragment layouts, shfl.sync.bfly); cp.async becomes a synchronous copy
// with the same zero fill. Everything else (index math, softmax, masking,
// the loop structure) is the generated kernel itself, compiled for the host.
//
// A test pass, as upstream keeps its own in test/lib: only `sqa-test-opt`
// registers it, so the product's sqa-opt and libraries do not carry it.
//
//===----------------------------------------------------------------------===//

#include "sqa/Transforms/GPUKernelABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;
using namespace mlir::sqa;

namespace {

class Emulator {
public:
  Emulator(ModuleOp module) : module(module), ctx(module.getContext()) {}

  LogicalResult run();

private:
  func::FuncOp declare(StringRef name, TypeRange args, TypeRange results);
  Value call(ImplicitLocOpBuilder &b, StringRef name, ValueRange args,
             TypeRange results = {});
  /// The host address of memref[indices] as i64.
  Value address(ImplicitLocOpBuilder &b, Value memref, ValueRange indices);
  Value pairToI32(ImplicitLocOpBuilder &b, Value pair);
  Value i32ToPair(ImplicitLocOpBuilder &b, Value word, Type element);
  LogicalResult rewrite(Operation *op);

  ModuleOp module;
  MLIRContext *ctx;
  Value sharedMemory;
  /// Ops erased while rewriting another one (the extractvalue users of
  /// nvvm.mma.sync); run() must not visit them.
  llvm::SmallPtrSet<Operation *, 16> erased;
};

} // namespace

func::FuncOp Emulator::declare(StringRef name, TypeRange args,
                               TypeRange results) {
  if (auto func = module.lookupSymbol<func::FuncOp>(name))
    return func;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), name,
                                   FunctionType::get(ctx, args, results));
  func.setPrivate();
  return func;
}

Value Emulator::call(ImplicitLocOpBuilder &b, StringRef name, ValueRange args,
                     TypeRange results) {
  func::FuncOp callee = declare(name, args.getTypes(), results);
  auto op = func::CallOp::create(b, callee, args);
  return results.empty() ? Value() : op.getResult(0);
}

Value Emulator::address(ImplicitLocOpBuilder &b, Value memref,
                        ValueRange indices) {
  auto type = cast<MemRefType>(memref.getType());
  auto meta = memref::ExtractStridedMetadataOp::create(b, memref);
  Value linear = meta.getOffset();
  for (auto [index, stride] : llvm::zip(indices, meta.getStrides()))
    linear = arith::AddIOp::create(b, linear,
                                   arith::MulIOp::create(b, index, stride));
  Value bytes = arith::MulIOp::create(
      b, linear,
      arith::ConstantIndexOp::create(
          b, type.getElementType().getIntOrFloatBitWidth() / 8));
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  return arith::IndexCastOp::create(b, b.getI64Type(),
                                    arith::AddIOp::create(b, base, bytes));
}

Value Emulator::pairToI32(ImplicitLocOpBuilder &b, Value pair) {
  Value word =
      vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, word, 0);
}

Value Emulator::i32ToPair(ImplicitLocOpBuilder &b, Value word, Type element) {
  Value vec = vector::BroadcastOp::create(
      b, VectorType::get({1}, b.getI32Type()), word);
  return vector::BitCastOp::create(b, VectorType::get({2}, element), vec);
}

LogicalResult Emulator::rewrite(Operation *op) {
  ImplicitLocOpBuilder b(op->getLoc(), op);
  Type i32 = b.getI32Type(), i64 = b.getI64Type(), f32 = b.getF32Type();
  auto indexOf = [&](Value v) {
    return arith::IndexCastOp::create(b, b.getIndexType(), v);
  };
  auto results = [&](int n, Type type, StringRef getter) {
    SmallVector<Value> values;
    for (int i = 0; i < n; ++i)
      values.push_back(
          call(b, getter, {arith::ConstantIntOp::create(b, i32, i)}, type));
    return values;
  };

  if (auto tid = dyn_cast<gpu::ThreadIdOp>(op)) {
    if (tid.getDimension() != gpu::Dimension::x)
      return op->emitError("only x thread ids are emulated");
    op->getResult(0).replaceAllUsesWith(
        indexOf(call(b, "sqa_emu_thread_id", {}, i64)));
  } else if (auto bid = dyn_cast<gpu::BlockIdOp>(op)) {
    Value dim = arith::ConstantIntOp::create(
        b, i32, static_cast<int64_t>(bid.getDimension()));
    op->getResult(0).replaceAllUsesWith(
        indexOf(call(b, "sqa_emu_block_id", {dim}, i64)));
  } else if (auto grid = dyn_cast<gpu::GridDimOp>(op)) {
    Value dim = arith::ConstantIntOp::create(
        b, i32, static_cast<int64_t>(grid.getDimension()));
    op->getResult(0).replaceAllUsesWith(
        indexOf(call(b, "sqa_emu_grid_dim", {dim}, i64)));
  } else if (isa<gpu::DynamicSharedMemoryOp>(op)) {
    op->getResult(0).replaceAllUsesWith(sharedMemory);
  } else if (isa<gpu::BarrierOp>(op)) {
    call(b, "sqa_emu_barrier", {});
  } else if (auto shuffle = dyn_cast<gpu::ShuffleOp>(op)) {
    if (shuffle.getMode() != gpu::ShuffleMode::XOR ||
        !shuffle.getValue().getType().isF32())
      return op->emitError("only f32 xor shuffles are emulated");
    op->getResult(0).replaceAllUsesWith(
        call(b, "sqa_emu_shfl_xor_f32",
             {shuffle.getValue(), shuffle.getOffset()}, f32));
    op->getResult(1).replaceAllUsesWith(
        arith::ConstantIntOp::create(b, b.getI1Type(), 1).getResult());
  } else if (auto copy = dyn_cast<nvgpu::DeviceAsyncCopyOp>(op)) {
    int64_t bytes = cast<MemRefType>(copy.getDst().getType())
                        .getElementType()
                        .getIntOrFloatBitWidth() /
                    8;
    Value elements = copy.getSrcElements();
    if (!elements)
      elements = arith::ConstantIndexOp::create(
          b, copy.getDstElements().getZExtValue());
    Value srcBytes = arith::IndexCastOp::create(
        b, i64,
        arith::MulIOp::create(b, elements,
                              arith::ConstantIndexOp::create(b, bytes)));
    call(b, "sqa_emu_copy",
         {address(b, copy.getDst(), copy.getDstIndices()),
          address(b, copy.getSrc(), copy.getSrcIndices()), srcBytes,
          arith::ConstantIntOp::create(
              b, i64, copy.getDstElements().getZExtValue() * bytes)});
    op->getResult(0).replaceAllUsesWith(
        ub::PoisonOp::create(b, op->getResult(0).getType()).getResult());
  } else if (isa<nvgpu::DeviceAsyncCreateGroupOp>(op)) {
    op->getResult(0).replaceAllUsesWith(
        ub::PoisonOp::create(b, op->getResult(0).getType()).getResult());
  } else if (isa<nvgpu::DeviceAsyncWaitOp>(op)) {
    // Copies completed synchronously.
  } else if (auto load = dyn_cast<nvgpu::LdMatrixOp>(op)) {
    auto type = cast<VectorType>(load.getRes().getType());
    if (load.getNumTiles() != 4 || type.getShape() != ArrayRef<int64_t>{4, 2})
      return op->emitError("only x4 ldmatrix is emulated");
    call(b, "sqa_emu_ldmatrix_x4",
         {address(b, load.getSrcMemref(), load.getIndices()),
          arith::ConstantIntOp::create(b, i32, load.getTranspose())});
    Value result = arith::ConstantOp::create(b, b.getZeroAttr(type));
    SmallVector<Value> words = results(4, i32, "sqa_emu_result_i32");
    for (int64_t i = 0; i < 4; ++i)
      result = vector::InsertOp::create(
          b, i32ToPair(b, words[i], type.getElementType()), result, i);
    op->getResult(0).replaceAllUsesWith(result);
  } else if (auto mma = dyn_cast<nvgpu::MmaSyncOp>(op)) {
    SmallVector<Value> args;
    for (int64_t i = 0; i < 4; ++i)
      args.push_back(
          pairToI32(b, vector::ExtractOp::create(b, mma.getMatrixA(), i)));
    for (int64_t i = 0; i < 2; ++i)
      args.push_back(
          pairToI32(b, vector::ExtractOp::create(b, mma.getMatrixB(), i)));
    for (int64_t i = 0; i < 4; ++i)
      args.push_back(vector::ExtractOp::create(
          b, mma.getMatrixC(), ArrayRef<int64_t>{i / 2, i % 2}));
    args.push_back(arith::ConstantIntOp::create(b, i32, 0)); // f16
    call(b, "sqa_emu_mma_m16n8k16", args);
    SmallVector<Value> d = results(4, f32, "sqa_emu_result_f32");
    Value result =
        arith::ConstantOp::create(b, b.getZeroAttr(mma.getRes().getType()));
    for (int64_t i = 0; i < 4; ++i)
      result = vector::InsertOp::create(b, d[i], result,
                                        ArrayRef<int64_t>{i / 2, i % 2});
    op->getResult(0).replaceAllUsesWith(result);
  } else if (auto ptx = dyn_cast<NVVM::InlinePtxOp>(op)) {
    bool exp2 = ptx.getPtxCode().starts_with("ex2.approx");
    bool log2 = ptx.getPtxCode().starts_with("lg2.approx");
    if ((!exp2 && !log2) || op->getNumOperands() != 1 ||
        op->getNumResults() != 1)
      return op->emitError("only ex2.approx and lg2.approx inline PTX are "
                           "emulated");
    Value x = op->getOperand(0);
    op->getResult(0).replaceAllUsesWith(
        exp2 ? math::Exp2Op::create(b, x).getResult()
             : math::Log2Op::create(b, x).getResult());
  } else if (auto mma = dyn_cast<NVVM::MmaOp>(op)) {
    SmallVector<Value> args(op->getOperands());
    args.push_back(arith::ConstantIntOp::create(b, i32, 1)); // bf16
    call(b, "sqa_emu_mma_m16n8k16", args);
    SmallVector<Value> d = results(4, f32, "sqa_emu_result_f32");
    for (Operation *user : llvm::make_early_inc_range(op->getUsers())) {
      auto extract = dyn_cast<LLVM::ExtractValueOp>(user);
      if (!extract || extract.getPosition().size() != 1)
        return op->emitError("expected extractvalue users of nvvm.mma.sync");
      extract.getResult().replaceAllUsesWith(d[extract.getPosition()[0]]);
      erased.insert(extract);
      extract->erase();
    }
  } else {
    return success();
  }
  op->erase();
  return success();
}

LogicalResult Emulator::run() {
  SmallVector<gpu::GPUModuleOp> gpuModules(module.getOps<gpu::GPUModuleOp>());
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  for (gpu::GPUModuleOp gpuModule : gpuModules) {
    for (auto kernel : gpuModule.getOps<gpu::GPUFuncOp>()) {
      SmallVector<Type> args(kernel.getArgumentTypes());
      args.push_back(MemRefType::get({ShapedType::kDynamic}, b.getI8Type()));
      auto func = func::FuncOp::create(b, kernel.getLoc(), kernel.getName(),
                                       FunctionType::get(ctx, args, {}));
      func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
      if (Attribute launch = kernel->getAttr(gpu_abi::kLaunchAttrName))
        func->setAttr(gpu_abi::kLaunchAttrName, launch);
      IRMapping mapping;
      kernel.getBody().cloneInto(&func.getBody(), mapping);
      Block &entry = func.getBody().front();
      sharedMemory = entry.addArgument(args.back(), kernel.getLoc());
      func.walk([&](gpu::ReturnOp ret) {
        OpBuilder rb(ret);
        func::ReturnOp::create(rb, ret.getLoc());
        ret.erase();
      });
      // Shared memory is ordinary host memory here.
      func.walk([&](Operation *op) {
        for (Value result : op->getResults())
          if (auto type = dyn_cast<MemRefType>(result.getType()))
            if (type.getMemorySpace())
              result.setType(MemRefType::get(
                  type.getShape(), type.getElementType(), type.getLayout()));
      });
      SmallVector<Operation *> ops;
      func.walk([&](Operation *op) { ops.push_back(op); });
      for (Operation *op : ops)
        if (!erased.contains(op) && failed(rewrite(op)))
          return failure();
    }
  }
  // Only the emulated kernels remain: host launches need a GPU runtime.
  for (Operation &op : llvm::make_early_inc_range(*module.getBody())) {
    auto func = dyn_cast<func::FuncOp>(op);
    bool keep =
        func && (func.isPrivate() || func->hasAttr(gpu_abi::kLaunchAttrName));
    if (!keep)
      op.erase();
    else if (func)
      // The geometry was read from the kernel-stage IR; LLVM IR has no use
      // for it.
      func->removeAttr(gpu_abi::kLaunchAttrName);
  }
  module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  return success();
}

namespace {
struct EmulateGPUKernelsPass
    : public PassWrapper<EmulateGPUKernelsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(EmulateGPUKernelsPass)

  StringRef getArgument() const final { return "sqa-emulate-gpu-kernels"; }
  StringRef getDescription() const final {
    return "Test pass: turn generated CUDA kernels into host functions run by "
           "one CPU thread per GPU thread (test/lib/cuda/gpu_emulator.c)";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry
        .insert<arith::ArithDialect, func::FuncDialect, math::MathDialect,
                memref::MemRefDialect, ub::UBDialect, vector::VectorDialect>();
  }
  void runOnOperation() override {
    if (failed(Emulator(getOperation()).run()))
      signalPassFailure();
  }
};
} // namespace

namespace mlir::sqa::test {
void registerEmulateGPUKernelsPass() {
  PassRegistration<EmulateGPUKernelsPass>();
}
} // namespace mlir::sqa::test
