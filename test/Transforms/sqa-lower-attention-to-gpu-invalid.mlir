// RUN: sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu -verify-diagnostics
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="kv-block=40" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="heads-per-block=3" 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="kv-block=512" 2>&1 | FileCheck %s --check-prefix=SMEM
// RUN: not sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="rows-per-warp=24" 2>&1 | FileCheck %s --check-prefix=ROWS

// BLOCK: kv-block must be a positive multiple of 16, got 40
// HEADS: heads-per-block must be 1, 2 or 4 and divide the output heads per key/value head (2), got 3
// ROWS: rows-per-warp must be 16 or 32, got 24
// SMEM: the kernel needs 304128 bytes of shared memory (more than 227 KiB); lower kv-block

func.func @fine(%q: memref<?x4x?x64xf16>, %k: memref<?x2x?x64xf16>,
                %v: memref<?x2x?x64xf16>, %o: memref<?x4x?x64xf16>) {
  sqa.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>)
      outs(%o : memref<?x4x?x64xf16>)
  return
}

// -----

func.func @head_dim(%q: memref<?x4x?x40xf16>, %k: memref<?x4x?x40xf16>,
                    %v: memref<?x4x?x40xf16>, %o: memref<?x4x?x40xf16>) {
  // expected-error @+1 {{tensor-core kernels need head dims that are multiples of 16, got D = 40, Dv = 40}}
  sqa.attention ins(%q, %k, %v : memref<?x4x?x40xf16>, memref<?x4x?x40xf16>, memref<?x4x?x40xf16>)
      outs(%o : memref<?x4x?x40xf16>)
  return
}

// -----

func.func @tensors(%q: tensor<1x4x8x64xf16>, %k: tensor<1x4x8x64xf16>,
                   %v: tensor<1x4x8x64xf16>, %o: tensor<1x4x8x64xf16>) -> tensor<1x4x8x64xf16> {
  // expected-error @+1 {{sqa-lower-attention-to-gpu needs buffer semantics; bufferize first}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x64xf16>, tensor<1x4x8x64xf16>, tensor<1x4x8x64xf16>)
      outs(%o : tensor<1x4x8x64xf16>) -> tensor<1x4x8x64xf16>
  return %r : tensor<1x4x8x64xf16>
}

// -----

func.func @inner_stride(%q: memref<1x4x8x64xf16, strided<[4096, 1024, 128, 2]>>,
                        %k: memref<1x4x8x64xf16>, %v: memref<1x4x8x64xf16>,
                        %o: memref<1x4x8x64xf16>) {
  // expected-error @+1 {{the GPU kernel needs a static innermost stride of 1 on every operand, got 'memref<1x4x8x64xf16, strided<[4096, 1024, 128, 2]>>'}}
  sqa.attention ins(%q, %k, %v : memref<1x4x8x64xf16, strided<[4096, 1024, 128, 2]>>, memref<1x4x8x64xf16>, memref<1x4x8x64xf16>)
      outs(%o : memref<1x4x8x64xf16>)
  return
}
