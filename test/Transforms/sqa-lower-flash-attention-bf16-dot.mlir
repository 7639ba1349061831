// RUN: sqa-opt %s -sqa-lower-flash-attention="vector-width=16 bf16-dot=true" | FileCheck %s
// Without 16 lanes (or without bf16 q, k and v) the f32 kernels stay.
// RUN: sqa-opt %s -sqa-lower-flash-attention="vector-width=8 bf16-dot=true" | FileCheck %s --check-prefix=NARROW
// RUN: sqa-opt %s -sqa-lower-flash-attention="vector-width=16 bf16-dot=true" | FileCheck %s --check-prefix=NOPACK

// With bf16-dot, K and V are not converted to f32 blocks.
// NOPACK-LABEL: func @tile(
// NOPACK-NOT: {{memref<64x24xf32>|memref<64x32xf32>}}
// NOPACK-LABEL: func @tile_f16(
// NOPACK: memref<64x24xf32>

// A bf16 GQA tile (2 query heads over 1 kv head), D = 24, Dv = 32.
// CHECK-LABEL: func @tile
// Q pairs [D/2, 2M], P pairs [kv-block/2, 2M] in bf16; V pairs [kv-block/2, Dv]
// as i32; no f32 K/V blocks.
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<12x?xbf16>
// CHECK-DAG: memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<32x?xbf16>
// CHECK-DAG: memref.alloc() {alignment = 64 : i64} : memref<32x32xi32>
// V pairs: two keys' rows interleaved, the second zeroed past T.
// CHECK: vector.interleave %{{.+}}, %{{.+}} : vector<16xbf16> -> vector<32xbf16>
// CHECK: vector.bitcast %{{.+}} : vector<32xbf16> to vector<16xi32>
// Q.K^T: 4 keys x 2 row vectors, over D/2 = 12 pairs; each key pair is one
// 32-bit broadcast; then the scale.
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %c12 step %c1{{.*}} iter_args
// CHECK: vector.load %{{.+}} : memref<1x1x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>, vector<2xbf16>
// CHECK: vector.broadcast %{{.+}} : i32 to vector<16xi32>
// CHECK-COUNT-8: x86vector.avx512.dot %{{.+}}, %{{.+}}, %{{.+}} : vector<32xbf16> -> vector<16xf32>
// CHECK: arith.mulf %{{.+}}, %{{.+}} : vector<16xf32>
// P rounded to bf16 and interleaved, two keys per pair.
// CHECK: arith.truncf %{{.+}} : vector<16xf32> to vector<16xbf16>
// CHECK: vector.interleave %{{.+}}, %{{.+}} : vector<16xbf16> -> vector<32xbf16>
// P.V over ceil(valid keys / 2) pairs.
// CHECK: x86vector.avx512.dot
// NARROW-LABEL: func @tile
// NARROW-NOT: x86vector
// NARROW: vector.fma

func.func @tile(%q: memref<1x2x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                %k: memref<1x1x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                %v: memref<1x1x?x32xbf16, strided<[?, ?, 32, 1], offset: ?>>,
                %o: memref<1x2x?x32xbf16, strided<[?, ?, 32, 1], offset: ?>>) {
  sqa.attention ins(%q, %k, %v : memref<1x2x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x24xbf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x32xbf16, strided<[?, ?, 32, 1], offset: ?>>)
                outs(%o : memref<1x2x?x32xbf16, strided<[?, ?, 32, 1], offset: ?>>)
  return
}

// f16 stays on the f32 kernels (converted), as does an odd head dim.
// CHECK-LABEL: func @tile_f16
// CHECK-NOT: x86vector
// CHECK: vector.fma
func.func @tile_f16(%q: memref<1x2x?x24xf16, strided<[?, ?, 24, 1], offset: ?>>,
                    %k: memref<1x1x?x24xf16, strided<[?, ?, 24, 1], offset: ?>>,
                    %v: memref<1x1x?x32xf16, strided<[?, ?, 32, 1], offset: ?>>,
                    %o: memref<1x2x?x32xf16, strided<[?, ?, 32, 1], offset: ?>>) {
  sqa.attention ins(%q, %k, %v : memref<1x2x?x24xf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x24xf16, strided<[?, ?, 24, 1], offset: ?>>,
                                 memref<1x1x?x32xf16, strided<[?, ?, 32, 1], offset: ?>>)
                outs(%o : memref<1x2x?x32xf16, strided<[?, ?, 32, 1], offset: ?>>)
  return
}
