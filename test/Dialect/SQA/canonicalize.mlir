// RUN: sqa-opt %s -canonicalize -split-input-file | FileCheck %s

// A mask that hides nothing is dropped, whatever its alignment.
// CHECK-LABEL: func @no_op_mask
// CHECK: sqa.attention
// CHECK-NOT: mask
// CHECK-SAME: -> tensor<1x4x8x16xf32>
func.func @no_op_mask(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x16xf32>,
                      %v: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
                     outs(%o : tensor<1x4x8x16xf32>)
                     {mask = #sqa.mask<alignment = bottom_right>} -> tensor<1x4x8x16xf32>
  return %r : tensor<1x4x8x16xf32>
}

// -----

// Causal already hides everything right of the diagonal: a right window
// bound adds nothing and is dropped; the left bound stays.
// CHECK-LABEL: func @causal_subsumes_right_bound
// CHECK: mask = #sqa.mask<causal = true, alignment = bottom_right, window_left = 32>
func.func @causal_subsumes_right_bound(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x16xf32>,
                                       %v: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
                     outs(%o : tensor<1x4x8x16xf32>)
                     {mask = #sqa.mask<causal = true, alignment = bottom_right, window_left = 32, window_right = 5>} -> tensor<1x4x8x16xf32>
  return %r : tensor<1x4x8x16xf32>
}

// -----

// An explicit scale equal to the default 1/sqrt(D) is dropped; others stay.
// CHECK-LABEL: func @default_scale
// CHECK: sqa.attention
// CHECK-NOT: scale
// CHECK-SAME: -> tensor<1x4x8x16xf32>
// CHECK: sqa.attention
// CHECK-SAME: scale = 5.000000e-01 : f32
func.func @default_scale(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x16xf32>,
                         %v: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>) -> (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
                     outs(%o : tensor<1x4x8x16xf32>) {scale = 0.25 : f32} -> tensor<1x4x8x16xf32>
  %s = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
                     outs(%o : tensor<1x4x8x16xf32>) {scale = 0.5 : f32} -> tensor<1x4x8x16xf32>
  return %r, %s : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>
}

// -----

// The op is pure: an unused result is erased.
// CHECK-LABEL: func @dead
// CHECK-NOT: sqa.attention
func.func @dead(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x16xf32>,
                %v: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>) {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
                     outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}
