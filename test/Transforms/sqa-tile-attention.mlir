// RUN: sqa-opt %s -sqa-tile-attention -split-input-file | FileCheck %s
// RUN: sqa-opt %s -sqa-tile-attention="query-tile=32 head-tile=4" -split-input-file | FileCheck %s --check-prefix=WIDE
// RUN: not sqa-opt %s -sqa-tile-attention="head-tile=3" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADHEADS
// RUN: not sqa-opt %s -sqa-tile-attention="query-tile=0" 2>&1 | FileCheck %s --check-prefix=BADROWS

// GQA 8/4: tiles of (1 batch, 2 output heads = one kv head's group, 64
// rows) in an scf.forall. Each tile reads one kv head, at head / 2, and the
// tile keeps the global bottom-right diagonal through diagonal_offset.
// CHECK-DAG: #[[ROWS:.+]] = affine_map<(d0)[s0] -> (-d0 + s0, 64)>
// CHECK-DAG: #[[KV:.+]] = affine_map<(d0) -> (d0 floordiv 2)>
// CHECK-LABEL: func @gqa
// CHECK-SAME: (%[[Q:.+]]: tensor<?x8x?x64xf32>, %[[K:.+]]: tensor<?x4x?x64xf32>, %[[V:.+]]: tensor<?x4x?x32xf32>, %[[O:.+]]: tensor<?x8x?x32xf32>)
// CHECK: %[[B:.+]] = tensor.dim %[[Q]], %c0
// CHECK: %[[S:.+]] = tensor.dim %[[Q]], %c2
// CHECK: scf.forall (%[[IB:.+]], %[[IH:.+]], %[[IS:.+]]) = (0, 0, 0) to (%[[B]], 8, %[[S]]) step (1, 2, 64) shared_outs(%[[ACC:.+]] = %[[O]])
// CHECK: %[[N:.+]] = affine.min #[[ROWS]](%[[IS]])[%[[S]]]
// CHECK: %[[KVH:.+]] = affine.apply #[[KV]](%[[IH]])
// CHECK: %[[QT:.+]] = tensor.extract_slice %[[Q]][%[[IB]], %[[IH]], %[[IS]], 0] [1, 2, %[[N]], 64]
// CHECK: %[[KT:.+]] = tensor.extract_slice %[[K]][%[[IB]], %[[KVH]], 0, 0] [1, 1, %{{.+}}, 64]
// CHECK: %[[VT:.+]] = tensor.extract_slice %[[V]][%[[IB]], %[[KVH]], 0, 0] [1, 1, %{{.+}}, 32]
// CHECK: %[[OT:.+]] = tensor.extract_slice %[[ACC]][%[[IB]], %[[IH]], %[[IS]], 0] [1, 2, %[[N]], 32]
// CHECK: %[[OFF:.+]] = arith.subi
// CHECK: %[[DIAG:.+]] = arith.addi %[[OFF]], %[[IS]]
// CHECK: %[[R:.+]] = sqa.attention ins(%[[QT]], %[[KT]], %[[VT]] : tensor<1x2x?x64xf32>, tensor<1x1x?x64xf32>, tensor<1x1x?x32xf32>) outs(%[[OT]] : tensor<1x2x?x32xf32>) diagonal_offset(%[[DIAG]])
// The layer's head configuration does not describe a tile.
// CHECK-NOT: heads =
// CHECK-SAME: mask = #sqa.mask<causal = true, alignment = bottom_right>
// CHECK: scf.forall.in_parallel
// CHECK: tensor.parallel_insert_slice %[[R]] into %[[ACC]][%[[IB]], %[[IH]], %[[IS]], 0] [1, 2, %[[N]], 32]

// Wider head tiles cover two groups (two kv heads).
// WIDE-LABEL: func @gqa
// WIDE: scf.forall {{.*}} step (1, 4, 32)
// WIDE: sqa.attention {{.*}} : tensor<1x4x?x64xf32>, tensor<1x2x?x64xf32>, tensor<1x2x?x32xf32>)

// BADHEADS: head tile (3) must divide the output heads (8)
// BADROWS: query-tile must be in [1, 65536], got 0
func.func @gqa(%q: tensor<?x8x?x64xf32>, %k: tensor<?x4x?x64xf32>,
               %v: tensor<?x4x?x32xf32>, %o: tensor<?x8x?x32xf32>) -> tensor<?x8x?x32xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<?x8x?x64xf32>, tensor<?x4x?x64xf32>, tensor<?x4x?x32xf32>)
                     outs(%o : tensor<?x8x?x32xf32>)
                     {heads = #sqa.heads<total = 8, query = 8, kv = 4>,
                      mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<?x8x?x32xf32>
  return %r : tensor<?x8x?x32xf32>
}

// -----

// Reverse SQA 2/4: one output head per tile; its query head is head / 2
// and its key/value head is the output head itself. Without a mask there is
// no diagonal to carry.
// CHECK-LABEL: func @reverse
// CHECK: scf.forall (%{{.+}}, %[[H:.+]], %{{.+}}) = (0, 0, 0) to (2, 4, 100) step (1, 1, 64)
// CHECK: %[[QH:.+]] = affine.apply #{{.+}}(%[[H]])
// CHECK: tensor.extract_slice %arg0[%{{.+}}, %[[QH]], %{{.+}}, 0] [1, 1, %{{.+}}, 16]
// CHECK: tensor.extract_slice %arg1[%{{.+}}, %[[H]], 0, 0] [1, 1, 30, 16]
// CHECK: sqa.attention
// CHECK-NOT: diagonal_offset
// CHECK-SAME: -> tensor<1x1x?x16xf32>
func.func @reverse(%q: tensor<2x2x100x16xf32>, %k: tensor<2x4x30x16xf32>,
                   %v: tensor<2x4x30x16xf32>, %o: tensor<2x4x100x16xf32>) -> tensor<2x4x100x16xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<2x2x100x16xf32>, tensor<2x4x30x16xf32>, tensor<2x4x30x16xf32>)
                     outs(%o : tensor<2x4x100x16xf32>) -> tensor<2x4x100x16xf32>
  return %r : tensor<2x4x100x16xf32>
}

// -----

// MQA 16/1: the group has 16 heads; by default a tile stacks the largest
// divisor of the group that keeps 64-row tiles within 256 rows: 4 heads.
// CHECK-LABEL: func @mqa
// CHECK: scf.forall {{.*}} to (1, 16, 512) step (1, 4, 64)
// CHECK: sqa.attention {{.*}} : tensor<1x4x64x32xf32>, tensor<1x1x512x32xf32>, tensor<1x1x512x32xf32>)
func.func @mqa(%q: tensor<1x16x512x32xf32>, %k: tensor<1x1x512x32xf32>,
               %v: tensor<1x1x512x32xf32>, %o: tensor<1x16x512x32xf32>) -> tensor<1x16x512x32xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x16x512x32xf32>, tensor<1x1x512x32xf32>, tensor<1x1x512x32xf32>)
                     outs(%o : tensor<1x16x512x32xf32>) -> tensor<1x16x512x32xf32>
  return %r : tensor<1x16x512x32xf32>
}
