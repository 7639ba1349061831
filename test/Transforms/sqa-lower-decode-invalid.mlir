// RUN: not sqa-opt %s -sqa-lower-decode-split-kv="kv-block=6" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not sqa-opt %s -sqa-lower-decode-split-kv="kv-block=64 split-keys=100" 2>&1 | FileCheck %s --check-prefix=BLOCK-SPLIT
// RUN: not sqa-opt %s -sqa-lower-decode-split-kv="split-keys=0" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not sqa-opt %s -sqa-lower-decode-split-kv="vector-width=0" 2>&1 | FileCheck %s --check-prefix=WIDTH
// BLOCK: kv-block (6) must be a multiple of 4 and divide split-keys (512)
// BLOCK-SPLIT: kv-block (64) must be a multiple of 4 and divide split-keys (100)
// RANGE: split-keys
// WIDTH: vector-width
func.func @f(%q: memref<?x2x?x8xf32>, %kc: memref<?x2x?x8xf32>, %l: memref<?xi64>, %o: memref<?x2x?x8xf32>) {
  sqa.decode query(%q : memref<?x2x?x8xf32>) cache(%kc, %kc : memref<?x2x?x8xf32>, memref<?x2x?x8xf32>)
             lengths(%l : memref<?xi64>) outs(%o : memref<?x2x?x8xf32>)
  return
}
