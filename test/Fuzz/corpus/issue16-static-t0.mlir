// FUZZ-ARGS: --sqa-tile-attention
// Issue 16: a static T = 0 passed the verifier, then sqa-tile-attention
// failed on its own IR ("offset 2 is out-of-bounds: 0 >= 0").
func.func @f(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x0x8xf32>, %v: tensor<1x2x0x8xf32>, %o: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x4x8xf32>, tensor<1x2x0x8xf32>, tensor<1x2x0x8xf32>) outs(%o : tensor<1x2x4x8xf32>) {mask = #sqa.mask<causal = true>} -> tensor<1x2x4x8xf32>
  return %r : tensor<1x2x4x8xf32>
}
