// RUN: sqa-opt %s --sqa-cpu-pipeline | FileCheck %s
// RUN: sqa-opt %s --sqa-cpu-pipeline="emit-c-interface=false" | FileCheck %s --check-prefix=NOCIFACE
// RUN: sqa-opt %s --pass-pipeline='builtin.module(sqa-cpu-pipeline{emit-c-interface=true buffer-alignment=128})' | FileCheck %s --check-prefix=ALIGN

// The pipeline takes sqa.attention with memref arguments (the ABI every
// driver uses) all the way to the LLVM dialect, with a C wrapper.
// CHECK-NOT: sqa.
// CHECK-NOT: linalg.
// CHECK-NOT: memref.
// CHECK-NOT: func.func
// CHECK-LABEL: llvm.func @attention(
// CHECK: llvm.intr.exp
// CHECK-LABEL: llvm.func @_mlir_ciface_attention(
// CHECK-SAME: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr)

// NOCIFACE: llvm.func @attention(
// NOCIFACE-NOT: _mlir_ciface_

// Scratch buffers honour the requested alignment.
// ALIGN: llvm.mlir.constant(128 : index)

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
