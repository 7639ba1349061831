// FUZZ-ARGS: --sqa-cpu-pipeline
// Issue 16: Hq = 2^62, Hkv = 1 ran for ever (time linear in Hq / Hkv).
func.func @f(%q: tensor<1x4611686018427387904x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>, %o: tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4611686018427387904x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) outs(%o : tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32>
  return %r : tensor<1x4611686018427387904x4x8xf32>
}
