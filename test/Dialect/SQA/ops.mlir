// RUN: sqa-opt %s | FileCheck %s
// RUN: sqa-opt %s | sqa-opt | FileCheck %s
// RUN: sqa-opt %s -mlir-print-op-generic | sqa-opt | FileCheck %s

// CHECK-LABEL: func @mha_static
// CHECK: sqa.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x16x128x64xf32>, tensor<2x16x128x64xf32>, tensor<2x16x128x64xf32>) outs(%{{.*}} : tensor<2x16x128x64xf32>) -> tensor<2x16x128x64xf32>
func.func @mha_static(%q: tensor<2x16x128x64xf32>, %k: tensor<2x16x128x64xf32>,
                      %v: tensor<2x16x128x64xf32>, %o: tensor<2x16x128x64xf32>) -> tensor<2x16x128x64xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<2x16x128x64xf32>, tensor<2x16x128x64xf32>, tensor<2x16x128x64xf32>)
                     outs(%o : tensor<2x16x128x64xf32>) -> tensor<2x16x128x64xf32>
  return %r : tensor<2x16x128x64xf32>
}

// Dynamic batch and sequence lengths, S != T, D != Dv, grouped heads.
// CHECK-LABEL: func @sqa_dynamic
// CHECK: sqa.attention
// CHECK-SAME: {heads = #sqa.heads<total = 16, query = 8, kv = 4>, mask = #sqa.mask<causal = true, alignment = bottom_right>, scale = 1.250000e-01 : f32}
// CHECK-SAME: -> tensor<?x8x?x32xbf16>
func.func @sqa_dynamic(%q: tensor<?x8x?x64xbf16>, %k: tensor<?x4x?x64xbf16>,
                       %v: tensor<?x4x?x32xbf16>, %o: tensor<?x8x?x32xbf16>) -> tensor<?x8x?x32xbf16> {
  %r = sqa.attention ins(%q, %k, %v : tensor<?x8x?x64xbf16>, tensor<?x4x?x64xbf16>, tensor<?x4x?x32xbf16>)
                     outs(%o : tensor<?x8x?x32xbf16>)
                     {heads = #sqa.heads<sqa, total = 16>,
                      mask = #sqa.mask<causal = true, alignment = bottom_right>,
                      scale = 0.125 : f32} -> tensor<?x8x?x32xbf16>
  return %r : tensor<?x8x?x32xbf16>
}

// Reverse SQA: more key/value heads than query heads; the output has Hkv.
// CHECK-LABEL: func @reverse_sqa
// CHECK: sqa.attention
// CHECK-SAME: {heads = #sqa.heads<total = 16, query = 4, kv = 8>, mask = #sqa.mask<window_left = 128, window_right = 0>}
// CHECK-SAME: -> tensor<1x8x?x16xf16>
func.func @reverse_sqa(%q: tensor<1x4x?x16xf16>, %k: tensor<1x8x?x16xf16>,
                       %v: tensor<1x8x?x16xf16>, %o: tensor<1x8x?x16xf16>) -> tensor<1x8x?x16xf16> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x?x16xf16>, tensor<1x8x?x16xf16>, tensor<1x8x?x16xf16>)
                     outs(%o : tensor<1x8x?x16xf16>)
                     {heads = #sqa.heads<rsqa, total = 16>,
                      mask = #sqa.mask<window_left = 128, window_right = 0>} -> tensor<1x8x?x16xf16>
  return %r : tensor<1x8x?x16xf16>
}

// MQA and a mask whose parameters are given out of order.
// CHECK-LABEL: func @mqa_window
// CHECK: mask = #sqa.mask<causal = true, window_left = 4>
func.func @mqa_window(%q: tensor<1x16x7x8xf32>, %k: tensor<1x1x9x8xf32>,
                      %v: tensor<1x1x9x8xf32>, %o: tensor<1x16x7x8xf32>) -> tensor<1x16x7x8xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x16x7x8xf32>, tensor<1x1x9x8xf32>, tensor<1x1x9x8xf32>)
                     outs(%o : tensor<1x16x7x8xf32>)
                     {mask = #sqa.mask<window_left = 4, causal = true>} -> tensor<1x16x7x8xf32>
  return %r : tensor<1x16x7x8xf32>
}

// Every named head preset resolves to numbers.
// CHECK-LABEL: func private @presets
// Attribute dictionaries print sorted by name.
// CHECK-SAME: gqa = #sqa.heads<total = 16, query = 16, kv = 4>
// CHECK-SAME: mha = #sqa.heads<total = 16, query = 16, kv = 16>
// CHECK-SAME: mqa = #sqa.heads<total = 16, query = 16, kv = 1>
// CHECK-SAME: rsqa = #sqa.heads<total = 16, query = 4, kv = 8>
// CHECK-SAME: sqa = #sqa.heads<total = 16, query = 8, kv = 4>
// CHECK-SAME: ssqa = #sqa.heads<total = 16, query = 8, kv = 8>
// CHECK-SAME: xsmqa = #sqa.heads<total = 16, query = 4, kv = 1>
// CHECK-SAME: xsqa = #sqa.heads<total = 16, query = 4, kv = 4>
func.func private @presets() attributes {
  mha = #sqa.heads<mha, total = 16>,
  gqa = #sqa.heads<gqa, total = 16, groups = 4>,
  mqa = #sqa.heads<mqa, total = 16>,
  sqa = #sqa.heads<sqa, total = 16>,
  ssqa = #sqa.heads<ssqa, total = 16>,
  xsqa = #sqa.heads<xsqa, total = 16>,
  xsmqa = #sqa.heads<xsmqa, total = 16>,
  rsqa = #sqa.heads<rsqa, total = 16>
}

// The buffer form (after bufferization) returns nothing; a tile carries the
// key position of its first row's diagonal.
// CHECK-LABEL: func @buffer_tile
// CHECK: sqa.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<1x2x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>, memref<1x1x?x64xf32>, memref<1x1x?x64xf32>) outs(%{{.*}} : memref<1x2x?x64xf32>) diagonal_offset(%{{.*}}) {mask = #sqa.mask<causal = true>}
// CHECK-NEXT: return
func.func @buffer_tile(%q: memref<1x2x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>,
                       %k: memref<1x1x?x64xf32>, %v: memref<1x1x?x64xf32>,
                       %o: memref<1x2x?x64xf32>, %diag: index) {
  sqa.attention ins(%q, %k, %v : memref<1x2x?x64xf32, strided<[?, ?, 64, 1], offset: ?>>, memref<1x1x?x64xf32>, memref<1x1x?x64xf32>)
                outs(%o : memref<1x2x?x64xf32>) diagonal_offset(%diag)
                {mask = #sqa.mask<causal = true>}
  return
}

// A whole layer: cross-attention with memory, every bias, RoPE on queries.
// CHECK-LABEL: func @layer
// CHECK: sqa.attention_layer ins(%{{.*}} : tensor<?x?x256xbf16>) memory(%{{.*}} : tensor<?x?x256xbf16>) weights(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<256x128xbf16>, tensor<256x64xbf16>, tensor<256x64xbf16>, tensor<128x256xbf16>) bias_q(%{{.*}} : tensor<128xbf16>) bias_k(%{{.*}} : tensor<64xbf16>) bias_v(%{{.*}} : tensor<64xbf16>) bias_o(%{{.*}} : tensor<256xbf16>) outs(%{{.*}} : tensor<?x?x256xbf16>)
// CHECK-SAME: heads = #sqa.heads<total = 16, query = 8, kv = 4>
// CHECK-SAME: rope = #sqa.rope<kind = linear, base = 5.000000e+05, factor = 4.000000e+00, position_offset = 7, queries_only = true>
func.func @layer(%x: tensor<?x?x256xbf16>, %m: tensor<?x?x256xbf16>,
                 %wq: tensor<256x128xbf16>, %wk: tensor<256x64xbf16>,
                 %wv: tensor<256x64xbf16>, %wo: tensor<128x256xbf16>,
                 %bq: tensor<128xbf16>, %bk: tensor<64xbf16>,
                 %bv: tensor<64xbf16>, %bo: tensor<256xbf16>,
                 %o: tensor<?x?x256xbf16>) -> tensor<?x?x256xbf16> {
  %y = sqa.attention_layer ins(%x : tensor<?x?x256xbf16>) memory(%m : tensor<?x?x256xbf16>)
         weights(%wq, %wk, %wv, %wo : tensor<256x128xbf16>, tensor<256x64xbf16>, tensor<256x64xbf16>, tensor<128x256xbf16>)
         bias_q(%bq : tensor<128xbf16>) bias_k(%bk : tensor<64xbf16>) bias_v(%bv : tensor<64xbf16>) bias_o(%bo : tensor<256xbf16>)
         outs(%o : tensor<?x?x256xbf16>)
         {heads = #sqa.heads<sqa, total = 16>,
          rope = #sqa.rope<kind = linear, base = 500000.0, factor = 4.0, position_offset = 7, queries_only = true>}
         -> tensor<?x?x256xbf16>
  return %y : tensor<?x?x256xbf16>
}

// The layer's backward: cross-attention (d_memory), biases q and o.
// CHECK-LABEL: func @layer_backward
// CHECK: sqa.attention_layer_backward ins(%{{.*}} : tensor<?x?x64xf32>) memory(%{{.*}} : tensor<?x?x64xf32>) weights(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) bias_q(%{{.*}} : tensor<32xf32>) bias_o(%{{.*}} : tensor<64xf32>) d_out(%{{.*}} : tensor<?x?x64xf32>) outs(%{{.*}} : tensor<?x?x64xf32>) d_memory(%{{.*}} : tensor<?x?x64xf32>) d_weights(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_bias_q(%{{.*}} : tensor<32xf32>) d_bias_o(%{{.*}} : tensor<64xf32>)
// CHECK-SAME: heads = #sqa.heads<total = 4, query = 2, kv = 1>
// CHECK-SAME: rope = #sqa.rope<kind = rotary, queries_only = true>
// CHECK-SAME: -> tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>, tensor<32xf32>, tensor<64xf32>
func.func @layer_backward(%x: tensor<?x?x64xf32>, %m: tensor<?x?x64xf32>,
                          %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>,
                          %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>,
                          %bq: tensor<32xf32>, %bo: tensor<64xf32>,
                          %dy: tensor<?x?x64xf32>) {
  %r:8 = sqa.attention_layer_backward ins(%x : tensor<?x?x64xf32>) memory(%m : tensor<?x?x64xf32>)
         weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>)
         bias_q(%bq : tensor<32xf32>) bias_o(%bo : tensor<64xf32>)
         d_out(%dy : tensor<?x?x64xf32>)
         outs(%x : tensor<?x?x64xf32>) d_memory(%m : tensor<?x?x64xf32>)
         d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>)
         d_bias_q(%bq : tensor<32xf32>) d_bias_o(%bo : tensor<64xf32>)
         {heads = #sqa.heads<total = 4, query = 2, kv = 1>,
          rope = #sqa.rope<kind = rotary, queries_only = true>}
         -> tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>, tensor<32xf32>, tensor<64xf32>
  return
}

// CHECK-LABEL: func @decode_append
// CHECK: sqa.decode query(%{{.*}} : memref<?x8x?x64xf32>) cache(%{{.*}}, %{{.*}} : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>) lengths(%{{.*}} : memref<?xi64>) append(%{{.*}}, %{{.*}} : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>) outs(%{{.*}} : memref<?x8x?x64xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>}
func.func @decode_append(%q: memref<?x8x?x64xf32>, %kc: memref<?x2x?x64xf32>, %vc: memref<?x2x?x64xf32>,
                         %l: memref<?xi64>, %kn: memref<?x2x?x64xf32>, %vn: memref<?x2x?x64xf32>,
                         %o: memref<?x8x?x64xf32>) {
  sqa.decode query(%q : memref<?x8x?x64xf32>)
             cache(%kc, %vc : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             lengths(%l : memref<?xi64>)
             append(%kn, %vn : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             outs(%o : memref<?x8x?x64xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>}
  return
}

// Reverse SQA against a fixed memory (no append), BSHD views, bf16.
// CHECK-LABEL: func @decode_memory
// CHECK: sqa.decode query(%{{.*}} : memref<1x2x3x32xbf16, strided<[?, ?, ?, 1], offset: ?>>) cache(%{{.*}}, %{{.*}} : memref<1x4x100x32xbf16>, memref<1x4x100x16xbf16>) lengths(%{{.*}} : memref<1xi64>) outs(%{{.*}} : memref<1x4x3x16xbf16>) {heads = #sqa.heads<total = 4, query = 2, kv = 4>, scale = 5.000000e-01 : f32}
func.func @decode_memory(%q: memref<1x2x3x32xbf16, strided<[?, ?, ?, 1], offset: ?>>, %kc: memref<1x4x100x32xbf16>,
                         %vc: memref<1x4x100x16xbf16>, %l: memref<1xi64>, %o: memref<1x4x3x16xbf16>) {
  sqa.decode query(%q : memref<1x2x3x32xbf16, strided<[?, ?, ?, 1], offset: ?>>)
             cache(%kc, %vc : memref<1x4x100x32xbf16>, memref<1x4x100x16xbf16>)
             lengths(%l : memref<1xi64>)
             outs(%o : memref<1x4x3x16xbf16>) {heads = #sqa.heads<total = 4, query = 2, kv = 4>, scale = 0.5 : f32}
  return
}

// The forward with its logsumexp (a second destination and result).
// CHECK-LABEL: func @attention_lse
// CHECK: sqa.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x32xf32>) outs(%{{.*}} : tensor<?x8x?x32xf32>) lse(%{{.*}} : tensor<?x8x?xf32>)
// CHECK-SAME: -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
func.func @attention_lse(%q: tensor<?x8x?x32xf32>, %k: tensor<?x4x?x32xf32>, %v: tensor<?x4x?x32xf32>,
                         %o: tensor<?x8x?x32xf32>, %l: tensor<?x8x?xf32>) -> (tensor<?x8x?x32xf32>, tensor<?x8x?xf32>) {
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x32xf32>)
                       outs(%o : tensor<?x8x?x32xf32>) lse(%l : tensor<?x8x?xf32>)
                       {mask = #sqa.mask<causal = true>} -> tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
  return %r#0, %r#1 : tensor<?x8x?x32xf32>, tensor<?x8x?xf32>
}

// CHECK-LABEL: func @attention_lse_buffers
// CHECK: sqa.attention ins({{.*}}) outs(%{{.*}} : memref<2x4x16x8xbf16>) lse(%{{.*}} : memref<2x4x16xf32>) diagonal_offset(%{{.*}})
// CHECK-NOT: ->
func.func @attention_lse_buffers(%q: memref<2x2x16x8xbf16>, %k: memref<2x4x9x8xbf16>, %v: memref<2x4x9x8xbf16>,
                                 %o: memref<2x4x16x8xbf16>, %l: memref<2x4x16xf32>, %d: index) {
  sqa.attention ins(%q, %k, %v : memref<2x2x16x8xbf16>, memref<2x4x9x8xbf16>, memref<2x4x9x8xbf16>)
                outs(%o : memref<2x4x16x8xbf16>) lse(%l : memref<2x4x16xf32>) diagonal_offset(%d)
                {mask = #sqa.mask<causal = true>}
  return
}

// The backward: GQA on tensors, reverse SQA on buffers.
// CHECK-LABEL: func @backward_gqa
// CHECK: sqa.attention_backward ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>, tensor<?x8x?x16xf16>, tensor<?x8x?x16xf16>, tensor<?x8x?xf32>) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>)
// CHECK-SAME: {heads = #sqa.heads<total = 8, query = 8, kv = 2>, mask = #sqa.mask<causal = true, alignment = bottom_right, window_left = 4>, scale = 5.000000e-01 : f32}
// CHECK-SAME: -> tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>
func.func @backward_gqa(%q: tensor<?x8x?x32xf16>, %k: tensor<?x2x?x32xf16>, %v: tensor<?x2x?x16xf16>,
                        %o: tensor<?x8x?x16xf16>, %g: tensor<?x8x?x16xf16>, %l: tensor<?x8x?xf32>,
                        %dq: tensor<?x8x?x32xf16>, %dk: tensor<?x2x?x32xf16>, %dv: tensor<?x2x?x16xf16>)
    -> (tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>) {
  %r:3 = sqa.attention_backward
      ins(%q, %k, %v, %o, %g, %l : tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>,
          tensor<?x8x?x16xf16>, tensor<?x8x?x16xf16>, tensor<?x8x?xf32>)
      outs(%dq, %dk, %dv : tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>)
      {heads = #sqa.heads<gqa, total = 8, groups = 2>,
       mask = #sqa.mask<causal = true, alignment = bottom_right, window_left = 4>, scale = 0.5 : f32}
      -> tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>
  return %r#0, %r#1, %r#2 : tensor<?x8x?x32xf16>, tensor<?x2x?x32xf16>, tensor<?x2x?x16xf16>
}

// CHECK-LABEL: func @backward_reverse_buffers
// CHECK: sqa.attention_backward ins({{.*}}) outs({{.*}}) diagonal_offset(%{{.*}})
// CHECK-NOT: ->
func.func @backward_reverse_buffers(%q: memref<1x2x5x8xf32>, %k: memref<1x4x7x8xf32>, %v: memref<1x4x7x8xf32>,
                                    %o: memref<1x4x5x8xf32>, %g: memref<1x4x5x8xf32>, %l: memref<1x4x5xf32>,
                                    %dq: memref<1x2x5x8xf32>, %dk: memref<1x4x7x8xf32>, %dv: memref<1x4x7x8xf32>, %d: index) {
  sqa.attention_backward
      ins(%q, %k, %v, %o, %g, %l : memref<1x2x5x8xf32>, memref<1x4x7x8xf32>, memref<1x4x7x8xf32>,
          memref<1x4x5x8xf32>, memref<1x4x5x8xf32>, memref<1x4x5xf32>)
      outs(%dq, %dk, %dv : memref<1x2x5x8xf32>, memref<1x4x7x8xf32>, memref<1x4x7x8xf32>)
      diagonal_offset(%d) {mask = #sqa.mask<causal = true>}
  return
}

// CHECK-LABEL: func @layer_decode_self
// CHECK: sqa.attention_layer_decode ins(%{{.*}} : tensor<?x?x64xf32>) weights(%{{.*}}, %{{.*}} : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%{{.*}}, %{{.*}} : tensor<64x16xf32>, tensor<64x16xf32>) bias_q(%{{.*}} : tensor<32xf32>) cache(%{{.*}}, %{{.*}} : memref<?x2x?x8xf32>, memref<?x2x?x8xf32>) lengths(%{{.*}} : memref<?xi64>) outs(%{{.*}} : tensor<?x?x64xf32>)
// CHECK-SAME: rope = #sqa.rope<kind = rotary>
func.func @layer_decode_self(%x: tensor<?x?x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>,
                             %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>,
                             %kc: memref<?x2x?x8xf32>, %vc: memref<?x2x?x8xf32>,
                             %lens: memref<?xi64>, %init: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %y = sqa.attention_layer_decode ins(%x : tensor<?x?x64xf32>)
         weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>)
         kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
         bias_q(%bq : tensor<32xf32>)
         cache(%kc, %vc : memref<?x2x?x8xf32>, memref<?x2x?x8xf32>)
         lengths(%lens : memref<?xi64>)
         outs(%init : tensor<?x?x64xf32>)
         {heads = #sqa.heads<total = 8, query = 4, kv = 2>, rope = #sqa.rope<kind = rotary>,
          mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<?x?x64xf32>
  return %y : tensor<?x?x64xf32>
}

// CHECK-LABEL: func @layer_decode_cross
// CHECK: sqa.attention_layer_decode ins({{.*}}) weights({{.*}}) cache({{.*}}) lengths({{.*}}) outs({{.*}})
// CHECK-NOT: kv_weights
func.func @layer_decode_cross(%x: tensor<2x1x64xbf16>, %wq: tensor<64x64xbf16>, %wo: tensor<64x64xbf16>,
                              %kc: memref<2x8x9x8xbf16>, %vc: memref<2x8x9x8xbf16>,
                              %lens: memref<2xi64>, %init: tensor<2x1x64xbf16>) -> tensor<2x1x64xbf16> {
  %y = sqa.attention_layer_decode ins(%x : tensor<2x1x64xbf16>)
         weights(%wq, %wo : tensor<64x64xbf16>, tensor<64x64xbf16>)
         cache(%kc, %vc : memref<2x8x9x8xbf16>, memref<2x8x9x8xbf16>)
         lengths(%lens : memref<2xi64>)
         outs(%init : tensor<2x1x64xbf16>)
         {heads = #sqa.heads<total = 8, query = 8, kv = 8>} -> tensor<2x1x64xbf16>
  return %y : tensor<2x1x64xbf16>
}

// CHECK-LABEL: func @layer_kv
// CHECK: sqa.attention_layer_kv ins(%{{.*}} : tensor<?x?x64xf32>) weights(%{{.*}}, %{{.*}} : tensor<64x16xf32>, tensor<64x16xf32>) bias_v(%{{.*}} : tensor<16xf32>) outs(%{{.*}}, %{{.*}} : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
// CHECK-SAME: -> tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
func.func @layer_kv(%m: tensor<?x?x64xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %bv: tensor<16xf32>,
                    %ki: tensor<?x2x?x8xf32>, %vi: tensor<?x2x?x8xf32>) -> (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %k, %v = sqa.attention_layer_kv ins(%m : tensor<?x?x64xf32>)
             weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>)
             bias_v(%bv : tensor<16xf32>)
             outs(%ki, %vi : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
             {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
  return %k, %v : tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}
