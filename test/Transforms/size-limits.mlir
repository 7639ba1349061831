// Issue 16's hostile sizes: each used to crash or hang a pass; now the
// verifier rejects it, naming the number, before any pass runs. Every RUN
// line must finish in well under a second.
// RUN: sqa-opt %s -split-input-file -verify-diagnostics --sqa-tile-attention
// RUN: sqa-opt %s -split-input-file -verify-diagnostics --sqa-cpu-pipeline
// RUN: sqa-opt %s -split-input-file -verify-diagnostics --sqa-cuda-pipeline=format=isa
// RUN: sqa-opt %s -split-input-file -verify-diagnostics --one-shot-bufferize=bufferize-function-boundaries --sqa-lower-attention-to-gpu

// SIGSEGV in --sqa-cuda-pipeline (constifyIndexValues): byte size > 2^63.
func.func @f(%q: tensor<2x1x4611686018427387904x8xf32>, %k: tensor<2x1x4611686018427387904x8xf32>, %v: tensor<2x1x4611686018427387904x8xf32>, %o: tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32> {
  // expected-error @+1 {{query [2, 1, 4611686018427387904, 8] has more elements than int64 can count (2 x 4611686018427387904 overflows)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>) outs(%o : tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32>
  return %r : tensor<2x1x4611686018427387904x8xf32>
}

// -----

// --sqa-tile-attention and --sqa-cpu-pipeline ran for ever: Hq = 2^62, Hkv = 1.
func.func @f(%q: tensor<1x4611686018427387904x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>, %o: tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32> {
  // expected-error @+1 {{query heads (4611686018427387904) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4611686018427387904x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) outs(%o : tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32>
  return %r : tensor<1x4611686018427387904x4x8xf32>
}

// -----

// Hq = 2^32 took 8 s; the bound makes it an error too.
func.func @f(%q: tensor<1x4294967296x?x8xf32>, %k: tensor<1x1x?x8xf32>, %v: tensor<1x1x?x8xf32>, %o: tensor<1x4294967296x?x8xf32>) -> tensor<1x4294967296x?x8xf32> {
  // expected-error @+1 {{query heads (4294967296) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4294967296x?x8xf32>, tensor<1x1x?x8xf32>, tensor<1x1x?x8xf32>) outs(%o : tensor<1x4294967296x?x8xf32>) -> tensor<1x4294967296x?x8xf32>
  return %r : tensor<1x4294967296x?x8xf32>
}

// -----

// --sqa-lower-attention-to-gpu ran for ever with D >= 2^56 (signed overflow
// in the shared-memory size).
func.func @f(%q: tensor<1x1x?x72057594037927936xf16>, %k: tensor<1x1x?x72057594037927936xf16>, %v: tensor<1x1x?x16xf16>, %o: tensor<1x1x?x16xf16>) -> tensor<1x1x?x16xf16> {
  // expected-error @+1 {{query head dim (72057594037927936) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x1x?x72057594037927936xf16>, tensor<1x1x?x72057594037927936xf16>, tensor<1x1x?x16xf16>) outs(%o : tensor<1x1x?x16xf16>) -> tensor<1x1x?x16xf16>
  return %r : tensor<1x1x?x16xf16>
}

// -----

// A static T = 0 passed the verifier, then --sqa-tile-attention failed on
// its own IR ("offset 2 is out-of-bounds: 0 >= 0"). Static empty batches and
// sequences are rejected (documented in the op's description).
func.func @f(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x0x8xf32>, %v: tensor<1x2x0x8xf32>, %o: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  // expected-error @+1 {{key sequence length (dim 2 of [B, Hkv, T, D]) is a static 0; sizes must be positive}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x4x8xf32>, tensor<1x2x0x8xf32>, tensor<1x2x0x8xf32>) outs(%o : tensor<1x2x4x8xf32>) {mask = #sqa.mask<causal = true>} -> tensor<1x2x4x8xf32>
  return %r : tensor<1x2x4x8xf32>
}
