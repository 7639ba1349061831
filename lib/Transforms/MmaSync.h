//===- MmaSync.h - The m16n8k16 tensor-core leaf of the GPU kernels -*- C++ -*-//
//
// The one mma.sync micro-kernel the forward and backward GPU kernels share:
// f16 goes through nvgpu.mma.sync, bf16 through the NVVM op on packed i32
// pairs (nvgpu-to-nvvm cannot deduce bf16 PTX types).
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_TRANSFORMS_MMASYNC_H
#define SQA_LIB_TRANSFORMS_MMASYNC_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <array>

namespace mlir::sqa {

/// D = A * B + C for one m16n8k16 tile: `a` holds the thread's 4 A pairs and
/// `bFrag` its 2 B pairs (vector<2xelement>, element f16 or bf16), `c` its 4
/// f32 accumulators (row-major pairs, as mma.sync lays them out).
std::array<Value, 4> emitMmaSyncM16N8K16(ImplicitLocOpBuilder &b, Type element,
                                         ArrayRef<Value> a,
                                         ArrayRef<Value> bFrag,
                                         ArrayRef<Value> c);

} // namespace mlir::sqa

#endif // SQA_LIB_TRANSFORMS_MMASYNC_H
