func.func @f(%q: tensor<1x6x4x8xf32>, %k: tensor<1x4x4x8xf32>, %o: tensor<1x6x4x8xf32>) -> tensor<1x6x4x8xf32> {
  %r = sqa.attention ins(%q, %k, %k : tensor<1x6x4x8xf32>, tensor<1x4x4x8xf32>, tensor<1x4x4x8xf32>) outs(%o : tensor<1x6x4x8xf32>) -> tensor<1x6x4x8xf32>
  return %r : tensor<1x6x4x8xf32>
}
