func.func @f(%q: tensor<*xf32>, %k: tensor<1x2x3x4xf32>, %o: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %r = sqa.attention ins(%q, %k, %k : tensor<*xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) outs(%o : tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %r : tensor<1x2x3x4xf32>
}
