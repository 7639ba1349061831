// RUN: sqa-opt %s -sqa-decompose-attention-layer -split-input-file | FileCheck %s

// SQA 8/4 of 16 heads (d_model 256, dh 16), rotary RoPE, bias on the output.
// CHECK-DAG: #[[LHS:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.+]] = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
// CHECK-DAG: #[[OUT:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[FIRST:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, 0, d4)>
// CHECK-DAG: #[[SECOND:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, 1, d4)>
// CHECK-LABEL: func @layer
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x?x256xf32>, %[[WQ:[^:]+]]: tensor<256x128xf32>, %[[WK:[^:]+]]: tensor<256x64xf32>, %[[WV:[^:]+]]: tensor<256x64xf32>, %[[WO:[^:]+]]: tensor<128x256xf32>, %[[BO:[^:]+]]: tensor<256xf32>, %[[INIT:[^:]+]]: tensor<?x?x256xf32>)
// CHECK-NOT: sqa.attention_layer
// Q projection: the weight map has no batch dim (broadcast, not a copy).
// CHECK: %[[Q:.+]] = linalg.batch_matmul indexing_maps = [#[[LHS]], #[[W]], #[[OUT]]] ins(%[[X]], %[[WQ]] : tensor<?x?x256xf32>, tensor<256x128xf32>)
// The epilogue splits heads and reads each rotate-half pair through two maps.
// CHECK: %[[QV:.+]] = tensor.expand_shape %[[Q]] {{\[}}[0], [1], [2, 3, 4]] {{.*}} into tensor<?x?x8x2x8xf32>
// CHECK: %[[QR:.+]] = linalg.generic {indexing_maps = [#[[FIRST]], #[[SECOND]], {{.+}}]{{.*}} ins(%[[QV]], %[[QV]] : {{.*}}) outs(%{{.+}} : tensor<?x8x?x2x8xf32>)
// CHECK: math.cos
// CHECK: math.sin
// CHECK: %[[QH:.+]] = tensor.collapse_shape %[[QR]] {{.*}} into tensor<?x8x?x16xf32>
// K: 4 heads, also rotated.
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %[[WK]] :
// CHECK: math.cos
// CHECK: %[[KH:.+]] = tensor.collapse_shape {{.*}} into tensor<?x4x?x16xf32>
// V: heads split, no rotation.
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %[[WV]] :
// CHECK-NOT: math.cos
// CHECK: %[[VH:.+]] = linalg.generic
// CHECK: %[[ATT:.+]] = sqa.attention ins(%[[QH]], %[[KH]], %[[VH]] : tensor<?x8x?x16xf32>, tensor<?x4x?x16xf32>, tensor<?x4x?x16xf32>) outs(%{{.+}} : tensor<?x8x?x16xf32>) {heads = #sqa.heads<total = 16, query = 8, kv = 4>, mask = #sqa.mask<causal = true>}
// Heads merged back to [B, S, 8*16], output projection, bias into init.
// CHECK: %[[MERGED:.+]] = linalg.generic {{.*}} ins(%[[ATT]] :
// CHECK: %[[CAT:.+]] = tensor.collapse_shape %[[MERGED]] {{\[}}[0], [1], [2, 3]] : tensor<?x?x8x16xf32> into tensor<?x?x128xf32>
// CHECK: %[[Y:.+]] = linalg.batch_matmul {{.*}} ins(%[[CAT]], %[[WO]] :
// CHECK: %[[R:.+]] = linalg.generic {{.*}} ins(%[[Y]], %[[BO]] : tensor<?x?x256xf32>, tensor<256xf32>) outs(%[[INIT]] : tensor<?x?x256xf32>)
// CHECK: return %[[R]]
func.func @layer(%x: tensor<?x?x256xf32>, %wq: tensor<256x128xf32>, %wk: tensor<256x64xf32>,
                 %wv: tensor<256x64xf32>, %wo: tensor<128x256xf32>, %bo: tensor<256xf32>,
                 %init: tensor<?x?x256xf32>) -> tensor<?x?x256xf32> {
  %y = sqa.attention_layer ins(%x : tensor<?x?x256xf32>)
         weights(%wq, %wk, %wv, %wo : tensor<256x128xf32>, tensor<256x64xf32>, tensor<256x64xf32>, tensor<128x256xf32>)
         bias_o(%bo : tensor<256xf32>) outs(%init : tensor<?x?x256xf32>)
         {heads = #sqa.heads<sqa, total = 16>, rope = #sqa.rope<kind = rotary>,
          mask = #sqa.mask<causal = true>} -> tensor<?x?x256xf32>
  return %y : tensor<?x?x256xf32>
}

// -----

// Cross-attention: K and V come from the memory; RoPE on queries only.
// Dynamic NTK scales the base from the longest length at run time.
// CHECK-LABEL: func @cross
// CHECK-SAME: (%[[X:[^:]+]]: tensor<2x5x32xbf16>, %[[M:[^:]+]]: tensor<2x9x32xbf16>
// CHECK: math.powf
// CHECK: arith.select
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %{{.+}} : tensor<2x5x32xbf16>, tensor<32x16xbf16>) outs(%{{.+}} : tensor<2x5x16xf32>)
// CHECK: math.cos
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: linalg.batch_matmul {{.*}} ins(%[[M]], %{{.+}} : tensor<2x9x32xbf16>, tensor<32x32xbf16>) outs(%{{.+}} : tensor<2x9x32xf32>)
// CHECK-NOT: math.cos
// CHECK: linalg.batch_matmul {{.*}} ins(%[[M]], %{{.+}} : tensor<2x9x32xbf16>, tensor<32x32xbf16>)
// CHECK: sqa.attention {{.*}} : tensor<2x2x5x8xbf16>, tensor<2x4x9x8xbf16>, tensor<2x4x9x8xbf16>) outs(%{{.+}} : tensor<2x4x5x8xbf16>)
func.func @cross(%x: tensor<2x5x32xbf16>, %m: tensor<2x9x32xbf16>, %wq: tensor<32x16xbf16>,
                 %wk: tensor<32x32xbf16>, %wv: tensor<32x32xbf16>, %wo: tensor<32x32xbf16>,
                 %init: tensor<2x5x32xbf16>) -> tensor<2x5x32xbf16> {
  %y = sqa.attention_layer ins(%x : tensor<2x5x32xbf16>) memory(%m : tensor<2x9x32xbf16>)
         weights(%wq, %wk, %wv, %wo : tensor<32x16xbf16>, tensor<32x32xbf16>, tensor<32x32xbf16>, tensor<32x32xbf16>)
         outs(%init : tensor<2x5x32xbf16>)
         {heads = #sqa.heads<total = 4, query = 2, kv = 4>,
          rope = #sqa.rope<kind = dynamic_ntk, factor = 2.0, original_max_positions = 4, queries_only = true>}
         -> tensor<2x5x32xbf16>
  return %y : tensor<2x5x32xbf16>
}

// -----

// The backward: the forward recomputed with lse, sqa.attention_backward,
// RoPE's transpose (sin negated) on dq and dk, dW as reductions over batch
// and positions into the (zeroed) f32 destinations, dX as projections
// against transposed weights, chained in one accumulator.
// CHECK-DAG: #[[RED_LHS:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[RED_RHS:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[RED_OUT:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[TRANSPOSE:.+]] = affine_map<(d0, d1) -> (d1, d0)>
// CHECK-DAG: #[[MERGE:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, d3, d4)>
// CHECK-LABEL: func @layer_backward
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x?x64xf32>, %[[WQ:[^:]+]]: tensor<64x32xf32>, %[[WK:[^:]+]]: tensor<64x16xf32>, %[[WV:[^:]+]]: tensor<64x16xf32>, %[[WO:[^:]+]]: tensor<32x64xf32>, %[[BQ:[^:]+]]: tensor<32xf32>, %[[DY:[^:]+]]: tensor<?x?x64xf32>, %[[DX:[^:]+]]: tensor<?x?x64xf32>, %[[DWQ:[^:]+]]: tensor<64x32xf32>, %[[DWK:[^:]+]]: tensor<64x16xf32>, %[[DWV:[^:]+]]: tensor<64x16xf32>, %[[DWO:[^:]+]]: tensor<32x64xf32>, %[[DBQ:[^:]+]]: tensor<32xf32>)
// CHECK-NOT: sqa.attention_layer_backward
// CHECK: %[[ATT:.+]]:2 = sqa.attention ins({{.*}}) outs({{.*}}) lse({{.*}} : tensor<?x2x?xf32>)
// CHECK: %[[CAT:.+]] = tensor.collapse_shape {{.*}} into tensor<?x?x32xf32>
// CHECK: %[[FILLO:.+]] = linalg.fill {{.*}} outs(%[[DWO]] : tensor<32x64xf32>)
// CHECK: %[[GWO:.+]] = linalg.generic {indexing_maps = [#[[RED_LHS]], #[[RED_RHS]], #[[RED_OUT]]], iterator_types = ["reduction", "reduction", "parallel", "parallel"]} ins(%[[CAT]], %[[DY]] : {{.*}}) outs(%[[FILLO]] :
// CHECK: %[[WOT:.+]] = linalg.generic {indexing_maps = [#[[TRANSPOSE]], {{.*}}]{{.*}} ins(%[[WO]] : tensor<32x64xf32>) outs(%{{.+}} : tensor<64x32xf32>)
// CHECK: linalg.batch_matmul {{.*}} ins(%[[DY]], %[[WOT]] :
// CHECK: %[[BWD:.+]]:3 = sqa.attention_backward ins({{.*}}, %[[ATT]]#0, %{{.+}}, %[[ATT]]#1 :
// CHECK: linalg.generic {indexing_maps = [{{.*}}, {{.*}}, #[[MERGE]]]{{.*}} ins(%{{.+}}, %{{.+}} : tensor<?x2x?x2x8xf32>, tensor<?x2x?x2x8xf32>)
// CHECK: math.cos
// CHECK: arith.negf
// CHECK: %[[DQ:.+]] = tensor.collapse_shape {{.*}} into tensor<?x?x32xf32>
// CHECK: arith.negf
// CHECK: %[[DK:.+]] = tensor.collapse_shape {{.*}} into tensor<?x?x16xf32>
// CHECK-NOT: arith.negf
// CHECK: %[[DV:.+]] = tensor.collapse_shape {{.*}} into tensor<?x?x16xf32>
// CHECK: %[[FILLQ:.+]] = linalg.fill {{.*}} outs(%[[DWQ]] :
// CHECK: %[[GWQ:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[DQ]] : {{.*}}) outs(%[[FILLQ]] :
// CHECK: %[[GWK:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[DK]] :
// CHECK: %[[GWV:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[DV]] :
// CHECK: %[[ACC0:.+]] = linalg.fill {{.*}} outs(%[[DX]] : tensor<?x?x64xf32>)
// CHECK: %[[ACC1:.+]] = linalg.batch_matmul {{.*}} ins(%[[DQ]], %{{.+}} : tensor<?x?x32xf32>, tensor<32x64xf32>) outs(%[[ACC0]] :
// CHECK: %[[ACC2:.+]] = linalg.batch_matmul {{.*}} ins(%[[DK]], %{{.+}} : tensor<?x?x16xf32>, tensor<16x64xf32>) outs(%[[ACC1]] :
// CHECK: %[[ACC3:.+]] = linalg.batch_matmul {{.*}} ins(%[[DV]], %{{.+}} : tensor<?x?x16xf32>, tensor<16x64xf32>) outs(%[[ACC2]] :
// CHECK: %[[GBQ:.+]] = linalg.generic {{.*}} iterator_types = ["reduction", "reduction", "parallel"]} ins(%[[DQ]] : tensor<?x?x32xf32>) outs(%{{.+}} : tensor<32xf32>)
// CHECK: return %[[ACC3]], %[[GWQ]], %[[GWK]], %[[GWV]], %[[GWO]], %[[GBQ]]
func.func @layer_backward(%x: tensor<?x?x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>,
                          %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>,
                          %dy: tensor<?x?x64xf32>, %dx: tensor<?x?x64xf32>,
                          %dwq: tensor<64x32xf32>, %dwk: tensor<64x16xf32>,
                          %dwv: tensor<64x16xf32>, %dwo: tensor<32x64xf32>, %dbq: tensor<32xf32>)
    -> (tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>, tensor<32xf32>) {
  %r:6 = sqa.attention_layer_backward ins(%x : tensor<?x?x64xf32>)
         weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>)
         bias_q(%bq : tensor<32xf32>) d_out(%dy : tensor<?x?x64xf32>)
         outs(%dx : tensor<?x?x64xf32>)
         d_weights(%dwq, %dwk, %dwv, %dwo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>)
         d_bias_q(%dbq : tensor<32xf32>)
         {heads = #sqa.heads<total = 4, query = 2, kv = 1>, rope = #sqa.rope<kind = rotary>,
          mask = #sqa.mask<causal = true>}
         -> tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>, tensor<32xf32>
  return %r#0, %r#1, %r#2, %r#3, %r#4, %r#5 : tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>, tensor<32xf32>
}

// -----

// A decode step: q, k_new, v_new projected and rotated at cache_lens[b] + i
// (the lengths read as a tensor by the same RoPE epilogue), materialized
// into buffers for sqa.decode, which appends and attends on the caches; the
// output buffer comes back as a tensor for the head merge and w_o.
// CHECK-LABEL: func @decode
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x?x64xf32>, %[[WQ:[^:]+]]: tensor<64x32xf32>, %[[WK:[^:]+]]: tensor<64x16xf32>, %[[WV:[^:]+]]: tensor<64x16xf32>, %[[WO:[^:]+]]: tensor<32x64xf32>, %[[KC:[^:]+]]: memref<?x2x?x8xf32>, %[[VC:[^:]+]]: memref<?x2x?x8xf32>, %[[L:[^:]+]]: memref<?xi64>, %[[INIT:[^:]+]]: tensor<?x?x64xf32>)
// CHECK-NOT: sqa.attention_layer_decode
// CHECK: %[[START:.+]] = bufferization.to_tensor %[[L]] restrict : memref<?xi64>
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %[[WQ]] :
// CHECK: linalg.generic {{.*}} ins(%{{.+}}, %{{.+}}, %[[START]] : {{.*}}, tensor<?xi64>)
// CHECK: math.cos
// CHECK: %[[QB:.+]] = memref.alloc({{.*}}) {alignment = 64 : i64} : memref<?x4x?x8xf32>
// CHECK: bufferization.materialize_in_destination %{{.+}} in restrict writable %[[QB]]
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %[[WK]] :
// CHECK: math.cos
// CHECK: %[[KB:.+]] = memref.alloc({{.*}}){{.*}} : memref<?x2x?x8xf32>
// CHECK: linalg.batch_matmul {{.*}} ins(%[[X]], %[[WV]] :
// CHECK-NOT: math.cos
// CHECK: %[[VB:.+]] = memref.alloc({{.*}}){{.*}} : memref<?x2x?x8xf32>
// CHECK: %[[OB:.+]] = memref.alloc({{.*}}){{.*}} : memref<?x4x?x8xf32>
// CHECK: sqa.decode query(%[[QB]] : memref<?x4x?x8xf32>) cache(%[[KC]], %[[VC]] : {{.*}}) lengths(%[[L]] : memref<?xi64>) append(%[[KB]], %[[VB]] : {{.*}}) outs(%[[OB]] : memref<?x4x?x8xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>, mask = #sqa.mask<causal = true, alignment = bottom_right>}
// CHECK: %[[ATT:.+]] = bufferization.to_tensor %[[OB]] restrict
// CHECK: linalg.generic {{.*}} ins(%[[ATT]] :
// CHECK: linalg.batch_matmul {{.*}} ins(%{{.+}}, %[[WO]] :
// CHECK: linalg.generic {{.*}} outs(%[[INIT]] : tensor<?x?x64xf32>)
func.func @decode(%x: tensor<?x?x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>,
                  %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>,
                  %kc: memref<?x2x?x8xf32>, %vc: memref<?x2x?x8xf32>,
                  %lens: memref<?xi64>, %init: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %y = sqa.attention_layer_decode ins(%x : tensor<?x?x64xf32>)
         weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>)
         kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
         cache(%kc, %vc : memref<?x2x?x8xf32>, memref<?x2x?x8xf32>)
         lengths(%lens : memref<?xi64>)
         outs(%init : tensor<?x?x64xf32>)
         {heads = #sqa.heads<total = 8, query = 4, kv = 2>, rope = #sqa.rope<kind = rotary>,
          mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<?x?x64xf32>
  return %y : tensor<?x?x64xf32>
}

// -----

// Cross-attention decode: no key/value projections, nothing appended.
// CHECK-LABEL: func @decode_cross
// CHECK: linalg.batch_matmul
// CHECK-NOT: linalg.batch_matmul
// CHECK: sqa.decode query({{.*}}) cache({{.*}}) lengths(%{{[^ ]+}} : memref<2xi64>) outs(
// CHECK: linalg.batch_matmul
func.func @decode_cross(%x: tensor<2x1x64xf32>, %wq: tensor<64x64xf32>, %wo: tensor<64x64xf32>,
                        %kc: memref<2x8x9x8xf32>, %vc: memref<2x8x9x8xf32>,
                        %lens: memref<2xi64>, %init: tensor<2x1x64xf32>) -> tensor<2x1x64xf32> {
  %y = sqa.attention_layer_decode ins(%x : tensor<2x1x64xf32>)
         weights(%wq, %wo : tensor<64x64xf32>, tensor<64x64xf32>)
         cache(%kc, %vc : memref<2x8x9x8xf32>, memref<2x8x9x8xf32>)
         lengths(%lens : memref<2xi64>)
         outs(%init : tensor<2x1x64xf32>)
         {heads = #sqa.heads<total = 8, query = 8, kv = 8>} -> tensor<2x1x64xf32>
  return %y : tensor<2x1x64xf32>
}

// -----

// The memory's keys (rotated: no queries_only) and values into the inits.
// CHECK-LABEL: func @memory_kv
// CHECK: linalg.batch_matmul
// CHECK: math.cos
// CHECK: linalg.batch_matmul
// CHECK-NOT: math.cos
// CHECK: %[[K:.+]] = linalg.copy ins(%{{.+}} : tensor<2x2x5x8xf32>) outs(%{{.+}} : tensor<2x2x5x8xf32>)
// CHECK: %[[V:.+]] = linalg.copy
// CHECK: return %[[K]], %[[V]]
func.func @memory_kv(%m: tensor<2x5x64xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>,
                     %ki: tensor<2x2x5x8xf32>, %vi: tensor<2x2x5x8xf32>) -> (tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>) {
  %k, %v = sqa.attention_layer_kv ins(%m : tensor<2x5x64xf32>)
             weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
             outs(%ki, %vi : tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>)
             {heads = #sqa.heads<total = 8, query = 4, kv = 2>, rope = #sqa.rope<kind = rotary>}
             -> tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>
  return %k, %v : tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>
}

// -----

// Dynamic NTK in a decode step: each row's base comes from its own last
// position, offset + cache_lens[b] + N, inside the RoPE epilogue (the NTK
// pow before the frequency pow), and its positions start at cache_lens[b].
// CHECK-LABEL: func @decode_ntk
// CHECK: %[[START:.+]] = bufferization.to_tensor
// CHECK: linalg.generic {{.*}} ins(%{{.+}}, %{{.+}}, %[[START]] :
// CHECK-NEXT: ^bb0(%{{[^:]+}}: f32, %{{[^:]+}}: f32, %[[S:[^:]+]]: i64, %{{[^:]+}}: f32):
// CHECK: arith.addi %{{.+}}, %[[S]] : i64
// CHECK: arith.addi %[[S]], %{{.+}} : i64
// CHECK: math.powf
// CHECK: arith.cmpf ogt
// CHECK: arith.select
// CHECK: math.powf
// CHECK: math.cos
func.func @decode_ntk(%x: tensor<2x1x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x32xf32>,
                      %wv: tensor<32x32xf32>, %wo: tensor<32x32xf32>,
                      %kc: memref<2x4x16x8xf32>, %vc: memref<2x4x16x8xf32>,
                      %lens: memref<2xi64>, %init: tensor<2x1x32xf32>) -> tensor<2x1x32xf32> {
  %y = sqa.attention_layer_decode ins(%x : tensor<2x1x32xf32>)
         weights(%wq, %wo : tensor<32x32xf32>, tensor<32x32xf32>)
         kv_weights(%wk, %wv : tensor<32x32xf32>, tensor<32x32xf32>)
         cache(%kc, %vc : memref<2x4x16x8xf32>, memref<2x4x16x8xf32>)
         lengths(%lens : memref<2xi64>)
         outs(%init : tensor<2x1x32xf32>)
         {heads = #sqa.heads<total = 4, query = 4, kv = 4>,
          rope = #sqa.rope<kind = dynamic_ntk, factor = 2.0, original_max_positions = 4>}
         -> tensor<2x1x32xf32>
  return %y : tensor<2x1x32xf32>
}
