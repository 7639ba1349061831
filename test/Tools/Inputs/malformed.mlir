func.func @f(%q: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %r = sqa.attention ins %q : tensor<1x2x3x4xf32>
  return %r : tensor<1x2x3x4xf32>
}
