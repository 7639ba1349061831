// RUN: sqa-opt %s --sqa-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

// Analytic end-to-end test of sqa.attention masks. Q = 0, so every visible
// key gets the same weight, and V[b, h, t, :] = t + 10 * h, so output row i
// of kv head h is 10 * h + the mean of the key indices visible to query i.
// A row that sees no key must be 0 (not NaN). K is arbitrary (Q . K = 0).

func.func private @printMemrefF32(memref<*xf32>)

func.func @print(%t: tensor<?x?x?x?xf32>) {
  %m = bufferization.to_buffer %t : tensor<?x?x?x?xf32> to memref<?x?x?x?xf32>
  %u = memref.cast %m : memref<?x?x?x?xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}

// Q[b, h, s, d] = 0
func.func @zeros(%b: index, %h: index, %s: index, %d: index) -> tensor<?x?x?x?xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty(%b, %h, %s, %d) : tensor<?x?x?x?xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  return %z : tensor<?x?x?x?xf32>
}

// K[b, h, t, d] = t - d (any values do, since Q = 0)
func.func @keys(%b: index, %h: index, %t: index, %d: index) -> tensor<?x?x?x?xf32> {
  %k = tensor.generate %b, %h, %t, %d {
  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):
    %x = arith.subi %i2, %i3 : index
    %xi = arith.index_cast %x : index to i64
    %xf = arith.sitofp %xi : i64 to f32
    tensor.yield %xf : f32
  } : tensor<?x?x?x?xf32>
  return %k : tensor<?x?x?x?xf32>
}

// V[b, h, t, d] = t + 10 * h
func.func @values(%b: index, %h: index, %t: index, %d: index) -> tensor<?x?x?x?xf32> {
  %c10 = arith.constant 10 : index
  %v = tensor.generate %b, %h, %t, %d {
  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):
    %h10 = arith.muli %i1, %c10 : index
    %x = arith.addi %i2, %h10 : index
    %xi = arith.index_cast %x : index to i64
    %xf = arith.sitofp %xi : i64 to f32
    tensor.yield %xf : f32
  } : tensor<?x?x?x?xf32>
  return %v : tensor<?x?x?x?xf32>
}

func.func @main() {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index

  // 1. Causal, top_left, S = T = 4; GQA Hq = 2, Hkv = 1; D = 8, Dv = 3.
  //    Query i sees keys 0..i: means 0, 0.5, 1, 1.5 (both heads).
  %q1d = call @zeros(%c1, %c2, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %k1d = call @keys(%c1, %c1, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %v1d = call @values(%c1, %c1, %c4, %c3) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %q1 = tensor.cast %q1d : tensor<?x?x?x?xf32> to tensor<1x2x4x8xf32>
  %k1 = tensor.cast %k1d : tensor<?x?x?x?xf32> to tensor<1x1x4x8xf32>
  %v1 = tensor.cast %v1d : tensor<?x?x?x?xf32> to tensor<1x1x4x3xf32>
  %e1 = tensor.empty() : tensor<1x2x4x3xf32>
  %r1 = sqa.attention ins(%q1, %k1, %v1 : tensor<1x2x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x3xf32>) outs(%e1 : tensor<1x2x4x3xf32>) {mask = #sqa.mask<causal = true>} -> tensor<1x2x4x3xf32>
  %p1 = tensor.cast %r1 : tensor<1x2x4x3xf32> to tensor<?x?x?x?xf32>
  call @print(%p1) : (tensor<?x?x?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2, 4, 3]
  // CHECK-NEXT: {{\[\[\[\[}}0, 0, 0],
  // CHECK-NEXT: [0.5, 0.5, 0.5],
  // CHECK-NEXT: [1, 1, 1],
  // CHECK-NEXT: [1.5, 1.5, 1.5]],
  // CHECK-NEXT: {{\[\[}}0, 0, 0],
  // CHECK-NEXT: [0.5, 0.5, 0.5],
  // CHECK-NEXT: [1, 1, 1],
  // CHECK-NEXT: [1.5, 1.5, 1.5]]]]

  // 2. Causal, bottom_right, S = 2 < T = 4 (offset 2); reverse SQA Hq = 1,
  //    Hkv = 2 (output head h uses kv head h); D = 8, Dv = 3.
  //    Query 0 sees keys 0..2, query 1 sees 0..3: means 1, 1.5 (+10 for head 1).
  %q2d = call @zeros(%c1, %c1, %c2, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %k2d = call @keys(%c1, %c2, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %v2d = call @values(%c1, %c2, %c4, %c3) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %q2 = tensor.cast %q2d : tensor<?x?x?x?xf32> to tensor<1x1x2x8xf32>
  %k2 = tensor.cast %k2d : tensor<?x?x?x?xf32> to tensor<1x2x4x8xf32>
  %v2 = tensor.cast %v2d : tensor<?x?x?x?xf32> to tensor<1x2x4x3xf32>
  %e2 = tensor.empty() : tensor<1x2x2x3xf32>
  %r2 = sqa.attention ins(%q2, %k2, %v2 : tensor<1x1x2x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x3xf32>) outs(%e2 : tensor<1x2x2x3xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<1x2x2x3xf32>
  %p2 = tensor.cast %r2 : tensor<1x2x2x3xf32> to tensor<?x?x?x?xf32>
  call @print(%p2) : (tensor<?x?x?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2, 2, 3]
  // CHECK-NEXT: {{\[\[\[\[}}1, 1, 1],
  // CHECK-NEXT: [1.5, 1.5, 1.5]],
  // CHECK-NEXT: {{\[\[}}11, 11, 11],
  // CHECK-NEXT: [11.5, 11.5, 11.5]]]]

  // 3. Causal, bottom_right, S = 4 > T = 2 (offset -2): query i sees keys
  //    j <= i - 2, so queries 0 and 1 see no key and must be 0 (not NaN),
  //    query 2 sees key 0 (mean 0), query 3 keys 0..1 (mean 0.5).
  //    MHA Hq = Hkv = 1; D = 8, Dv = 3.
  %q3d = call @zeros(%c1, %c1, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %k3d = call @keys(%c1, %c1, %c2, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %v3d = call @values(%c1, %c1, %c2, %c3) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %q3 = tensor.cast %q3d : tensor<?x?x?x?xf32> to tensor<1x1x4x8xf32>
  %k3 = tensor.cast %k3d : tensor<?x?x?x?xf32> to tensor<1x1x2x8xf32>
  %v3 = tensor.cast %v3d : tensor<?x?x?x?xf32> to tensor<1x1x2x3xf32>
  %e3 = tensor.empty() : tensor<1x1x4x3xf32>
  %r3 = sqa.attention ins(%q3, %k3, %v3 : tensor<1x1x4x8xf32>, tensor<1x1x2x8xf32>, tensor<1x1x2x3xf32>) outs(%e3 : tensor<1x1x4x3xf32>) {mask = #sqa.mask<causal = true, alignment = bottom_right>} -> tensor<1x1x4x3xf32>
  %p3 = tensor.cast %r3 : tensor<1x1x4x3xf32> to tensor<?x?x?x?xf32>
  call @print(%p3) : (tensor<?x?x?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 1, 4, 3]
  // CHECK-NEXT: {{\[\[\[\[}}{{-?0}}, {{-?0}}, {{-?0}}],
  // CHECK-NEXT: [{{-?0}}, {{-?0}}, {{-?0}}],
  // CHECK-NEXT: [0, 0, 0],
  // CHECK-NEXT: [0.5, 0.5, 0.5]]]]

  // 4. Causal, top_left, window_left = 1, S = T = 4, batch 2: query i sees
  //    keys max(0, i - 1)..i: means 0, 0.5, 1.5, 2.5 in both batches.
  %q4d = call @zeros(%c2, %c1, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %k4d = call @keys(%c2, %c1, %c4, %c8) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %v4d = call @values(%c2, %c1, %c4, %c3) : (index, index, index, index) -> tensor<?x?x?x?xf32>
  %q4 = tensor.cast %q4d : tensor<?x?x?x?xf32> to tensor<2x1x4x8xf32>
  %k4 = tensor.cast %k4d : tensor<?x?x?x?xf32> to tensor<2x1x4x8xf32>
  %v4 = tensor.cast %v4d : tensor<?x?x?x?xf32> to tensor<2x1x4x3xf32>
  %e4 = tensor.empty() : tensor<2x1x4x3xf32>
  %r4 = sqa.attention ins(%q4, %k4, %v4 : tensor<2x1x4x8xf32>, tensor<2x1x4x8xf32>, tensor<2x1x4x3xf32>) outs(%e4 : tensor<2x1x4x3xf32>) {mask = #sqa.mask<causal = true, window_left = 1>} -> tensor<2x1x4x3xf32>
  %p4 = tensor.cast %r4 : tensor<2x1x4x3xf32> to tensor<?x?x?x?xf32>
  call @print(%p4) : (tensor<?x?x?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 1, 4, 3]
  // CHECK-NEXT: {{\[\[\[\[}}0, 0, 0],
  // CHECK-NEXT: [0.5, 0.5, 0.5],
  // CHECK-NEXT: [1.5, 1.5, 1.5],
  // CHECK-NEXT: [2.5, 2.5, 2.5]]],
  // CHECK-NEXT: {{\[\[\[}}0, 0, 0],
  // CHECK-NEXT: [0.5, 0.5, 0.5],
  // CHECK-NEXT: [1.5, 1.5, 1.5],
  // CHECK-NEXT: [2.5, 2.5, 2.5]]]]
  return
}
