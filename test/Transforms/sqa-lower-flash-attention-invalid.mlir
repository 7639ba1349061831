// RUN: sqa-opt %s -sqa-lower-flash-attention -verify-diagnostics

// The tensor form must be bufferized first.
func.func @tensors(%q: tensor<1x1x4x8xf32>, %o: tensor<1x1x4x8xf32>) -> tensor<1x1x4x8xf32> {
  // expected-error @+1 {{sqa-lower-flash-attention needs buffer semantics; bufferize first}}
  %r = sqa.attention ins(%q, %q, %q : tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>)
                     outs(%o : tensor<1x1x4x8xf32>) -> tensor<1x1x4x8xf32>
  return %r : tensor<1x1x4x8xf32>
}
