//===- GPUHostSupport.h - Host side of the GPU lowerings --------*- C++ -*-===//
//
// How a GPU lowering hands a strided memref to a generated kernel: a flat
// 1-D view plus (batch, head, position) strides. Shared by the attention and
// decode lowerings, so every kernel sees its operands the same way.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_GPUHOSTSUPPORT_H
#define SQA_TRANSFORMS_GPUHOSTSUPPORT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

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
