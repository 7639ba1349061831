//===- GPUHostSupport.h - Host side of the GPU lowerings --------*- C++ -*-===//
//
// How a GPU lowering hands a strided memref to a generated kernel: a flat
// 1-D view plus (batch, head, position) strides. Shared by the attention,
// decode and backward lowerings, so every kernel sees its operands, and is
// declared and launched, the same way.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_GPUHOSTSUPPORT_H
#define SQA_TRANSFORMS_GPUHOSTSUPPORT_H

#include "SQA/IR/SQAAttrs.h"
#include "SQA/Utils/LoweringBuilder.h"
#include "sqa/Transforms/GPUKernelABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <string>

namespace mlir::sqa {

/// The flat view of a strided 4-D memref handed to the kernel, and its
/// (batch, head, position) strides.
struct FlatOperand {
  Value flat;
  Value strides[3];
};

inline FlatOperand flattenOperand(ImplicitLocOpBuilder &b, Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  auto meta = memref::ExtractStridedMetadataOp::create(b, memref);
  // Elements spanned: 1 + sum (size_i - 1) * stride_i.
  Value one = arith::ConstantIndexOp::create(b, 1);
  Value extent = one;
  for (int64_t i = 0; i < type.getRank(); ++i) {
    Value last = arith::SubIOp::create(b, meta.getSizes()[i], one);
    extent = arith::AddIOp::create(
        b, extent, arith::MulIOp::create(b, last, meta.getStrides()[i]));
  }
  auto flatType = MemRefType::get(
      {ShapedType::kDynamic}, type.getElementType(),
      StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}),
      type.getMemorySpace());
  Value flat = memref::ReinterpretCastOp::create(
      b, flatType, meta.getBaseBuffer(), OpFoldResult(meta.getOffset()),
      ArrayRef<OpFoldResult>{extent},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  return {flat,
          {meta.getStrides()[0], meta.getStrides()[1], meta.getStrides()[2]}};
}

/// Innermost stride 1 is what the kernel's vector copies assume.
inline bool hasUnitInnerStride(MemRefType type) {
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)))
    return false;
  return strides.back() == 1;
}

/// The gpu.module every GPU lowering adds its kernels to (created on first
/// use), with `module` marked as a GPU container module.
inline gpu::GPUModuleOp getOrCreateKernelModule(ModuleOp module) {
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(module.getContext()));
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("sqa_kernels");
  if (!kernels) {
    OpBuilder builder = OpBuilder::atBlockEnd(module.getBody());
    kernels = gpu::GPUModuleOp::create(builder, module.getLoc(), "sqa_kernels");
  }
  return kernels;
}

/// Lowers every `OpTy` of `module` with `lower(op, kernels, kernelTable)`
/// into the shared gpu.module (created only when there is an op to lower);
/// fails at the first op that does not lower.
template <typename OpTy, typename LowerFn>
LogicalResult lowerEachIntoKernelModule(ModuleOp module, LowerFn lower) {
  SmallVector<OpTy> ops;
  module.walk([&](OpTy op) { ops.push_back(op); });
  if (ops.empty())
    return success();
  gpu::GPUModuleOp kernels = getOrCreateKernelModule(module);
  SymbolTable kernelTable(kernels);
  for (OpTy op : ops)
    if (failed(lower(op, kernels, kernelTable)))
      return failure();
  return success();
}

/// The name kernels of `op` start with: its function's, else `fallback`.
inline std::string kernelBaseName(Operation *op, StringRef fallback) {
  auto parentFunc = op->getParentOfType<FunctionOpInterface>();
  return (parentFunc ? parentFunc.getName() : fallback).str();
}

/// The type of a flat kernel buffer (as flattenOperand makes them).
inline MemRefType flatBufferType(MLIRContext *ctx, Type element) {
  return MemRefType::get(
      {ShapedType::kDynamic}, element,
      StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1}));
}

/// A kernel `name` (renamed on collision) with parameters `params` added to
/// `kernels`: 1-D blocks of `threads` threads, launched as `launch` says.
inline gpu::GPUFuncOp createKernel(gpu::GPUModuleOp kernels,
                                   SymbolTable &kernelTable, Location loc,
                                   StringRef name, TypeRange params,
                                   int64_t threads, GPULaunchAttr launch) {
  MLIRContext *ctx = kernels.getContext();
  OpBuilder moduleBuilder = OpBuilder::atBlockEnd(kernels.getBody());
  auto func = gpu::GPUFuncOp::create(moduleBuilder, loc, name,
                                     FunctionType::get(ctx, params, {}));
  kernelTable.insert(func);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  func.setKnownBlockSizeAttr(
      DenseI32ArrayAttr::get(ctx, {static_cast<int32_t>(threads), 1, 1}));
  func->setAttr(gpu_abi::kLaunchAttrName, launch);
  return func;
}

/// Launches `func` on a grid of ceil(rows / rowsPerBlock) * batch x gridY
/// blocks of `threads` threads, skipped when rows or batch is 0: an empty
/// grid is not a valid launch.
inline void launchOverRows(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                           Value rows, int64_t rowsPerBlock, Value batch,
                           int64_t gridY, int64_t threads, int64_t sharedBytes,
                           ValueRange args) {
  Value one = arith::ConstantIndexOp::create(b, 1);
  Value gridX = arith::MulIOp::create(
      b,
      arith::CeilDivUIOp::create(
          b, rows, arith::ConstantIndexOp::create(b, rowsPerBlock)),
      batch);
  auto nonEmpty = scf::IfOp::create(
      b,
      arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, gridX,
                            arith::ConstantIndexOp::create(b, 0)),
      /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(nonEmpty.thenBlock());
  gpu::LaunchFuncOp::create(
      b, func,
      gpu::KernelDim3{gridX, arith::ConstantIndexOp::create(b, gridY), one},
      gpu::KernelDim3{arith::ConstantIndexOp::create(b, threads), one, one},
      arith::ConstantIntOp::create(b, b.getI32Type(), sharedBytes), args);
}

/// The (batch, head, position) strides of a kernel's N strided buffers,
/// read from its scalar arguments (3 per buffer from `firstStride(buffer)`),
/// and the element offset of a row. Shared by the training and decode
/// argument lists of GPUKernelABI.def.
template <int N> struct RowStrides {
  RowStrides(function_ref<Value(int)> scalar,
             function_ref<int(int)> firstStride) {
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < 3; ++j)
        strides[i][j] = scalar(firstStride(i) + j);
  }

  /// Element offset of row (batch, head, pos) of `buffer`.
  Value rowOffset(LoweringBuilder &lb, int buffer, Value batch, Value head,
                  Value pos) const {
    const Value *s = strides[buffer];
    return lb.add(lb.add(lb.mul(batch, s[0]), lb.mul(head, s[1])),
                  lb.mul(pos, s[2]));
  }

  Value strides[N][3];
};

/// A training kernel's arguments (the training list of GPUKernelABI.def):
/// flat buffers, their strides and the lengths. The SIMT and tensor-core
/// backward builders derive from it, so the list is read in one place.
struct TrainingKernelArguments : RowStrides<gpu_abi::kNumTrainingBuffers> {
  explicit TrainingKernelArguments(gpu::GPUFuncOp func)
      : RowStrides(
            [&](int i) {
              return func.getArgument(gpu_abi::kNumTrainingBuffers + i);
            },
            [](int buffer) {
              return gpu_abi::trainingFirstStride(
                  static_cast<gpu_abi::TrainingBuffer>(buffer));
            }) {
    using namespace gpu_abi;
    for (int i = 0; i < kNumTrainingBuffers; ++i)
      memrefs[i] = func.getArgument(i);
    queryLen = func.getArgument(kNumTrainingBuffers + kTrainingQueryLen);
    keyLen = func.getArgument(kNumTrainingBuffers + kTrainingKeyLen);
    diagonal = func.getArgument(kNumTrainingBuffers + kTrainingDiagonal);
  }

  Value memrefs[gpu_abi::kNumTrainingBuffers];
  Value queryLen, keyLen, diagonal;
};

/// 2^x and log2(x) (f32) with the approximate PTX instructions. Spelled as
/// PTX: math.exp2 / math.log2 would lower to libdevice calls, which only
/// link where a CUDA toolkit is found at compile time. ex2.approx gives +0
/// at -inf; lg2.approx gives -inf at 0.
inline Value ptxExp2(OpBuilder &b, Location loc, Value x) {
  return NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()},
                                   ValueRange{x}, ValueRange{},
                                   "ex2.approx.ftz.f32 $0, $1;", Value())
      .getResult(0);
}
inline Value ptxLog2(OpBuilder &b, Location loc, Value x) {
  return NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()},
                                   ValueRange{x}, ValueRange{},
                                   "lg2.approx.ftz.f32 $0, $1;", Value())
      .getResult(0);
}

} // namespace mlir::sqa

#endif // SQA_TRANSFORMS_GPUHOSTSUPPORT_H
