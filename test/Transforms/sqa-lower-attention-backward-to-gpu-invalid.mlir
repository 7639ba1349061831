// RUN: sqa-opt %s -split-input-file -sqa-lower-attention-backward-to-gpu -verify-diagnostics
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-backward-to-gpu="tile=0" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-backward-to-gpu="tile=1024" 2>&1 | FileCheck %s --check-prefix=SMEM

// TILE: tile must be in [1, 65536], got 0
// SMEM: the backward kernels need 1056768 bytes of shared memory (more than 227 KiB); lower tile

func.func @fine(%q: memref<?x4x?x128xf32>, %k: memref<?x2x?x128xf32>,
                %v: memref<?x2x?x128xf32>, %o: memref<?x4x?x128xf32>,
                %g: memref<?x4x?x128xf32>, %l: memref<?x4x?xf32>,
                %dq: memref<?x4x?x128xf32>, %dk: memref<?x2x?x128xf32>,
                %dv: memref<?x2x?x128xf32>) {
  sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : memref<?x4x?x128xf32>, memref<?x2x?x128xf32>, memref<?x2x?x128xf32>, memref<?x4x?x128xf32>, memref<?x4x?x128xf32>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xf32>, memref<?x2x?x128xf32>, memref<?x2x?x128xf32>)
  return
}

// -----

func.func @tensors(%q: tensor<?x4x?x16xf32>, %k: tensor<?x2x?x16xf32>,
                   %v: tensor<?x2x?x16xf32>, %o: tensor<?x4x?x16xf32>,
                   %g: tensor<?x4x?x16xf32>, %l: tensor<?x4x?xf32>,
                   %dq: tensor<?x4x?x16xf32>, %dk: tensor<?x2x?x16xf32>,
                   %dv: tensor<?x2x?x16xf32>) {
  // expected-error @+1 {{needs buffer semantics; bufferize first}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x4x?x16xf32>, tensor<?x4x?x16xf32>, tensor<?x4x?xf32>)
      outs(%dq, %dk, %dv : tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>)
      -> tensor<?x4x?x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x16xf32>
  return
}

// -----

func.func @strided(%q: memref<?x4x?x16xf32, strided<[?, ?, ?, 2]>>, %k: memref<?x2x?x16xf32>,
                   %v: memref<?x2x?x16xf32>, %o: memref<?x4x?x16xf32>,
                   %g: memref<?x4x?x16xf32>, %l: memref<?x4x?xf32>,
                   %dq: memref<?x4x?x16xf32>, %dk: memref<?x2x?x16xf32>,
                   %dv: memref<?x2x?x16xf32>) {
  // expected-error @+1 {{the GPU kernels need a static innermost stride of 1 on every operand}}
  sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : memref<?x4x?x16xf32, strided<[?, ?, ?, 2]>>, memref<?x2x?x16xf32>, memref<?x2x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?x16xf32>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x16xf32>, memref<?x2x?x16xf32>, memref<?x2x?x16xf32>)
  return
}
