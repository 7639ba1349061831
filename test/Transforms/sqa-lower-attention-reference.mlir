// RUN: sqa-opt %s -sqa-lower-attention-reference -split-input-file | FileCheck %s

// GQA (8 query heads over 4 kv heads): the query and the output are reshaped
// to [B, 4, 2, S, D]; key and value keep 4 heads and their maps omit the
// group dim, so K/V are never repeated.
// CHECK-DAG: #[[GROUPED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d5)>
// CHECK-DAG: #[[SHARED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, d5)>
// CHECK-DAG: #[[SCORES:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4)>
// CHECK-DAG: #[[ID5:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
// CHECK-DAG: #[[ROW:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[VSHARED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-LABEL: func @gqa
// CHECK-SAME: (%[[Q:.+]]: tensor<?x8x?x64xbf16>, %[[K:.+]]: tensor<?x4x?x64xbf16>, %[[V:.+]]: tensor<?x4x?x32xbf16>, %[[O:.+]]: tensor<?x8x?x32xbf16>)
// CHECK-NOT: sqa.attention
// CHECK-DAG: %[[QE:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0], [1, 2], [3], [4]] output_shape [%{{.+}}, 4, 2, %{{.+}}, 64] : tensor<?x8x?x64xbf16> into tensor<?x4x2x?x64xbf16>
// CHECK-DAG: %[[OE:.+]] = tensor.expand_shape %[[O]] {{\[}}[0], [1, 2], [3], [4]] output_shape [%{{.+}}, 4, 2, %{{.+}}, 32] : tensor<?x8x?x32xbf16> into tensor<?x4x2x?x32xbf16>
// Q.K^T in f32, reduction over D.
// CHECK: %[[QK:.+]] = linalg.generic {indexing_maps = [#[[GROUPED]], #[[SHARED]], #[[SCORES]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[QE]], %[[K]] : tensor<?x4x2x?x64xbf16>, tensor<?x4x?x64xbf16>) outs(%{{.+}} : tensor<?x4x2x?x?xf32>)
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: arith.extf %{{.+}} : bf16 to f32
// Scale 1/sqrt(64) and the bottom-right causal mask as -inf.
// CHECK: %[[MASKED:.+]] = linalg.generic {indexing_maps = [#[[ID5]]]{{.*}} outs(%[[QK]] : tensor<?x4x2x?x?xf32>)
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK-DAG: linalg.index 3
// CHECK-DAG: linalg.index 4
// CHECK: arith.cmpi sle
// CHECK: arith.select %{{.+}}, %{{.+}}, %{{.+}} : f32
// Row max, then exp with an empty row's -inf max replaced by 0.
// CHECK: %[[MAX:.+]] = linalg.generic {indexing_maps = [#[[ID5]], #[[ROW]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK: arith.maximumf
// CHECK: %[[P:.+]] = linalg.generic {indexing_maps = [#[[ID5]], #[[ROW]], #[[ID5]]]
// CHECK: arith.cmpf oeq
// CHECK: math.exp
// CHECK: %[[SUM:.+]] = linalg.generic {indexing_maps = [#[[ID5]], #[[ROW]]]
// P.V, reduction over T; V's map omits the group dim too.
// CHECK: %[[PV:.+]] = linalg.generic {indexing_maps = [#[[GROUPED]], #[[VSHARED]], #[[SCORES]]]
// CHECK-SAME: ins(%[[P]], %[[V]] : tensor<?x4x2x?x?xf32>, tensor<?x4x?x32xbf16>)
// Normalize once, with 0 for an empty row, round once to bf16.
// CHECK: %[[OUT:.+]] = linalg.generic {indexing_maps = [#[[ID5]], #[[ROW]], #[[ID5]]]{{.*}} ins(%[[PV]], %[[SUM]] : {{.*}}) outs(%[[OE]] : tensor<?x4x2x?x32xbf16>)
// CHECK: arith.divf
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: %[[R:.+]] = tensor.collapse_shape %[[OUT]] {{\[}}[0], [1, 2], [3], [4]] : tensor<?x4x2x?x32xbf16> into tensor<?x8x?x32xbf16>
// CHECK: return %[[R]]
func.func @gqa(%q: tensor<?x8x?x64xbf16>, %k: tensor<?x4x?x64xbf16>,
               %v: tensor<?x4x?x32xbf16>, %o: tensor<?x8x?x32xbf16>) -> tensor<?x8x?x32xbf16> {
  %r = sqa.attention ins(%q, %k, %v : tensor<?x8x?x64xbf16>, tensor<?x4x?x64xbf16>, tensor<?x4x?x32xbf16>)
                     outs(%o : tensor<?x8x?x32xbf16>)
                     {mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<?x8x?x32xbf16>
  return %r : tensor<?x8x?x32xbf16>
}

// -----

// Reverse SQA (4 query heads, 8 kv heads): key and value are grouped, the
// query's map omits the group dim, and the output has 8 heads.
// CHECK-DAG: #[[QSHARED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d3, d5)>
// CHECK-DAG: #[[KGROUPED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4, d5)>
// CHECK-DAG: #[[VGROUPED:.+]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d5, d4)>
// CHECK-LABEL: func @reverse
// CHECK-DAG: tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2], [3], [4]] output_shape [2, 4, 2, 12, 16] : tensor<2x8x12x16xf32> into tensor<2x4x2x12x16xf32>
// CHECK-DAG: tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2], [3], [4]] output_shape [2, 4, 2, 12, 16] : tensor<2x8x12x16xf32> into tensor<2x4x2x12x16xf32>
// CHECK-NOT: tensor.expand_shape %arg0
// CHECK: linalg.generic {indexing_maps = [#[[QSHARED]], #[[KGROUPED]], {{.+}}]
// CHECK-SAME: ins(%arg0, %{{.+}} : tensor<2x4x5x16xf32>, tensor<2x4x2x12x16xf32>)
// Default scale 1/sqrt(16) and no mask: no index computations.
// CHECK: arith.constant 2.500000e-01 : f32
// CHECK-NOT: linalg.index
// CHECK: linalg.generic {indexing_maps = [{{.+}}, #[[VGROUPED]], {{.+}}]
// CHECK: tensor.collapse_shape %{{.+}} : tensor<2x4x2x5x16xf32> into tensor<2x8x5x16xf32>
func.func @reverse(%q: tensor<2x4x5x16xf32>, %k: tensor<2x8x12x16xf32>,
                   %v: tensor<2x8x12x16xf32>, %o: tensor<2x8x5x16xf32>) -> tensor<2x8x5x16xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<2x4x5x16xf32>, tensor<2x8x12x16xf32>, tensor<2x8x12x16xf32>)
                     outs(%o : tensor<2x8x5x16xf32>) -> tensor<2x8x5x16xf32>
  return %r : tensor<2x8x5x16xf32>
}

// -----

// A sliding window with both bounds, top-left aligned: the diagonal is the
// query index itself (no offset), and keys are bounded on both sides.
// CHECK-LABEL: func @window
// CHECK: linalg.generic
// CHECK: %[[I:.+]] = linalg.index 3 : index
// CHECK: %[[J:.+]] = linalg.index 4 : index
// CHECK-NOT: arith.subi %{{.+}}, %{{.+}} : index
// CHECK: %[[HI:.+]] = arith.addi %[[I]], %c2
// CHECK: arith.cmpi sle, %[[J]], %[[HI]]
// CHECK: %[[LO:.+]] = arith.subi %[[I]], %c3
// CHECK: arith.cmpi sge, %[[J]], %[[LO]]
func.func @window(%q: tensor<1x2x9x8xf32>, %k: tensor<1x2x9x8xf32>,
                  %v: tensor<1x2x9x8xf32>, %o: tensor<1x2x9x8xf32>) -> tensor<1x2x9x8xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x9x8xf32>, tensor<1x2x9x8xf32>, tensor<1x2x9x8xf32>)
                     outs(%o : tensor<1x2x9x8xf32>)
                     {mask = #sqa.mask<window_left = 3, window_right = 2>} -> tensor<1x2x9x8xf32>
  return %r : tensor<1x2x9x8xf32>
}
