// FUZZ-ARGS: --sqa-lower-flash-attention=mr=4611686018427387904
// Found by test/Fuzz/fuzz.py: no exit after 5.0 s
// RUN: sqa-opt %s -sqa-lower-flash-attention | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-flash-attention="vector-width=16 mr=4 nr=2 kv-block=32" | FileCheck %s --check-prefix=WIDE
// RUN: not sqa-opt %s -sqa-lower-flash-attention="kv-block=40" 2>&1 | FileCheck %s --check-prefix=BADBLOCK

// A GQA tile (2 query heads over 1 kv head) in buffer form.
// CHECK-LABEL: func @tile
// Scratch: stacked queries [M, D], accumulator [M, Dv padded to 16],
// scores [M, kv-block], packed K^T [D, kv-block], packed V [kv-block, 16].
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?x24xf32>
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?x16xf32>
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<1x64xf32>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<24x64xf32>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<64x16xf32>
// Queries arrive scaled by 1/sqrt(24) and converted to f32.
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// The loop over key blocks starts after the window's left edge and stops at
// the causal diagonal of the last row.
// CHECK: scf.for %[[BLK:.+]] = %{{.+}} to %{{.+}} step %c1
// K is packed transposed.
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}] : memref<24x64xf32>
// Q.K^T micro-kernel: 4611686018427387904 rows x 2 vectors of 8 lanes = 12 accumulators,
// reduction over D.
// CHECK: scf.for %{{.+}} = %c0 to %c24 step %c1 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-12: vector.fma
// Only blocks that cross a mask bound or run past T are masked.
// CHECK: scf.if
// CHECK: arith.select %{{.+}}, %{{.+}}, %cst{{.*}} : f32
// Online softmax: block max, rescale, exp as a polynomial, running sum.
// CHECK: vector.reduction <maximumf>
// CHECK: vector.reduction <add>
// P.V micro-kernel, the accumulator rescaled on load.
// CHECK: scf.for %{{.+}} = %c0 to %c64 step %c1 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-12: vector.fma
// Normalize once, round once to bf16.
// CHECK: arith.divf
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK-COUNT-8: memref.dealloc
// CHECK-NOT: math.exp

// WIDE-LABEL: func @tile
// WIDE: iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
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
                {mask = #sqa.mask<causal = false, window_left = 100>}
  return
}

// BADBLOCK: kv-block (40) must be a positive multiple of nr * vector-width (16)
