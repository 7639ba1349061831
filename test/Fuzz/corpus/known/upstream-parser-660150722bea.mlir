// FUZZ-ARGS: --sqa-tile-attention=head-tile=0
// Found by test/Fuzz/fuzz.py: signal 11: <unknown>:0: warning: could not cast operand of type 'bf16' to 'index'
// RUN: sqa-opt %s -sqa-lower-projections | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-projections="mr=4 nr=1 kc=32 nc=64" | FileCheck %s --check-prefix=SMALL

#lhs = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#rhs = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// A projection with a shared bf16 weight: weight blocks are packed into index
// panels, row blocks run in an scf.forall, 6 x 2 vector register tiles.
// CHECK-LABEL: func @projection
// CHECK-NOT: linalg.batch_matmul
// CHECK: %[[PACK:.+]] = memref.alloc() {alignment = 64 : i64} : memref<8x256x16xindex>
// CHECK: scf.for
// CHECK: scf.for
// CHECK: vector.load %{{.+}} : memref<300x128xbf16>, vector<8xbf16>
// CHECK: arith.extf %{{.+}} : vector<8xbf16> to vector<8xindex>
// CHECK: vector.store %{{.+}}, %[[PACK]]
// CHECK: scf.forall
// CHECK: scf.if
// CHECK: iter_args
// CHECK-COUNT-12: vector.fma
// CHECK: memref.dealloc %[[PACK]]

// SMALL: memref.alloc() {alignment = 64 : i64} : memref<8x32x8xindex>
// SMALL: iter_args
// SMALL-COUNT-4: vector.fma
func.func @projection(%x: memref<?x?x300xbf16>, %w: memref<300x128xbf16>, %c: memref<?x?x128xindex>) {
  linalg.batch_matmul indexing_maps = [#lhs, #rhs, #out]
      ins(%x, %w : memref<?x?x300xbf16>, memref<300x128xbf16>) outs(%c : memref<?x?x128xindex>)
  return
}

// N = 12 is not a multiple of the vector width: left for the loop lowering.
// CHECK-LABEL: func @narrow
// CHECK: linalg.batch_matmul
func.func @narrow(%x: memref<?x?x16xindex>, %w: memref<16x12xindex>, %c: memref<?x?x12xindex>) {
  linalg.batch_matmul indexing_maps = [#lhs, #rhs, #out]
      ins(%x, %w : memref<?x?x16xindex>, memref<16x12xindex>) outs(%c : memref<?x?x12xindex>)
  return
}
