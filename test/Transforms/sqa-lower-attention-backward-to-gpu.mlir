// RUN: sqa-opt %s -sqa-lower-attention-backward-to-gpu="tensor-cores=false" | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-attention-backward-to-gpu="tile=16 tensor-cores=false" | FileCheck %s --check-prefix=TILE
// RUN: sqa-opt %s -sqa-lower-attention-backward-to-gpu | FileCheck %s --check-prefix=TC

// GQA backward: two launches over one parameter list (GPUKernelABI.def's
// training list): dK/dV on a grid y of kv heads, then dQ on query heads;
// P recomputed with ex2.approx; no atomics; gradients rounded to bf16 once.
// CHECK-LABEL: func.func @gqa
// CHECK-NOT: sqa.attention_backward
// CHECK: gpu.launch_func @sqa_kernels::@gqa_dkdv
// CHECK: gpu.launch_func @sqa_kernels::@gqa_dq
// CHECK: gpu.func @gqa_dkdv(
// CHECK-SAME: sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 128, heads_per_block = 1, output_heads = 2, shared_memory_bytes = 33024>
// CHECK-SAME: sqa.gpu_training_stage = "dkdv"
// CHECK: gpu.dynamic_shared_memory
// CHECK: gpu.barrier
// CHECK: ex2.approx.ftz.f32
// CHECK-NOT: atomic
// CHECK: arith.truncf {{.*}} : f32 to bf16
// CHECK: gpu.func @gqa_dq(
// CHECK-SAME: sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 128, heads_per_block = 1, output_heads = 8, shared_memory_bytes = 32768>
// CHECK-SAME: sqa.gpu_training_stage = "dq"
// CHECK: ex2.approx.ftz.f32
// CHECK-NOT: atomic
// CHECK: arith.truncf {{.*}} : f32 to bf16
// TILE: shared_memory_bytes = 16512
// TILE: shared_memory_bytes = 16384

// Tensor cores (the default for bf16, D = 128): the same two launches with
// 64 keys or rows per block of 4 warps; K, V (dK/dV) or Q, dO (dQ) of the
// block plus a 32-row streamed tile, staged by cp.async, read by ldmatrix;
// bf16 mma.sync with f32 accumulators; P and dS rounded to bf16 as MMA
// operands; no atomics.
// TC-LABEL: func.func @gqa
// TC: gpu.launch_func @sqa_kernels::@gqa_dkdv
// TC: gpu.launch_func @sqa_kernels::@gqa_dq
// TC: gpu.func @gqa_dkdv(
// TC-SAME: sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 64, heads_per_block = 1, output_heads = 2, shared_memory_bytes = 52480>
// TC-SAME: sqa.gpu_training_stage = "dkdv"
// TC: nvgpu.device_async_copy
// TC: nvgpu.ldmatrix
// TC: nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>
// TC: ex2.approx.ftz.f32
// TC: arith.truncf {{.*}} : vector<2xf32> to vector<2xbf16>
// TC: nvvm.mma.sync
// TC-NOT: atomic
// TC: gpu.func @gqa_dq(
// TC-SAME: sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 64, heads_per_block = 1, output_heads = 8, shared_memory_bytes = 52736>
// TC-SAME: sqa.gpu_training_stage = "dq"
// TC: nvvm.mma.sync
// TC: ex2.approx.ftz.f32
// TC: nvvm.mma.sync
// TC-NOT: atomic
// TC: gpu.return
func.func @gqa(%q: memref<?x8x?x128xbf16>, %k: memref<?x2x?x128xbf16>,
               %v: memref<?x2x?x128xbf16>, %o: memref<?x8x?x128xbf16>,
               %g: memref<?x8x?x128xbf16>, %l: memref<?x8x?xf32>,
               %dq: memref<?x8x?x128xbf16>, %dk: memref<?x2x?x128xbf16>,
               %dv: memref<?x2x?x128xbf16>) {
  sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : memref<?x8x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?xf32>)
      outs(%dq, %dk, %dv : memref<?x8x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>)
      {mask = #sqa.mask<causal = true>}
  return
}
