// RUN: sqa-opt %s --sqa-cpu-pipeline | FileCheck %s
// RUN: sqa-opt %s --sqa-cpu-pipeline="attention-kernel=reference" | FileCheck %s --check-prefix=REF
// RUN: sqa-opt %s --sqa-cpu-pipeline="emit-c-interface=false" | FileCheck %s --check-prefix=NOCIFACE
// RUN: sqa-opt %s --pass-pipeline='builtin.module(sqa-cpu-pipeline{attention-kernel=reference buffer-alignment=128})' | FileCheck %s --check-prefix=ALIGN
// RUN: sqa-opt %s --sqa-cpu-pipeline="vector-width=16 kv-block=64" | FileCheck %s --check-prefix=AVX512

// The pipeline takes sqa.attention with memref arguments (the ABI every
// driver uses) all the way to the LLVM dialect (plus omp for the parallel
// tiles), with a C wrapper.
// CHECK-NOT: sqa.
// CHECK-NOT: linalg.
// CHECK-NOT: memref.
// CHECK-NOT: func.func
// CHECK-LABEL: llvm.func @attention(
// Tiles run on OpenMP threads.
// CHECK: omp.parallel
// CHECK: omp.wsloop schedule(dynamic)
// CHECK: omp.loop_nest
// Register-blocked micro-kernels on 8 x f32 vectors.
// CHECK: llvm.intr.fmuladd{{.*}} : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// exp is a vector polynomial, not a libm call per lane.
// CHECK-NOT: llvm.call @expf
// CHECK-LABEL: llvm.func @_mlir_ciface_attention(
// CHECK-SAME: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr)

// The reference kernel: single-threaded loops and a scalar exp.
// REF-NOT: omp.
// REF: llvm.intr.exp
// REF-NOT: omp.

// NOCIFACE: llvm.func @attention(
// NOCIFACE-NOT: _mlir_ciface_

// Scratch buffers honour the requested alignment.
// ALIGN: llvm.mlir.constant(128 : index)

// AVX512: llvm.intr.fmuladd{{.*}} : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>

func.func @attention(%q: memref<?x8x?x16xf16>, %k: memref<?x2x?x16xf16>,
                     %v: memref<?x2x?x16xf16>, %o: memref<?x8x?x16xf16>) {
  %qt = bufferization.to_tensor %q restrict : memref<?x8x?x16xf16> to tensor<?x8x?x16xf16>
  %kt = bufferization.to_tensor %k restrict : memref<?x2x?x16xf16> to tensor<?x2x?x16xf16>
  %vt = bufferization.to_tensor %v restrict : memref<?x2x?x16xf16> to tensor<?x2x?x16xf16>
  %ot = bufferization.to_tensor %o restrict writable : memref<?x8x?x16xf16> to tensor<?x8x?x16xf16>
  %r = sqa.attention ins(%qt, %kt, %vt : tensor<?x8x?x16xf16>, tensor<?x2x?x16xf16>, tensor<?x2x?x16xf16>)
                     outs(%ot : tensor<?x8x?x16xf16>)
                     {mask = #sqa.mask<causal = true>} -> tensor<?x8x?x16xf16>
  bufferization.materialize_in_destination %r in restrict writable %o
      : (tensor<?x8x?x16xf16>, memref<?x8x?x16xf16>) -> ()
  return
}
