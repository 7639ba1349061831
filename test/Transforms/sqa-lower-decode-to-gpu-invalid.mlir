// RUN: not sqa-opt %s -sqa-lower-decode-to-gpu="kv-block=48 split-keys=100" 2>&1 | FileCheck %s --check-prefix=SPLIT
// RUN: not sqa-opt %s -sqa-lower-decode-to-gpu="rows-per-block=0" 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not sqa-opt %s -sqa-lower-decode-to-gpu="kv-block=0" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not sqa-opt %s -sqa-lower-decode-to-gpu="kv-block=1024 split-keys=1024 rows-per-block=128" 2>&1 | FileCheck %s --check-prefix=SMEM
// SPLIT: kv-block (48) must divide split-keys (100)
// ROWS: rows-per-block
// BLOCK: kv-block
// SMEM: the split kernel needs {{[0-9]+}} bytes of shared memory (more than 227 KiB); lower kv-block or rows-per-block
func.func @f(%q: memref<?x2x?x64xf32>, %kc: memref<?x2x?x64xf32>, %l: memref<?xi64>, %o: memref<?x2x?x64xf32>) {
  sqa.decode query(%q : memref<?x2x?x64xf32>) cache(%kc, %kc : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             lengths(%l : memref<?xi64>) outs(%o : memref<?x2x?x64xf32>)
  return
}

// RUN: not sqa-opt %s -sqa-lower-decode-to-gpu 2>&1 | FileCheck %s --check-prefix=STRIDE
// STRIDE: the GPU kernels need a static innermost stride of 1 on every operand, got 'memref<?x2x?x64xf32, strided<[?, ?, ?, 2]>>'
func.func @strided(%q: memref<?x2x?x64xf32, strided<[?, ?, ?, 2]>>, %kc: memref<?x2x?x64xf32>, %l: memref<?xi64>, %o: memref<?x2x?x64xf32>) {
  sqa.decode query(%q : memref<?x2x?x64xf32, strided<[?, ?, ?, 2]>>) cache(%kc, %kc : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             lengths(%l : memref<?xi64>) outs(%o : memref<?x2x?x64xf32>)
  return
}
