// RUN: sqa-opt %s -sqa-lower-attention-to-gpu | FileCheck %s

// The forward with lse: the same tensor-core kernel, called with
// GPUKernelABI.def's training list (9 buffers, lse f32, 30 scalars), storing
// each row's logsumexp (lg2.approx, -inf for an empty row) from one lane of
// its quad.
// CHECK-LABEL: func.func @lse
// CHECK-NOT: sqa.attention
// CHECK: gpu.launch_func @sqa_kernels::@lse_attention_lse
// CHECK: gpu.func @lse_attention_lse(%{{.*}}: memref<?xf16, strided<[1], offset: ?>>, %{{.*}}: memref<?xf16, strided<[1], offset: ?>>, %{{.*}}: memref<?xf16, strided<[1], offset: ?>>, %{{.*}}: memref<?xf16, strided<[1], offset: ?>>, %{{.*}}: memref<?xf16, strided<[1], offset: ?>>, %[[LSE:.*]]: memref<?xf32, strided<[1], offset: ?>>,
// CHECK-SAME: sqa.gpu_training_stage = "lse"
// CHECK: nvgpu.mma.sync
// CHECK: lg2.approx.ftz.f32
// CHECK: memref.store %{{.*}}, %[[LSE]]
func.func @lse(%q: memref<?x4x?x64xf16>, %k: memref<?x2x?x64xf16>, %v: memref<?x2x?x64xf16>,
               %o: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>) {
  sqa.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>)
                outs(%o : memref<?x4x?x64xf16>) lse(%l : memref<?x4x?xf32>)
  return
}
