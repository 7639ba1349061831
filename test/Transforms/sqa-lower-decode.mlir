// RUN: sqa-opt %s -sqa-lower-decode-split-kv | FileCheck %s --check-prefix=SPLIT
// RUN: sqa-opt %s -sqa-lower-decode-reference | FileCheck %s --check-prefix=REF
// RUN: sqa-opt %s --sqa-cpu-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: sqa-opt %s "--sqa-cpu-pipeline=attention-kernel=reference" | FileCheck %s --check-prefix=LLVM

// Split-KV: the append copy, the work list, a parallel loop over (kv head,
// split) whose dot products and softmax run on vectors, and a parallel merge
// over (batch, kv head). The group's 4 rows form one tile; at head dim 64
// each pass over the head dim takes 2 keys (4 x 2 accumulators), prefetches
// their V rows (4 cache lines each) for the P.V that follows the softmax,
// and its 8 dot products are summed by one shuffle tree into one vector.
// SPLIT-LABEL: func @gqa_append
// SPLIT-NOT: sqa.decode
// SPLIT: memref.load %arg4
// SPLIT: memref.store %{{.*}}, %arg1
// SPLIT: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, %{{.*}})
// SPLIT: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c4
// SPLIT: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c2
// SPLIT-COUNT-8: memref.prefetch %arg2[{{.*}}], read, locality<3>, data : memref<?x2x?x64xf32>
// SPLIT: scf.for {{.*}} -> (vector<8xf32>{{((, vector<8xf32>){7})}}) {
// SPLIT-COUNT-2: vector.load %arg1{{.*}} : memref<?x2x?x64xf32>, vector<8xf32>
// SPLIT: vector.shuffle %{{.*}}#0, %{{.*}}#4 [0, 1, 2, 3, 8, 9, 10, 11]
// SPLIT: vector.extract_strided_slice %{{.*}} {offsets = [6], sizes = [2], strides = [1]} : vector<8xf32> to vector<2xf32>
// SPLIT-NEXT: vector.store %{{.*}} : memref<?x64xf32>, vector<2xf32>
// SPLIT: vector.reduction <maxnumf>
// SPLIT: vector.load %arg2{{.*}} : memref<?x2x?x64xf32>, vector<8xf32>
// SPLIT: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, %{{.*}})
// SPLIT: vector.store %{{.*}}, %arg6
// REF-LABEL: func @gqa_append
// REF-NOT: sqa.decode
// REF: math.exp
// LLVM-LABEL: llvm.func @gqa_append
// LLVM-NOT: sqa.decode
func.func @gqa_append(%q: memref<?x8x?x64xf32>, %kc: memref<?x2x?x64xf32>, %vc: memref<?x2x?x64xf32>,
                      %l: memref<?xi64>, %kn: memref<?x2x?x64xf32>, %vn: memref<?x2x?x64xf32>,
                      %o: memref<?x8x?x64xf32>) {
  sqa.decode query(%q : memref<?x8x?x64xf32>)
             cache(%kc, %vc : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             lengths(%l : memref<?xi64>)
             append(%kn, %vn : memref<?x2x?x64xf32>, memref<?x2x?x64xf32>)
             outs(%o : memref<?x8x?x64xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>}
  return
}

// Head dim 128, 4 query heads per kv head: the 4-row tile shares each
// loaded K vector (one key per pass: K is read in address order, its V row's
// 8 lines prefetched) and each V vector (4 rows x 3 value vectors of
// accumulators: with the 3 loaded V vectors and a broadcast, 16 registers).
// SPLIT-LABEL: func @gqa_wide
// SPLIT: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c4
// SPLIT: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1
// SPLIT-COUNT-8: memref.prefetch %arg2[{{.*}}], read, locality<3>, data : memref<?x2x?x128xf32>
// SPLIT: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// SPLIT-NEXT: vector.load %arg1{{.*}} : memref<?x2x?x128xf32>, vector<8xf32>
// SPLIT-NEXT: vector.load %{{.*}} : memref<?x128xf32>, vector<8xf32>
// SPLIT: vector.extract_strided_slice %{{.*}} {offsets = [3], sizes = [1], strides = [1]} : vector<8xf32> to vector<1xf32>
// SPLIT: scf.for {{.*}} -> (vector<8xf32>{{((, vector<8xf32>){11})}}) {
// SPLIT-COUNT-3: vector.load %arg2{{.*}} : memref<?x2x?x128xf32>, vector<8xf32>
func.func @gqa_wide(%q: memref<?x8x?x128xf32>, %kc: memref<?x2x?x128xf32>, %vc: memref<?x2x?x128xf32>,
                    %l: memref<?xi64>, %o: memref<?x8x?x128xf32>) {
  sqa.decode query(%q : memref<?x8x?x128xf32>)
             cache(%kc, %vc : memref<?x2x?x128xf32>, memref<?x2x?x128xf32>)
             lengths(%l : memref<?xi64>)
             outs(%o : memref<?x8x?x128xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>}
  return
}

// bf16, head dims 24/12: the widest vector tiling both is 4 lanes; K/V are
// widened to f32 per vector and the output rounded once.
// SPLIT-LABEL: func @bf16_memory
// SPLIT-NOT: sqa.decode
// SPLIT: vector.load %arg1{{.*}} : memref<?x4x?x24xbf16>, vector<4xbf16>
// SPLIT: arith.extf %{{.*}} : vector<4xbf16> to vector<4xf32>
// SPLIT: arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
// LLVM-LABEL: llvm.func @bf16_memory
func.func @bf16_memory(%q: memref<?x2x?x24xbf16>, %kc: memref<?x4x?x24xbf16>, %vc: memref<?x4x?x12xbf16>,
                       %l: memref<?xi64>, %o: memref<?x4x?x12xbf16>) {
  sqa.decode query(%q : memref<?x2x?x24xbf16>)
             cache(%kc, %vc : memref<?x4x?x24xbf16>, memref<?x4x?x12xbf16>)
             lengths(%l : memref<?xi64>)
             outs(%o : memref<?x4x?x12xbf16>)
  return
}
