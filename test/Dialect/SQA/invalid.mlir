// RUN: sqa-opt %s -split-input-file -verify-diagnostics

// Every verifier and parser rule of the sqa dialect, one case each.

func.func @f(%q: tensor<2x8x16x32xf64>, %k: tensor<2x4x20x32xf64>, %v: tensor<2x4x20x24xf64>, %o: tensor<2x8x16x24xf64>) -> tensor<2x8x16x24xf64> {
  // expected-error @+1 {{element type 'f64' is not supported; expected f32, f16 or bf16}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf64>, tensor<2x4x20x32xf64>, tensor<2x4x20x24xf64>) outs(%o : tensor<2x8x16x24xf64>) -> tensor<2x8x16x24xf64>
  return %r : tensor<2x8x16x24xf64>
}

// -----

func.func @f(%q: tensor<2x8x16x32xi8>, %k: tensor<2x4x20x32xi8>, %v: tensor<2x4x20x24xi8>, %o: tensor<2x8x16x24xi8>) -> tensor<2x8x16x24xi8> {
  // expected-error @+1 {{element type 'i8' is not supported; expected f32, f16 or bf16}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xi8>, tensor<2x4x20x32xi8>, tensor<2x4x20x24xi8>) outs(%o : tensor<2x8x16x24xi8>) -> tensor<2x8x16x24xi8>
  return %r : tensor<2x8x16x24xi8>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf16>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key element type 'f16' must match query element type 'f32'}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf16>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xbf16>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value element type 'bf16' must match query element type 'f32'}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xbf16>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf16>) -> tensor<2x8x16x24xf16> {
  // expected-error @+1 {{init element type 'f16' must match query element type 'f32'}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf16>) -> tensor<2x8x16x24xf16>
  return %r : tensor<2x8x16x24xf16>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x?x24xf32> {
  // expected-error @+1 {{result type 'tensor<2x8x?x24xf32>' must match init type 'tensor<2x8x16x24xf32>'}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x?x24xf32>
  return %r : tensor<2x8x?x24xf32>
}

// -----

func.func @f(%q: tensor<8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query must have rank 4 [B, Hq, S, D], got rank 3}}
  %r = sqa.attention ins(%q, %k, %v : tensor<8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x1x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key must have rank 4 [B, Hkv, T, D], got rank 5}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x1x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value must have rank 4 [B, Hkv, T, Dv], got rank 3}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<16x24xf32>) -> tensor<16x24xf32> {
  // expected-error @+1 {{init must have rank 4 [B, max(Hq, Hkv), S, Dv], got rank 2}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<16x24xf32>) -> tensor<16x24xf32>
  return %r : tensor<16x24xf32>
}

// -----

func.func @f(%q: tensor<2x?x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query heads (dim 1 of [B, Hq, S, D]) must be static}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x?x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x?x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key heads (dim 1 of [B, Hkv, T, D]) must be static}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x?x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x?xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query head dim (dim 3 of [B, Hq, S, D]) must be static}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x?xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x?xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value head dim (dim 3 of [B, Hkv, T, Dv]) must be static}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x?xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x?x16x24xf32>) -> tensor<2x?x16x24xf32> {
  // expected-error @+1 {{init heads (dim 1 of [B, max(Hq, Hkv), S, Dv]) must be static}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x?x16x24xf32>) -> tensor<2x?x16x24xf32>
  return %r : tensor<2x?x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x0x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query heads must be positive, got 0}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x0x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x0xf32>, %k: tensor<2x4x20x0xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query head dim must be positive, got 0}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x0xf32>, tensor<2x4x20x0xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<3x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key batch size (3) must match query batch size (2)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<3x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<1x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value batch size (1) must match query batch size (2)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<1x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<4x8x16x24xf32>) -> tensor<4x8x16x24xf32> {
  // expected-error @+1 {{init batch size (4) must match query batch size (2)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<4x8x16x24xf32>) -> tensor<4x8x16x24xf32>
  return %r : tensor<4x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x64xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key head dim (64) must match query head dim (32)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x64xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x2x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value heads (2) must match key heads (4)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x2x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x21x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{value sequence length (21) must match key sequence length (20)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x21x24xf32>) outs(%o : tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x17x24xf32>) -> tensor<2x8x17x24xf32> {
  // expected-error @+1 {{init sequence length (17) must match query sequence length (16)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x17x24xf32>) -> tensor<2x8x17x24xf32>
  return %r : tensor<2x8x17x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x32xf32>) -> tensor<2x8x16x32xf32> {
  // expected-error @+1 {{init head dim (32) must match value head dim (24)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x32xf32>) -> tensor<2x8x16x32xf32>
  return %r : tensor<2x8x16x32xf32>
}

// -----

func.func @f(%q: tensor<2x6x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x6x16x24xf32>) -> tensor<2x6x16x24xf32> {
  // expected-error @+1 {{query heads (6) must be a multiple of key/value heads (4)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x6x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x6x16x24xf32>) -> tensor<2x6x16x24xf32>
  return %r : tensor<2x6x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x4x16x32xf32>, %k: tensor<2x6x20x32xf32>, %v: tensor<2x6x20x24xf32>, %o: tensor<2x6x16x24xf32>) -> tensor<2x6x16x24xf32> {
  // expected-error @+1 {{key/value heads (6) must be a multiple of query heads (4)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x4x16x32xf32>, tensor<2x6x20x32xf32>, tensor<2x6x20x24xf32>) outs(%o : tensor<2x6x16x24xf32>) -> tensor<2x6x16x24xf32>
  return %r : tensor<2x6x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x4x16x24xf32>) -> tensor<2x4x16x24xf32> {
  // expected-error @+1 {{init heads (4) must equal max(query heads, key/value heads) = 8}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x4x16x24xf32>) -> tensor<2x4x16x24xf32>
  return %r : tensor<2x4x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x4x16x32xf32>, %k: tensor<2x8x20x32xf32>, %v: tensor<2x8x20x24xf32>, %o: tensor<2x4x16x24xf32>) -> tensor<2x4x16x24xf32> {
  // expected-error @+1 {{init heads (4) must equal max(query heads, key/value heads) = 8}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x4x16x32xf32>, tensor<2x8x20x32xf32>, tensor<2x8x20x24xf32>) outs(%o : tensor<2x4x16x24xf32>) -> tensor<2x4x16x24xf32>
  return %r : tensor<2x4x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{scale must be finite, got INF}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) {scale = 0x7F800000 : f32} -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{attribute 'scale' failed to satisfy constraint: 32-bit float attribute}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) {scale = 0.5 : f64} -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{query heads (8) do not match the head configuration's (4)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) {heads = #sqa.heads<xsqa, total = 16>} -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>) -> tensor<2x8x16x24xf32> {
  // expected-error @+1 {{key/value heads (4) do not match the head configuration's (8)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) {heads = #sqa.heads<total = 16, query = 8, kv = 8>} -> tensor<2x8x16x24xf32>
  return %r : tensor<2x8x16x24xf32>
}

// -----

// Attribute verifiers and parsers: masks and head configurations.

// expected-error @+1 {{window_left must be -1 (unbounded) or >= 0, got -2}}
func.func private @attr() attributes {a = #sqa.mask<window_left = -2>}

// -----

// expected-error @+1 {{window_right must be -1 (unbounded) or >= 0, got -5}}
func.func private @attr() attributes {a = #sqa.mask<causal = true, window_right = -5>}

// -----

// expected-error @+2 {{expected one of [top_left, bottom_right] for where the diagonal of a causal or window mask starts, got: diagonal}}
// expected-error @+1 {{failed to parse SQA_MaskAttr parameter 'alignment'}}
func.func private @attr() attributes {a = #sqa.mask<alignment = diagonal>}

// -----

// expected-error @+1 {{total heads must be positive, got 0}}
func.func private @attr() attributes {a = #sqa.heads<total = 0, query = 1, kv = 1>}

// -----

// expected-error @+1 {{query heads must be positive, got 0}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 0, kv = 1>}

// -----

// expected-error @+1 {{key/value heads must be positive, got -1}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 4, kv = -1>}

// -----

// expected-error @+1 {{query heads (32) must not exceed total heads (16)}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 32, kv = 4>}

// -----

// expected-error @+1 {{key/value heads (32) must not exceed total heads (16)}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 4, kv = 32>}

// -----

// expected-error @+1 {{query heads (6) must be a multiple of key/value heads (4)}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 6, kv = 4>}

// -----

// expected-error @+1 {{key/value heads (6) must be a multiple of query heads (4)}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 4, kv = 6>}

// -----

// expected-error @+1 {{unknown head preset 'gsa'; expected mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa or rsqa}}
func.func private @attr() attributes {a = #sqa.heads<gsa, total = 16>}

// -----

// expected-error @+1 {{unknown head parameter 'queries'; expected total, query, kv or groups}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, queries = 8, kv = 8>}

// -----

// expected-error @+1 {{head parameter 'total' given twice}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, total = 8, query = 8, kv = 8>}

// -----

// expected-error @+1 {{expected '=' after 'query'}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query, kv = 8>}

// -----

// expected-error @+1 {{head configuration needs 'total'}}
func.func private @attr() attributes {a = #sqa.heads<query = 8, kv = 8>}

// -----

// expected-error @+1 {{preset 'ssqa' fixes query and kv; give only total}}
func.func private @attr() attributes {a = #sqa.heads<ssqa, total = 16, query = 8>}

// -----

// expected-error @+1 {{'groups' is only meaningful with the gqa preset}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 16, kv = 4, groups = 4>}

// -----

// expected-error @+1 {{head configuration needs 'query' and 'kv' (or a preset name)}}
func.func private @attr() attributes {a = #sqa.heads<total = 16, query = 8>}

// -----

// expected-error @+1 {{preset 'gqa' needs a group count}}
func.func private @attr() attributes {a = #sqa.heads<gqa, total = 16>}

// -----

// expected-error @+1 {{preset 'gqa' needs 1 < groups (16) < total heads (16)}}
func.func private @attr() attributes {a = #sqa.heads<gqa, total = 16, groups = 16>}

// -----

// expected-error @+1 {{preset 'gqa': query heads (16) must be a multiple of key/value heads (3)}}
func.func private @attr() attributes {a = #sqa.heads<gqa, total = 16, groups = 3>}

// -----

// expected-error @+1 {{preset 'xsqa' needs total heads (6) divisible by 4}}
func.func private @attr() attributes {a = #sqa.heads<xsqa, total = 6>}

// -----

// expected-error @+1 {{preset 'ssqa' needs total heads (7) divisible by 2}}
func.func private @attr() attributes {a = #sqa.heads<ssqa, total = 7>}

// -----

// expected-error @+1 {{preset 'mqa' takes no group count}}
func.func private @attr() attributes {a = #sqa.heads<mqa, total = 16, groups = 2>}

// -----

// expected-error @+1 {{total heads must be positive, got -4}}
func.func private @attr() attributes {a = #sqa.heads<mha, total = -4>}

// -----

// Value and buffer semantics do not mix.
func.func @mixed(%q: tensor<1x2x4x8xf32>, %k: memref<1x2x4x8xf32>, %o: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  // expected-error @+1 {{operands must be all ranked tensors or all ranked memrefs}}
  %r = sqa.attention ins(%q, %k, %k : tensor<1x2x4x8xf32>, memref<1x2x4x8xf32>, memref<1x2x4x8xf32>) outs(%o : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  return %r : tensor<1x2x4x8xf32>
}

// -----

func.func @tensor_without_result(%q: tensor<1x2x4x8xf32>, %o: tensor<1x2x4x8xf32>) {
  // expected-error @+1 {{on tensors must return one result, got 0}}
  sqa.attention ins(%q, %q, %q : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%o : tensor<1x2x4x8xf32>)
  return
}

// -----

func.func @memref_with_result(%q: memref<1x2x4x8xf32>, %o: memref<1x2x4x8xf32>) {
  // expected-error @+1 {{on memrefs must not return results, got 1}}
  %r = sqa.attention ins(%q, %q, %q : memref<1x2x4x8xf32>, memref<1x2x4x8xf32>, memref<1x2x4x8xf32>) outs(%o : memref<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  return
}

// -----

func.func @unranked_memref(%q: memref<*xf32>, %k: memref<1x2x4x8xf32>, %o: memref<1x2x4x8xf32>) {
  // expected-error @+1 {{operands must be all ranked tensors or all ranked memrefs}}
  sqa.attention ins(%q, %k, %k : memref<*xf32>, memref<1x2x4x8xf32>, memref<1x2x4x8xf32>) outs(%o : memref<1x2x4x8xf32>)
  return
}

// -----

// sqa.attention_layer and #sqa.rope.

func.func @f(%x: tensor<8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{input must have rank 3 [B, S, d_model], got rank 2}}
  %y = sqa.attention_layer ins(%x : tensor<8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x?xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{d_model (dim 2 of the input) must be static}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x?xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{d_model (64) must be divisible by total heads (6)}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 6, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xbf16>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{operand #1 element type 'bf16' must match input element type 'f32'}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xbf16>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>, %m: tensor<2x5x32xf32>) {
  // expected-error @+1 {{memory shape [2, 5, 32] must be [B, T, d_model] = [2, ?, 64]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) memory(%m : tensor<2x5x32xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x48xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{w_q shape [64, 48] must be [d_model, Hq*dh] = [64, 32]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x48xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<32x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{w_k shape [32, 16] must be [d_model, Hkv*dh] = [64, 16]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<32x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x32xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{w_v shape [64, 32] must be [d_model, Hkv*dh] = [64, 16]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x32xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<64x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{w_o shape [64, 64] must be [max(Hq, Hkv)*dh, d_model] = [32, 64]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<64x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>, %bq: tensor<16xf32>) {
  // expected-error @+1 {{b_q shape [16] must be [Hq*dh] = [32]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) bias_q(%bq : tensor<16xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>, %bo: tensor<32xf32>) {
  // expected-error @+1 {{b_o shape [32] must be [d_model] = [64]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) bias_o(%bo : tensor<32xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x9x64xf32>) {
  // expected-error @+1 {{init shape [2, 9, 64] must be [B, S, d_model] = [2, 8, 64]}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x9x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x9x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{result type 'tensor<2x8x?xf32>' must match init type 'tensor<2x8x64xf32>'}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x?xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x60xf32>, %wq: tensor<60x30xf32>, %wk: tensor<60x15xf32>, %wv: tensor<60x15xf32>, %wo: tensor<30x60xf32>, %o: tensor<2x8x60xf32>) {
  // expected-error @+1 {{RoPE needs an even head dim, got 15}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x60xf32>) weights(%wq, %wk, %wv, %wo : tensor<60x30xf32>, tensor<60x15xf32>, tensor<60x15xf32>, tensor<30x60xf32>) outs(%o : tensor<2x8x60xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>, rope = #sqa.rope<kind = rotary>} -> tensor<2x8x60xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{rope queries_only is for cross-attention, but there is no memory operand}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>, rope = #sqa.rope<kind = rotary, queries_only = true>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>) {
  // expected-error @+1 {{scale must be finite, got INF}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>, scale = 0x7F800000 : f32} -> tensor<2x8x64xf32>
  return
}

// -----

// expected-error @+1 {{rope base must be a positive finite number, got -1}}
func.func private @attr() attributes {a = #sqa.rope<kind = rotary, base = -1.0>}

// -----

// expected-error @+1 {{rope factor must be a finite number >= 1, got 5.000000e-01}}
func.func private @attr() attributes {a = #sqa.rope<kind = linear, factor = 0.5>}

// -----

// expected-error @+1 {{rope original_max_positions must be positive, got 0}}
func.func private @attr() attributes {a = #sqa.rope<kind = dynamic_ntk, original_max_positions = 0>}

// -----

// expected-error @+1 {{rope position_offset must be >= 0, got -3}}
func.func private @attr() attributes {a = #sqa.rope<kind = rotary, position_offset = -3>}

// -----

// Size limits (docs/design.md): heads and head dims <= 65536, static
// extents that fit int64, no static empty batch or sequence.

func.func @f(%q: tensor<1x4611686018427387904x4x8xf32>, %k: tensor<1x1x4x8xf32>, %v: tensor<1x1x4x8xf32>, %o: tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32> {
  // expected-error @+1 {{query heads (4611686018427387904) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4611686018427387904x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) outs(%o : tensor<1x4611686018427387904x4x8xf32>) -> tensor<1x4611686018427387904x4x8xf32>
  return %r : tensor<1x4611686018427387904x4x8xf32>
}

// -----

func.func @f(%q: tensor<1x1x4x8xf32>, %k: tensor<1x131072x4x8xf32>, %v: tensor<1x131072x4x8xf32>, %o: tensor<1x131072x4x8xf32>) -> tensor<1x131072x4x8xf32> {
  // expected-error @+1 {{key heads (131072) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x1x4x8xf32>, tensor<1x131072x4x8xf32>, tensor<1x131072x4x8xf32>) outs(%o : tensor<1x131072x4x8xf32>) -> tensor<1x131072x4x8xf32>
  return %r : tensor<1x131072x4x8xf32>
}

// -----

func.func @f(%q: tensor<1x2x4x131072xf16>, %k: tensor<1x2x4x131072xf16>, %v: tensor<1x2x4x8xf16>, %o: tensor<1x2x4x8xf16>) -> tensor<1x2x4x8xf16> {
  // expected-error @+1 {{query head dim (131072) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x4x131072xf16>, tensor<1x2x4x131072xf16>, tensor<1x2x4x8xf16>) outs(%o : tensor<1x2x4x8xf16>) -> tensor<1x2x4x8xf16>
  return %r : tensor<1x2x4x8xf16>
}

// -----

func.func @f(%q: tensor<1x2x4x8xf16>, %k: tensor<1x2x4x8xf16>, %v: tensor<1x2x4x65537xf16>, %o: tensor<1x2x4x65537xf16>) -> tensor<1x2x4x65537xf16> {
  // expected-error @+1 {{value head dim (65537) exceeds the supported maximum (65536)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x4x8xf16>, tensor<1x2x4x8xf16>, tensor<1x2x4x65537xf16>) outs(%o : tensor<1x2x4x65537xf16>) -> tensor<1x2x4x65537xf16>
  return %r : tensor<1x2x4x65537xf16>
}

// -----

func.func @f(%q: tensor<2x1x4611686018427387904x8xf32>, %k: tensor<2x1x4611686018427387904x8xf32>, %v: tensor<2x1x4611686018427387904x8xf32>, %o: tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32> {
  // expected-error @+1 {{query [2, 1, 4611686018427387904, 8] has more elements than int64 can count (2 x 4611686018427387904 overflows)}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>, tensor<2x1x4611686018427387904x8xf32>) outs(%o : tensor<2x1x4611686018427387904x8xf32>) -> tensor<2x1x4611686018427387904x8xf32>
  return %r : tensor<2x1x4611686018427387904x8xf32>
}

// -----

func.func @f(%q: tensor<1x1x1152921504606846976x4xf32>, %k: tensor<1x1x4x4xf32>, %v: tensor<1x1x4x4xf32>, %o: tensor<1x1x1152921504606846976x4xf32>) -> tensor<1x1x1152921504606846976x4xf32> {
  // expected-error @+1 {{query [1, 1, 1152921504606846976, 4] is 4611686018427387904 elements of 4 bytes: the byte size overflows int64}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x1x1152921504606846976x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) outs(%o : tensor<1x1x1152921504606846976x4xf32>) -> tensor<1x1x1152921504606846976x4xf32>
  return %r : tensor<1x1x1152921504606846976x4xf32>
}

// -----

func.func @f(%q: tensor<0x2x4x8xf32>, %k: tensor<0x2x4x8xf32>, %v: tensor<0x2x4x8xf32>, %o: tensor<0x2x4x8xf32>) -> tensor<0x2x4x8xf32> {
  // expected-error @+1 {{query batch size (dim 0 of [B, Hq, S, D]) is a static 0; sizes must be positive}}
  %r = sqa.attention ins(%q, %k, %v : tensor<0x2x4x8xf32>, tensor<0x2x4x8xf32>, tensor<0x2x4x8xf32>) outs(%o : tensor<0x2x4x8xf32>) -> tensor<0x2x4x8xf32>
  return %r : tensor<0x2x4x8xf32>
}

// -----

func.func @f(%q: tensor<1x2x0x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>, %o: tensor<1x2x0x8xf32>) -> tensor<1x2x0x8xf32> {
  // expected-error @+1 {{query sequence length (dim 2 of [B, Hq, S, D]) is a static 0; sizes must be positive}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x0x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%o : tensor<1x2x0x8xf32>) -> tensor<1x2x0x8xf32>
  return %r : tensor<1x2x0x8xf32>
}

// -----

func.func @f(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x0x8xf32>, %v: tensor<1x2x0x8xf32>, %o: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  // expected-error @+1 {{key sequence length (dim 2 of [B, Hkv, T, D]) is a static 0; sizes must be positive}}
  %r = sqa.attention ins(%q, %k, %v : tensor<1x2x4x8xf32>, tensor<1x2x0x8xf32>, tensor<1x2x0x8xf32>) outs(%o : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  return %r : tensor<1x2x4x8xf32>
}

// -----

func.func @f(%q: memref<1x2x4x8xf32>, %k: memref<1x2x0x8xf32>, %v: memref<1x2x0x8xf32>, %o: memref<1x2x4x8xf32>) {
  // expected-error @+1 {{key sequence length (dim 2 of [B, Hkv, T, D]) is a static 0; sizes must be positive}}
  sqa.attention ins(%q, %k, %v : memref<1x2x4x8xf32>, memref<1x2x0x8xf32>, memref<1x2x0x8xf32>) outs(%o : memref<1x2x4x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x1x4611686018427387904x8xf32>, %k: memref<2x1x4611686018427387904x8xf32>, %v: memref<2x1x4611686018427387904x8xf32>, %o: memref<2x1x4611686018427387904x8xf32>) {
  // expected-error @+1 {{query [2, 1, 4611686018427387904, 8] has more elements than int64 can count (2 x 4611686018427387904 overflows)}}
  sqa.attention ins(%q, %k, %v : memref<2x1x4611686018427387904x8xf32>, memref<2x1x4611686018427387904x8xf32>, memref<2x1x4611686018427387904x8xf32>) outs(%o : memref<2x1x4611686018427387904x8xf32>)
  return
}

// -----

func.func @f(%q: memref<1x1x4x8xf32, strided<[32, 32, 8, 1], offset: 9223372036854775708>>, %k: memref<1x1x4x8xf32>, %v: memref<1x1x4x8xf32>, %o: memref<1x1x4x8xf32>) {
  // expected-error @+1 {{query 'memref<1x1x4x8xf32, strided<[32, 32, 8, 1], offset: 9223372036854775708>>': its largest element offset overflows int64}}
  sqa.attention ins(%q, %k, %v : memref<1x1x4x8xf32, strided<[32, 32, 8, 1], offset: 9223372036854775708>>, memref<1x1x4x8xf32>, memref<1x1x4x8xf32>) outs(%o : memref<1x1x4x8xf32>)
  return
}

// -----

// expected-error @+1 {{window_left (1099511627777) exceeds 1099511627776 (2^40); use -1 for an unbounded window}}
func.func private @attr() attributes {a = #sqa.mask<window_left = 1099511627777>}

// -----

// expected-error @+1 {{window_right (9223372036854775807) exceeds 1099511627776 (2^40); use -1 for an unbounded window}}
func.func private @attr() attributes {a = #sqa.mask<window_right = 9223372036854775807>}

// -----

// expected-error @+1 {{rope position_offset (9223372036854775807) exceeds 1099511627776 (2^40)}}
func.func private @attr() attributes {a = #sqa.rope<kind = rotary, position_offset = 9223372036854775807>}

// -----

// expected-error @+1 {{total heads (4611686018427387904) exceed the supported maximum (65536)}}
func.func private @attr() attributes {a = #sqa.heads<total = 4611686018427387904, query = 4611686018427387904, kv = 1>}

// -----

// expected-error @+1 {{preset 'mqa': total heads (131072) exceed the supported maximum (65536)}}
func.func private @attr() attributes {a = #sqa.heads<mqa, total = 131072>}

// -----

func.func @f(%x: tensor<2x8x0xf32>, %wq: tensor<0x0xf32>, %wk: tensor<0x0xf32>, %wv: tensor<0x0xf32>, %wo: tensor<0x0xf32>, %o: tensor<2x8x0xf32>) {
  // expected-error @+1 {{d_model must be positive, got 0}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x0xf32>) weights(%wq, %wk, %wv, %wo : tensor<0x0xf32>, tensor<0x0xf32>, tensor<0x0xf32>, tensor<0x0xf32>) outs(%o : tensor<2x8x0xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x0xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x131072xf32>, %wq: tensor<131072x131072xf32>, %wk: tensor<131072x131072xf32>, %wv: tensor<131072x131072xf32>, %wo: tensor<131072x131072xf32>, %o: tensor<2x8x131072xf32>) {
  // expected-error @+1 {{head dim d_model / total heads (131072) exceeds the supported maximum (65536)}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x131072xf32>) weights(%wq, %wk, %wv, %wo : tensor<131072x131072xf32>, tensor<131072x131072xf32>, tensor<131072x131072xf32>, tensor<131072x131072xf32>) outs(%o : tensor<2x8x131072xf32>) {heads = #sqa.heads<total = 1, query = 1, kv = 1>} -> tensor<2x8x131072xf32>
  return
}

// -----

func.func @f(%x: tensor<0x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<0x8x64xf32>) {
  // expected-error @+1 {{input batch size is a static 0; sizes must be positive}}
  %y = sqa.attention_layer ins(%x : tensor<0x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<0x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<0x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x0x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x0x64xf32>) {
  // expected-error @+1 {{input sequence length is a static 0; sizes must be positive}}
  %y = sqa.attention_layer ins(%x : tensor<2x0x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x0x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x0x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %o: tensor<2x8x64xf32>, %m: tensor<2x0x64xf32>) {
  // expected-error @+1 {{memory sequence length is a static 0; sizes must be positive}}
  %y = sqa.attention_layer ins(%x : tensor<2x8x64xf32>) memory(%m : tensor<2x0x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) outs(%o : tensor<2x8x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<36028797018963968x2x64xf16>, %wq: tensor<64x32xf16>, %wk: tensor<64x16xf16>, %wv: tensor<64x16xf16>, %wo: tensor<32x64xf16>, %o: tensor<36028797018963968x2x64xf16>) {
  // expected-error @+1 {{operand #0 [36028797018963968, 2, 64] is 4611686018427387904 elements of 4 bytes: the byte size overflows int64}}
  %y = sqa.attention_layer ins(%x : tensor<36028797018963968x2x64xf16>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf16>, tensor<64x16xf16>, tensor<64x16xf16>, tensor<32x64xf16>) outs(%o : tensor<36028797018963968x2x64xf16>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<36028797018963968x2x64xf16>
  return
}

// sqa.decode: one case per rule.
// -----

func.func @f(%q: memref<2x4x3x8xf64>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{element type 'f64' is not supported; expected f32, f16 or bf16}}
  sqa.decode query(%q : memref<2x4x3x8xf64>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf16>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_cache element type 'f16' must match query element type 'f32'}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf16>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{value_cache must have rank 4 [B, Hkv, C, Dv], got rank 3}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x?x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_cache heads (dim 1 of [B, Hkv, C, D]) must be static}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x?x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x70000xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{query head dim (70000) must be in [1, 65536]}}
  sqa.decode query(%q : memref<2x4x3x70000xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x0x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_new dim 2 of [B, Hkv, N, D] is a static 0; sizes must be positive}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x0x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<3x4x3x8xf32>) {
  // expected-error @+1 {{out batch size (3) must match query batch size (2)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<3x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<5xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{cache_lens batch size (5) must match query batch size (2)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<5xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2x1xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{cache_lens must have rank 1 [B], got rank 2}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2x1xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x4xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_cache head dim (4) must match query head dim (8)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x4xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x1x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{value_cache heads (1) must match key_cache heads (2)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x1x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x15x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{value_cache capacity (15) must match key_cache capacity (16)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x15x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x4x8xf32>) {
  // expected-error @+1 {{out new length (4) must match query new length (3)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x4x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x6xf32>) {
  // expected-error @+1 {{out head dim (6) must match value_cache head dim (8)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x6xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x1x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_new heads (1) must match key_cache heads (2)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x1x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x2x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{value_new new length (2) must match query new length (3)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x2x8xf32>) outs(%o : memref<2x4x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x3x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x3x3x8xf32>) {
  // expected-error @+1 {{the larger head count (3) must be a multiple of the smaller (2)}}
  sqa.decode query(%q : memref<2x3x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x3x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x2x3x8xf32>) {
  // expected-error @+1 {{out heads (2) must equal max(query heads, key/value heads) = 4}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x2x3x8xf32>)
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{scale must be finite, got INF}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>) {scale = 0x7F800000 : f32}
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{decode rows sit at the end of their cache row: a restrictive mask must have alignment = bottom_right}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>) {mask = #sqa.mask<causal = true>}
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %vn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{heads (query 4, kv 2) do not match the head configuration's (query 8, kv 2)}}
  sqa.decode query(%q : memref<2x4x3x8xf32>) cache(%kc, %vc : memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) lengths(%l : memref<2xi64>) append(%kn, %vn : memref<2x2x3x8xf32>, memref<2x2x3x8xf32>) outs(%o : memref<2x4x3x8xf32>) {heads = #sqa.heads<total = 8, query = 8, kv = 2>}
  return
}

// -----

func.func @f(%q: memref<2x4x3x8xf32>, %kc: memref<2x2x16x8xf32>, %vc: memref<2x2x16x8xf32>, %l: memref<2xi64>, %kn: memref<2x2x3x8xf32>, %o: memref<2x4x3x8xf32>) {
  // expected-error @+1 {{key_new and value_new must be given together}}
  "sqa.decode"(%q, %kc, %vc, %l, %kn, %o) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 1>}> : (memref<2x4x3x8xf32>, memref<2x2x16x8xf32>, memref<2x2x16x8xf32>, memref<2xi64>, memref<2x2x3x8xf32>, memref<2x4x3x8xf32>) -> ()
  return
}

// -----

// sqa.attention with lse; sqa.attention_backward.

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>) {
  // expected-error @+1 {{on tensors must return two results, got 1}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x8x16xf32>) -> tensor<2x8x16x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x8xf32>) {
  // expected-error @+1 {{lse must have rank 3 [B, max(Hq, Hkv), S], got rank 2}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x8xf32>) -> tensor<2x8x16x24xf32>, tensor<2x8xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf16>) {
  // expected-error @+1 {{lse element type 'f16' must be f32}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x8x16xf16>) -> tensor<2x8x16x24xf32>, tensor<2x8x16xf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x4x16xf32>) {
  // expected-error @+1 {{lse heads (4) must match init heads (8)}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x4x16xf32>) -> tensor<2x8x16x24xf32>, tensor<2x4x16xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x8x15xf32>) {
  // expected-error @+1 {{lse sequence length (15) must match init sequence length (16)}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x8x15xf32>) -> tensor<2x8x16x24xf32>, tensor<2x8x15xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<3x8x16xf32>) {
  // expected-error @+1 {{lse batch size (3) must match init batch size (2)}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<3x8x16xf32>) -> tensor<2x8x16x24xf32>, tensor<3x8x16xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>) {
  // expected-error @+1 {{lse result type 'tensor<2x8x?xf32>' must match lse init type 'tensor<2x8x16xf32>'}}
  %r:2 = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : tensor<2x8x16xf32>) -> tensor<2x8x16x24xf32>, tensor<2x8x?xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %l: memref<2x8x16xf32>) {
  // expected-error @+1 {{operands must be all ranked tensors or all ranked memrefs}}
  %r = sqa.attention ins(%q, %k, %v : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) outs(%o : tensor<2x8x16x24xf32>) lse(%l : memref<2x8x16xf32>) -> tensor<2x8x16x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{on tensors must return three results, got 1}}
  %r = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: memref<2x4x20x24xf32>) {
  // expected-error @+1 {{operands must be all ranked tensors or all ranked memrefs}}
  %r:2 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, memref<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf64>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf64>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{element type 'f64' is not supported; expected f32, f16 or bf16}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf64>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf64>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf64>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x4x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{out heads (4) must equal max(query heads, key/value heads) = 8}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x4x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x6x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x6x16x24xf32>, %g: tensor<2x6x16x24xf32>, %l: tensor<2x6x16xf32>, %dq: tensor<2x6x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{query heads (6) must be a multiple of key/value heads (4)}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x6x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x6x16x24xf32>, tensor<2x6x16x24xf32>, tensor<2x6x16xf32>) outs(%dq, %dk, %dv : tensor<2x6x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x6x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x15x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{out sequence length (15) must match query sequence length (16)}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x15x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf16>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{d_out element type 'f16' must match out element type 'f32'}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf16>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x32xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{d_out dim 3 (32) must match out dim 3 (24)}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x32xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{d_query must have the rank of query (4), got rank 3}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x21x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{d_key dim 2 (21) must match key dim 2 (20)}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x21x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x21x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xbf16>) {
  // expected-error @+1 {{d_value element type 'bf16' must match value element type 'f32'}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xbf16>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf16>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{lse element type 'f16' must be f32}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf16>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x4x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{lse heads (4) must match out heads (8)}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x4x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{result type 'tensor<2x4x?x32xf32>' must match its init type 'tensor<2x4x20x32xf32>'}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) -> tensor<2x8x16x32xf32>, tensor<2x4x?x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x16x32xf32>, %k: tensor<2x4x20x32xf32>, %v: tensor<2x4x20x24xf32>, %o: tensor<2x8x16x24xf32>, %g: tensor<2x8x16x24xf32>, %l: tensor<2x8x16xf32>, %dq: tensor<2x8x16x32xf32>, %dk: tensor<2x4x20x32xf32>, %dv: tensor<2x4x20x24xf32>) {
  // expected-error @+1 {{scale must be finite, got INF}}
  %r:3 = sqa.attention_backward ins(%q, %k, %v, %o, %g, %l : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16x24xf32>, tensor<2x8x16xf32>) outs(%dq, %dk, %dv : tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>) {scale = 0x7F800000 : f32} -> tensor<2x8x16x32xf32>, tensor<2x4x20x32xf32>, tensor<2x4x20x24xf32>
  return
}

// -----

// sqa.attention_layer_backward: the forward's rules are shared (one case
// here), then its own.

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{d_model (64) must be divisible by total heads (6)}}
  %r:5 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_out(%dy : tensor<2x8x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 6, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{d_out shape [2, 7, 64] must be [B, S, d_model] = [2, 8, 64]}}
  %r:5 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_out(%dy7 : tensor<2x7x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{d_b_q must be given exactly when b_q is}}
  %r:5 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) bias_q(%bq : tensor<32xf32>) d_out(%dy : tensor<2x8x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{d_w_k type 'tensor<64x32xf32>' must match w_k type 'tensor<64x16xf32>'}}
  %r:5 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_out(%dy : tensor<2x8x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wq, %wv, %wo : tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<32x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{expected 5 results (one per gradient), got 4}}
  %r:4 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_out(%dy : tensor<2x8x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>
  return
}

// -----

func.func @f(%x: tensor<2x8x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %bq: tensor<32xf32>, %dy: tensor<2x8x64xf32>, %dy7: tensor<2x7x64xf32>) {
  // expected-error @+1 {{result #1 type 'tensor<64x16xf32>' must match its init type 'tensor<64x32xf32>'}}
  %r:5 = sqa.attention_layer_backward ins(%x : tensor<2x8x64xf32>) weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) d_out(%dy : tensor<2x8x64xf32>) outs(%x : tensor<2x8x64xf32>) d_weights(%wq, %wk, %wv, %wo : tensor<64x32xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>) {heads = #sqa.heads<total = 4, query = 2, kv = 1>} -> tensor<2x8x64xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<64x16xf32>, tensor<32x64xf32>
  return
}

// -----

// sqa.attention_layer_decode and sqa.attention_layer_kv.

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{b_k and b_v need kv_weights (without them the caches already hold keys and values)}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) bias_k(%b : tensor<16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x4x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{key_cache shape [2, 4, 9, 8] must be [B, Hkv, C, dh] = [2, 2, ?, 8]}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x4x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x?x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{key_cache heads and head dim must be static}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x?x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<3xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{cache_lens shape [3] must be [B] = [2]}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<3xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x4x64xf32>) {
  // expected-error @+1 {{init shape [2, 4, 64] must be [B, N, d_model] = [2, 3, 64]}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x4x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x4x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{result type 'tensor<2x3x64xf16>' must match init type 'tensor<2x3x64xf32>'}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf16>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{RoPE needs kv_weights: a cross-attention decode step has no query positions}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>, rope = #sqa.rope<kind = rotary>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{rope queries_only is for cross-attention}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>, rope = #sqa.rope<kind = rotary, queries_only = true>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{decode rows sit at the end of their cache row: a restrictive mask must have alignment = bottom_right}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf32>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>, mask = #sqa.mask<causal = true>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf16>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{operand #5 element type 'f16' must match input element type 'f32'}}
  %y = sqa.attention_layer_decode ins(%x : tensor<2x3x64xf32>) weights(%wq, %wo : tensor<64x32xf32>, tensor<32x64xf32>) kv_weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) cache(%kc, %vc : memref<2x2x9x8xf16>, memref<2x2x9x8xf32>) lengths(%l : memref<2xi64>) outs(%o : tensor<2x3x64xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<2x3x64xf32>, %wq: tensor<64x32xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %wo: tensor<32x64xf32>, %b: tensor<16xf32>, %kc: memref<2x2x9x8xf32>, %vc: memref<2x2x9x8xf32>, %l: memref<2xi64>, %o: tensor<2x3x64xf32>) {
  // expected-error @+1 {{w_k and w_v must be given together}}
  %y = "sqa.attention_layer_decode"(%x, %wq, %wo, %wk, %kc, %vc, %l, %o) <{heads = #sqa.heads<total = 8, query = 4, kv = 2>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1>}> : (tensor<2x3x64xf32>, tensor<64x32xf32>, tensor<32x64xf32>, tensor<64x16xf32>, memref<2x2x9x8xf32>, memref<2x2x9x8xf32>, memref<2xi64>, tensor<2x3x64xf32>) -> tensor<2x3x64xf32>
  return
}

// -----

func.func @f(%m: tensor<2x5x64xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %ki: tensor<2x2x5x8xf32>, %vi: tensor<2x2x4x8xf32>) {
  // expected-error @+1 {{value_init shape [2, 2, 4, 8] must be [B, Hkv, T, dh] = [2, 2, 5, 8]}}
  %k, %v = sqa.attention_layer_kv ins(%m : tensor<2x5x64xf32>) weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) outs(%ki, %vi : tensor<2x2x5x8xf32>, tensor<2x2x4x8xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x2x5x8xf32>, tensor<2x2x4x8xf32>
  return
}

// -----

func.func @f(%m: tensor<2x5x64xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %ki: tensor<2x2x5x8xf32>, %vi: tensor<2x2x5x8xf32>) {
  // expected-error @+1 {{key_init and its result must have one type}}
  %k, %v = sqa.attention_layer_kv ins(%m : tensor<2x5x64xf32>) weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) outs(%ki, %vi : tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x2x?x8xf32>, tensor<2x2x5x8xf32>
  return
}

// -----

func.func @f(%m: tensor<2x0x64xf32>, %wk: tensor<64x16xf32>, %wv: tensor<64x16xf32>, %ki: tensor<2x2x0x8xf32>, %vi: tensor<2x2x0x8xf32>) {
  // expected-error @+1 {{memory sequence length is a static 0; sizes must be positive}}
  %k, %v = sqa.attention_layer_kv ins(%m : tensor<2x0x64xf32>) weights(%wk, %wv : tensor<64x16xf32>, tensor<64x16xf32>) outs(%ki, %vi : tensor<2x2x0x8xf32>, tensor<2x2x0x8xf32>) {heads = #sqa.heads<total = 8, query = 4, kv = 2>} -> tensor<2x2x0x8xf32>, tensor<2x2x0x8xf32>
  return
}
