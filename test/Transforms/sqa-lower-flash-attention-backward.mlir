// RUN: sqa-opt %s -sqa-lower-flash-attention-backward | FileCheck %s
// RUN: not sqa-opt %s -sqa-lower-flash-attention-backward="kv-block=20" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not sqa-opt %s -sqa-lower-flash-attention-backward="query-block=0" 2>&1 | FileCheck %s --check-prefix=QBLOCK

// BLOCK: kv-block (20) must be a multiple of vector-width (8)
// QBLOCK: query-block must be in [1, 65536], got 0

// GQA 8/4, causal: Delta over (batch, 8 output heads); dK/dV over (batch,
// 4 kv heads, key blocks) with K^T/V^T packed [D, kv-block], P and dS
// tiles [query-block, kv-block] and dK/dV accumulators [kv-block, D];
// 2 x 4 register tiles (vector.fma); dQ over (batch, 8 query heads, query
// tiles) with q^T [D, query-block], per-row lse/Delta/key range, P^T and
// dS^T [kv-block, query-block] and dQ^T [D, query-block]. The only
// sequence-sized buffer is Delta [B, H, S]; nothing is S x T.
// CHECK-LABEL: func @gqa
// CHECK: %[[DELTA:.*]] = memref.alloc(%{{.*}}, %{{.*}}) {{.*}} : memref<?x8x?xf32>
// CHECK: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, %c8)
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}}, %c4, %{{.*}})
// CHECK: memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<16x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<64x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<64x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<64x32xf32>
// CHECK: memref.alloc() {{.*}} : memref<64x16xf32>
// CHECK-COUNT-8: vector.fma %{{.*}} : vector<8xf32>
// CHECK: math.roundeven %{{.*}} : vector<8xf32>
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}}, %c8{{.*}}, %{{.*}})
// CHECK: memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<16x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<64xindex>
// CHECK: memref.alloc() {{.*}} : memref<64x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<64x64xf32>
// CHECK: memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK: memref.dealloc %[[DELTA]]
// CHECK-NOT: sqa.attention_backward
func.func @gqa(%q: memref<?x8x?x32xf32>, %k: memref<?x4x?x32xf32>, %v: memref<?x4x?x16xf32>,
               %o: memref<?x8x?x16xf32>, %g: memref<?x8x?x16xf32>, %l: memref<?x8x?xf32>,
               %dq: memref<?x8x?x32xf32>, %dk: memref<?x4x?x32xf32>, %dv: memref<?x4x?x16xf32>) {
  sqa.attention_backward
      ins(%q, %k, %v, %o, %g, %l : memref<?x8x?x32xf32>, memref<?x4x?x32xf32>, memref<?x4x?x16xf32>,
          memref<?x8x?x16xf32>, memref<?x8x?x16xf32>, memref<?x8x?xf32>)
      outs(%dq, %dk, %dv : memref<?x8x?x32xf32>, memref<?x4x?x32xf32>, memref<?x4x?x16xf32>)
      {mask = #sqa.mask<causal = true>}
  return
}
