// RUN: sqa-opt %s -sqa-lower-attention-reference -split-input-file | FileCheck %s
// RUN: sqa-opt %s -sqa-lower-attention-reference="backward-only=true" -split-input-file | FileCheck %s --check-prefix=BWDONLY

// lse: max + log(sum) per row, written through the [B, A, C, S] view.
// CHECK-LABEL: func @lse
// CHECK-NOT: sqa.attention
// CHECK: tensor.expand_shape %{{.*}} {{\[}}[0], [1, 2], [3]] {{.*}} : tensor<?x8x?xf32> into tensor<?x4x2x?xf32>
// CHECK: math.log
// CHECK: tensor.collapse_shape %{{.*}} {{\[}}[0], [1, 2], [3]] : tensor<?x4x2x?xf32> into tensor<?x8x?xf32>
// BWDONLY-LABEL: func @lse
// BWDONLY: sqa.attention
func.func @lse(%q: tensor<?x8x?x32xbf16>, %k: tensor<?x4x?x32xbf16>, %v: tensor<?x4x?x16xbf16>,
               %o: tensor<?x8x?x16xbf16>, %l: tensor<?x8x?xf32>) -> (tensor<?x8x?x16xbf16>, tensor<?x8x?xf32>) {
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<?x8x?x32xbf16>, tensor<?x4x?x32xbf16>, tensor<?x4x?x16xbf16>)
                       outs(%o : tensor<?x8x?x16xbf16>) lse(%l : tensor<?x8x?xf32>)
                       {mask = #sqa.mask<causal = true>} -> tensor<?x8x?x16xbf16>, tensor<?x8x?xf32>
  return %r#0, %r#1 : tensor<?x8x?x16xbf16>, tensor<?x8x?xf32>
}

// -----

// GQA 8/4: query, out, d_out and lse get the group dim; key and value keep
// 4 heads. dK and dV reduce over the group dim (iterator 2 is a reduction),
// so no per-query-head K/V or dK/dV exists.
// CHECK-LABEL: func @backward_gqa
// CHECK-NOT: sqa.attention_backward
// CHECK: math.exp
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel", "reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<?x4x?x16xf32>)
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel", "reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<?x4x?x32xf32>)
// BWDONLY-LABEL: func @backward_gqa
// BWDONLY-NOT: sqa.attention_backward
func.func @backward_gqa(%q: tensor<?x8x?x32xf32>, %k: tensor<?x4x?x32xf32>, %v: tensor<?x4x?x16xf32>,
             %o: tensor<?x8x?x16xf32>, %g: tensor<?x8x?x16xf32>, %l: tensor<?x8x?xf32>,
             %dq: tensor<?x8x?x32xf32>, %dk: tensor<?x4x?x32xf32>, %dv: tensor<?x4x?x16xf32>)
    -> (tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x16xf32>) {
  %r:3 = sqa.attention_backward
      ins(%q, %k, %v, %o, %g, %l : tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x16xf32>,
          tensor<?x8x?x16xf32>, tensor<?x8x?x16xf32>, tensor<?x8x?xf32>)
      outs(%dq, %dk, %dv : tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x16xf32>)
      {mask = #sqa.mask<causal = true>}
      -> tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x16xf32>
  return %r#0, %r#1, %r#2 : tensor<?x8x?x32xf32>, tensor<?x4x?x32xf32>, tensor<?x4x?x16xf32>
}

// -----

// Reverse SQA 2/4: key and value get the group dim; dQ reduces over it.
// CHECK-LABEL: func @backward_reverse
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel", "reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<1x2x5x8xf32>)
func.func @backward_reverse(%q: tensor<1x2x5x8xf16>, %k: tensor<1x4x7x8xf16>, %v: tensor<1x4x7x8xf16>,
                            %o: tensor<1x4x5x8xf16>, %g: tensor<1x4x5x8xf16>, %l: tensor<1x4x5xf32>,
                            %dq: tensor<1x2x5x8xf16>, %dk: tensor<1x4x7x8xf16>, %dv: tensor<1x4x7x8xf16>)
    -> (tensor<1x2x5x8xf16>, tensor<1x4x7x8xf16>, tensor<1x4x7x8xf16>) {
  %r:3 = sqa.attention_backward
      ins(%q, %k, %v, %o, %g, %l : tensor<1x2x5x8xf16>, tensor<1x4x7x8xf16>, tensor<1x4x7x8xf16>,
          tensor<1x4x5x8xf16>, tensor<1x4x5x8xf16>, tensor<1x4x5xf32>)
      outs(%dq, %dk, %dv : tensor<1x2x5x8xf16>, tensor<1x4x7x8xf16>, tensor<1x4x7x8xf16>)
      -> tensor<1x2x5x8xf16>, tensor<1x4x7x8xf16>, tensor<1x4x7x8xf16>
  return %r#0, %r#1, %r#2 : tensor<1x2x5x8xf16>, tensor<1x4x7x8xf16>, tensor<1x4x7x8xf16>
}
