// RUN: sqa-opt %s -split-input-file -verify-diagnostics -sqa-lower-projections

#lhs = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#rhs = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// A weight whose size overflows int64: the GEMM's column blocks could not be
// indexed (issue 16), so the pass refuses it instead of wrapping.
func.func @huge(%x: memref<?x?x4xf32>, %w: memref<4x4611686018427387904xf32>, %c: memref<?x?x4611686018427387904xf32>) {
  // expected-error @+1 {{weight of 4 x 4611686018427387904 elements is too large to index in int64}}
  linalg.batch_matmul indexing_maps = [#lhs, #rhs, #out]
      ins(%x, %w : memref<?x?x4xf32>, memref<4x4611686018427387904xf32>) outs(%c : memref<?x?x4611686018427387904xf32>)
  return
}
