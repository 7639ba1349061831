// RUN: sqa-opt %s -sqa-lower-attention-to-gpu -verify-diagnostics

// The GPU kernels do not write the logsumexp yet: a clear error, not a
// kernel that leaves lse unwritten.
func.func @lse(%q: memref<?x4x?x64xf16>, %k: memref<?x2x?x64xf16>, %v: memref<?x2x?x64xf16>,
               %o: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>) {
  // expected-error @+1 {{the GPU kernels do not write lse yet (CPU only)}}
  sqa.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>)
                outs(%o : memref<?x4x?x64xf16>) lse(%l : memref<?x4x?xf32>)
  return
}
