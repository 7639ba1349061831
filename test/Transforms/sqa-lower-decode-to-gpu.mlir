// RUN: sqa-opt %s -sqa-lower-decode-to-gpu | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-decode-to-gpu="kv-block=16 split-keys=64 rows-per-block=8" | FileCheck %s --check-prefix=KNOBS

// GQA decode with new tokens: three launches over one parameter list (the
// decode lists of GPUKernelABI.def: 8 buffers, 21 scalars), the scratch
// partials from gpu.alloc; the split kernel's 16-byte loads and shared
// memory, ex2.approx softmax, the merge kernel in split order.
// CHECK-LABEL: func.func @gqa_append
// CHECK-NOT: sqa.decode
// CHECK: gpu.alloc
// CHECK: gpu.launch_func @sqa_kernels::@gqa_append_append
// CHECK: gpu.launch_func @sqa_kernels::@gqa_append_split
// CHECK-SAME: dynamic_shared_memory_size
// CHECK: gpu.launch_func @sqa_kernels::@gqa_append_merge
// CHECK: gpu.dealloc
// Without new tokens (@memory below): no append kernel.
// CHECK-LABEL: func.func @memory
// CHECK-NOT: launch_func @sqa_kernels::@memory_append
// CHECK: gpu.launch_func @sqa_kernels::@memory_split
// CHECK: gpu.launch_func @sqa_kernels::@memory_merge
// CHECK: gpu.func @gqa_append_append(
// CHECK-SAME: sqa.gpu_decode_stage = "append"
// CHECK: vector.load {{.*}} {alignment = 16 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<8xbf16>
// CHECK: gpu.func @gqa_append_split(
// CHECK-SAME: sqa.gpu_decode_split_keys = 256
// CHECK-SAME: sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 16, heads_per_block = 4, output_heads = 8, shared_memory_bytes = 26816>
// CHECK: gpu.dynamic_shared_memory
// CHECK: gpu.barrier
// CHECK: ex2.approx.ftz.f32
// CHECK: gpu.func @gqa_append_merge(
// CHECK: scf.for
// CHECK: ex2.approx.ftz.f32
// CHECK: arith.truncf {{.*}} : f32 to bf16
// KNOBS: sqa.gpu_decode_split_keys = 64
// KNOBS-SAME: rows_per_block = 8
func.func @gqa_append(%q: memref<?x8x?x64xbf16>, %kc: memref<?x2x?x64xbf16>, %vc: memref<?x2x?x64xbf16>,
                      %l: memref<?xi64>, %kn: memref<?x2x?x64xbf16>, %vn: memref<?x2x?x64xbf16>,
                      %o: memref<?x8x?x64xbf16>) {
  sqa.decode query(%q : memref<?x8x?x64xbf16>)
             cache(%kc, %vc : memref<?x2x?x64xbf16>, memref<?x2x?x64xbf16>)
             lengths(%l : memref<?xi64>)
             append(%kn, %vn : memref<?x2x?x64xbf16>, memref<?x2x?x64xbf16>)
             outs(%o : memref<?x8x?x64xbf16>)
             {mask = #sqa.mask<causal = true, alignment = bottom_right>}
  return
}

// See above.
func.func @memory(%q: memref<?x2x?x32xf32>, %kc: memref<?x4x?x32xf32>, %l: memref<?xi64>,
                  %o: memref<?x4x?x32xf32>) {
  sqa.decode query(%q : memref<?x2x?x32xf32>) cache(%kc, %kc : memref<?x4x?x32xf32>, memref<?x4x?x32xf32>)
             lengths(%l : memref<?xi64>) outs(%o : memref<?x4x?x32xf32>)
  return
}
