//===- MmaSync.cpp - The m16n8k16 tensor-core leaf of the GPU kernels -----===//

#include "MmaSync.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

std::array<Value, 4> mlir::sqa::emitMmaSyncM16N8K16(ImplicitLocOpBuilder &b,
                                                    Type element,
                                                    ArrayRef<Value> a,
                                                    ArrayRef<Value> bFrag,
                                                    ArrayRef<Value> c) {
  Type f32Type = b.getF32Type();
  std::array<Value, 4> out;
  if (element.isF16()) {
    Value aVec = arith::ConstantOp::create(
        b, b.getZeroAttr(VectorType::get({4, 2}, element)));
    for (int64_t i = 0; i < 4; ++i)
      aVec = vector::InsertOp::create(b, a[i], aVec, i);
    Value bVec = arith::ConstantOp::create(
        b, b.getZeroAttr(VectorType::get({2, 2}, element)));
    for (int64_t i = 0; i < 2; ++i)
      bVec = vector::InsertOp::create(b, bFrag[i], bVec, i);
    Value cVec = arith::ConstantOp::create(
        b, b.getZeroAttr(VectorType::get({2, 2}, f32Type)));
    for (int64_t i = 0; i < 4; ++i)
      cVec = vector::InsertOp::create(b, c[i], cVec,
                                      ArrayRef<int64_t>{i / 2, i % 2});
    Value d = nvgpu::MmaSyncOp::create(b, aVec, bVec, cVec,
                                       ArrayRef<int64_t>{16, 8, 16});
    for (int64_t i = 0; i < 4; ++i)
      out[i] = vector::ExtractOp::create(b, d, ArrayRef<int64_t>{i / 2, i % 2});
    return out;
  }
  // bf16: the NVVM op takes the pairs packed into i32.
  auto i32 = b.getI32Type();
  auto asI32 = [&](Value pair) -> Value {
    Value packed =
        vector::BitCastOp::create(b, VectorType::get({1}, i32), pair);
    return vector::ExtractOp::create(b, packed, 0);
  };
  SmallVector<Value> aRegs, bRegs;
  for (Value v : a)
    aRegs.push_back(asI32(v));
  for (Value v : bFrag)
    bRegs.push_back(asI32(v));
  auto resultType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(4, f32Type));
  Value d = NVVM::MmaOp::create(
      b, resultType, aRegs, bRegs, c, ArrayRef<int64_t>{16, 8, 16},
      std::nullopt, std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  for (int64_t i = 0; i < 4; ++i)
    out[i] = LLVM::ExtractValueOp::create(b, d, i);
  return out;
}
