// FUZZ-ARGS: --sqa-cuda-pipeline=format=isa
// Issue 16: static q/k/v whose byte size overflows int64; was a SIGSEGV in
// constifyIndexValues.
func.func @f(%q: tensor<2x1x4611686018427387904x8xf32>, %k: tensor<2x1x4611686018427387904x8xf32>, %v: tensor<2x1x4611686018427387904x8xf32>, %o: tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>) outs(%o : tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32>
  return %r : tensor<2x1x4611686018427387904x8xf32>
}
