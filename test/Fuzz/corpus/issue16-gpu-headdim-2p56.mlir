// FUZZ-ARGS: --sqa-lower-attention-to-gpu
// Issue 16: D >= 2^56 overflowed KernelSpec::sharedMemoryBytes and ran for
// ever.
func.func @f(%q: memref<1x1x?x72057594037927936xf16>, %k: memref<1x1x?x72057594037927936xf16>, %v: memref<1x1x?x16xf16>, %o: memref<1x1x?x16xf16>) {
  sqa.attention ins(%q, %k, %v : memref<1x1x?x72057594037927936xf16>, memref<1x1x?x72057594037927936xf16>, memref<1x1x?x16xf16>) outs(%o : memref<1x1x?x16xf16>)
  return
}
