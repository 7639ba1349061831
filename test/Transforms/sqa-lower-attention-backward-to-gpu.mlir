// RUN: sqa-opt %s -sqa-lower-attention-backward-to-gpu | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-attention-backward-to-gpu="tile=16" | FileCheck %s --check-prefix=TILE

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
