// RUN: sqa-opt %s --sqa-cuda-pipeline="format=isa" | FileCheck %s --dump-input=never
// RUN: sqa-opt %s --sqa-cuda-pipeline="format=isa chip=sm_80 features=+ptx76" | FileCheck %s --check-prefix=SM80 --dump-input=never
// RUN: not sqa-opt %s --sqa-cuda-pipeline="chip=sm_75" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=elf" 2>&1 | FileCheck %s --check-prefix=FORMAT

// From tensors (bufferized as on the CPU) to host LLVM code launching a
// kernel that gpu-module-to-binary serialized to PTX (format=isa needs no
// CUDA toolkit).

// CHECK: llvm.func @sqa_causal
// CHECK: gpu.launch_func @sqa_kernels::@sqa_causal_attention
// CHECK: gpu.binary @sqa_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">
// The PTX (one escaped string): cp.async tiles, ldmatrix fragments (plain
// for Q and K, transposed for V), f16 tensor-core MMAs, exp2 as ex2.approx,
// quad shuffles and block barriers. test/AOT checks the PTX as text.
// CHECK-SAME: .target sm_90
// CHECK-DAG: .entry sqa_causal_attention(
// CHECK-DAG: cp.async.cg.shared.global
// CHECK-DAG: cp.async.commit_group
// CHECK-DAG: cp.async.wait_group
// CHECK-DAG: bar.sync
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK-DAG: shfl.sync.bfly.b32
// CHECK-DAG: ex2.approx.ftz.f32
// CHECK-NOT: __nv_

// SM80: #nvvm.target<O = 3, chip = "sm_80", features = "+ptx76">
// SM80-SAME: .target sm_80

// CHIP: chip must be sm_80 or later (cp.async, bf16 tensor cores), got 'sm_75'
// FORMAT: format must be isa, bin or fatbin, got 'elf'

func.func @sqa_causal(%q: tensor<?x8x?x64xf16>, %k: tensor<?x4x?x64xf16>,
                      %v: tensor<?x4x?x64xf16>, %o: tensor<?x8x?x64xf16>)
    -> tensor<?x8x?x64xf16> {
  %r = sqa.attention ins(%q, %k, %v : tensor<?x8x?x64xf16>, tensor<?x4x?x64xf16>, tensor<?x4x?x64xf16>)
      outs(%o : tensor<?x8x?x64xf16>)
      {mask = #sqa.mask<causal = true, alignment = top_left, window_left = -1, window_right = -1>}
      -> tensor<?x8x?x64xf16>
  return %r : tensor<?x8x?x64xf16>
}
