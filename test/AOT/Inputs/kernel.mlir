func.func @my_attention(%q: memref<?x4x?x16xf32>, %k: memref<?x2x?x16xf32>,
                        %v: memref<?x2x?x16xf32>, %o: memref<?x4x?x16xf32>) {
  %qt = bufferization.to_tensor %q restrict : memref<?x4x?x16xf32> to tensor<?x4x?x16xf32>
  %kt = bufferization.to_tensor %k restrict : memref<?x2x?x16xf32> to tensor<?x2x?x16xf32>
  %vt = bufferization.to_tensor %v restrict : memref<?x2x?x16xf32> to tensor<?x2x?x16xf32>
  %ot = bufferization.to_tensor %o restrict writable : memref<?x4x?x16xf32> to tensor<?x4x?x16xf32>
  %r = sqa.attention ins(%qt, %kt, %vt : tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>)
                     outs(%ot : tensor<?x4x?x16xf32>) -> tensor<?x4x?x16xf32>
  bufferization.materialize_in_destination %r in restrict writable %o
      : (tensor<?x4x?x16xf32>, memref<?x4x?x16xf32>) -> ()
  return
}
