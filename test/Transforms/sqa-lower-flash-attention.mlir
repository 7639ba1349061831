// RUN: sqa-opt %s -sqa-lower-flash-attention | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-flash-attention="vector-width=16 mr=8 nr=2 kv-block=32" | FileCheck %s --check-prefix=WIDE
// RUN: not sqa-opt %s -sqa-lower-flash-attention="kv-block=42" 2>&1 | FileCheck %s --check-prefix=BADBLOCK

// A GQA tile (2 query heads over 1 kv head) in buffer form, bf16.
// CHECK-LABEL: func @tile
// Scratch, query rows along lanes: Q^T [D, M], O^T [Dv padded to mr = 4, M],
// row max / sum / rescale [M], S^T [kv-block, M]; bf16 K and V blocks are
// converted to f32 row-major [kv-block, D] and [kv-block, Dv].
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<24x?xf32>
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<12x?xf32>
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<64x?xf32>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<64x24xf32>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<64x10xf32>
// Queries arrive scaled by log2(e)/sqrt(24) and converted to f32.
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// The loop over key blocks starts after the window's left edge and stops at
// the causal diagonal of the last row.
// CHECK: scf.for %[[BLK:.+]] = %{{.+}} to %{{.+}} step %c1
// The block's keys and values are converted, not transposed.
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}] : memref<64x24xf32>
// Q.K^T micro-kernel: 4 keys x 2 row vectors of 8 lanes = 8 accumulators,
// reduction over D.
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %c24 step %c1{{.*}} iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-8: vector.fma
// Only blocks that cross a mask bound or run past T are masked.
// CHECK: scf.if
// CHECK: arith.select %{{.+}}, %{{.+}}, %cst{{.*}} : f32
// Online softmax on 8 rows at once: vector maxima without NaN handling, no
// horizontal reduction, exp2 as a polynomial.
// CHECK-NOT: vector.reduction
// CHECK: arith.maxnumf %{{.+}}, %{{.+}} fastmath<nnan> : vector<8xf32>
// CHECK: math.roundeven %{{.+}} : vector<8xf32>
// CHECK-COUNT-6: math.fma
// CHECK: arith.shli %{{.+}}, %{{.+}} : vector<8xi32>
// P.V micro-kernel over the block's valid keys; the rescale is skipped
// unless some row of the tile changed its max.
// CHECK: vector.reduction <or>, %{{.+}} : vector<8xi1> into i1
// CHECK: scf.if %{{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: arith.mulf %{{.+}}, %{{.+}} : vector<8xf32>
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %{{.+}} step %c1{{.*}} iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-8: vector.fma
// Normalize once, round once to bf16.
// CHECK: arith.divf
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK-COUNT-8: memref.dealloc
// CHECK-NOT: math.exp

// WIDE-LABEL: func @tile
// WIDE: iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
func.func @tile(%q: memref<1x2x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                %k: memref<1x1x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                %v: memref<1x1x?x10xbf16, strided<[?, ?, 10, 1], offset: ?>>,
                %o: memref<1x2x?x10xbf16, strided<[?, ?, 10, 1], offset: ?>>,
                %diag: index) {
  sqa.attention ins(%q, %k, %v : memref<1x2x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x10xbf16, strided<[?, ?, 10, 1], offset: ?>>)
                outs(%o : memref<1x2x?x10xbf16, strided<[?, ?, 10, 1], offset: ?>>)
                diagonal_offset(%diag)
                {mask = #sqa.mask<causal = true, window_left = 100>}
  return
}

// BADBLOCK: kv-block (42) must be a multiple of mr (4) and of 4

// f32 K and V are read in place: no K/V scratch, no transpose.
// CHECK-LABEL: func @tile_f32
// CHECK-NOT: memref<64x16xf32>
// CHECK: memref.load %arg1[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<1x1x?x16xf32
// CHECK: vector.broadcast %{{.+}} : f32 to vector<8xf32>
// CHECK: memref.load %arg2[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<1x1x?x16xf32
// CHECK-COUNT-6: memref.dealloc
// CHECK-NOT: memref.dealloc
func.func @tile_f32(%q: memref<1x4x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>,
                    %k: memref<1x1x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>,
                    %v: memref<1x1x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>,
                    %o: memref<1x4x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>) {
  sqa.attention ins(%q, %k, %v : memref<1x4x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>,
                                 memref<1x1x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>,
                                 memref<1x1x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>)
                outs(%o : memref<1x4x?x16xf32, strided<[?, ?, 16, 1], offset: ?>>)
  return
}

// f32 at D = 64: the row scratch gets an odd number of 64-byte lines per row
// (a power-of-two pitch would put a column walk into a few L1 sets), and V,
// which P.V walks down a column, is copied per block with pitch 64 + 16.
// K is still read in place.
// CHECK-LABEL: func @pitch_f32
// CHECK: %[[LINES:.+]] = arith.ori %{{.+}}, %c1{{.*}} : index
// CHECK: %[[PITCH:.+]] = arith.muli %[[LINES]], %c16{{.*}} : index
// CHECK: memref.alloc(%[[PITCH]]) {alignment = 64 : i64} : memref<64x?xf32>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<64x80xf32>
// CHECK-NOT: memref<64x64xf32>
// CHECK: vector.load %arg2[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<1x1x?x64xf32{{.*}}>, vector<8xf32>
// CHECK: memref.load %arg1[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<1x1x?x64xf32
// CHECK-COUNT-7: memref.dealloc
// CHECK-NOT: memref.dealloc
func.func @pitch_f32(%q: memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                     %k: memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                     %v: memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                     %o: memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>) {
  sqa.attention ins(%q, %k, %v : memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                                 memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                                 memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>)
                outs(%o : memref<1x1x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>)
  return
}
