// RUN: sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu | FileCheck %s
// RUN: sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="heads-per-block=1 kv-block=32" | FileCheck %s --check-prefix=OPTS
// RUN: sqa-opt %s -split-input-file -sqa-lower-attention-to-gpu="rows-per-warp=32" | FileCheck %s --check-prefix=ROWS32

// GQA (8 query heads over 4 kv heads), f16, causal bottom-right.
// CHECK: module attributes {gpu.container_module}
// CHECK-LABEL: func @gqa_f16
// The diagonal offset T - S, the flat operands and their strides go to the
// kernel; the grid is (query blocks x batch, head blocks).
// CHECK: memref.reinterpret_cast %{{.+}} to offset: [%{{.+}}], sizes: [%{{.+}}], strides: [1] : memref<f16> to memref<?xf16, strided<[1], offset: ?>>
// CHECK: %[[S:.+]] = memref.dim %{{.+}}, %c2{{.*}} : memref<?x8x?x64xf16>
// CHECK: %[[T:.+]] = memref.dim %{{.+}}, %c2{{.*}} : memref<?x4x?x64xf16>
// CHECK: %[[DIAG:.+]] = arith.subi
// CHECK: scf.if
// CHECK: gpu.launch_func @sqa_kernels::@gqa_f16_attention blocks in (%{{.+}}, %c4, %c1{{.*}}) threads in (%c128, %c1{{.*}}, %c1{{.*}}) dynamic_shared_memory_size %c46080_i32 args({{.*}}, %[[S]] : index, %[[T]] : index, %[[DIAG]] : index
// Two heads of a group per block (16 rows per warp, 32 rows per head).
// CHECK: gpu.module @sqa_kernels
// CHECK: gpu.func @gqa_f16_attention(%{{.+}}: memref<?xf16, strided<[1], offset: ?>>, {{.*}}) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 2 : i32, sqa.gpu_launch = #sqa.gpu_launch<threads = 128, rows_per_block = 32, heads_per_block = 2, output_heads = {{[0-9]+}}, shared_memory_bytes = 46080>}
// CHECK: gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// Q and the first K/V tiles: 16-byte cp.async with zero fill past the end.
// CHECK: nvgpu.device_async_copy %{{.+}}[%{{.+}}], %{{.+}}[%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1} : memref<?xf16, strided<[1], offset: ?>> to memref<64x72xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 0 : i32}
// CHECK: gpu.barrier
// Q fragments: 4 ldmatrix.x4 over D = 64.
// CHECK-COUNT-4: nvgpu.ldmatrix %{{.+}} {numTiles = 4 : i32, transpose = false} : memref<64x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// The key-block loop carries 8 output tiles x 4 values, row max and sum.
// CHECK: scf.for {{.+}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// Prefetch of the next block into the other stage, then wait for this one.
// CHECK: scf.if
// CHECK: nvgpu.device_async_copy
// CHECK: nvgpu.device_async_wait %{{.+}} {numGroups = 1 : i32}
// CHECK: gpu.barrier
// S = Q.K^T on tensor cores.
// CHECK: nvgpu.ldmatrix {{.+}}transpose = false{{.+}} : memref<64x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.mma.sync(%{{.+}}, %{{.+}}, %{{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// Masks only on boundary blocks.
// CHECK: scf.if %{{.+}} -> (f32
// CHECK: arith.select
// Row max across the quad, exp2 with the approximate instruction.
// CHECK: gpu.shuffle xor %{{.+}}, %c1_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK: gpu.shuffle xor %{{.+}}, %c2_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// P stays in registers, rounded to f16, and V is read transposed.
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xf16>
// CHECK: nvgpu.ldmatrix {{.+}}transpose = true{{.+}} -> vector<4x2xf16>
// CHECK: nvgpu.mma.sync
// CHECK: gpu.barrier
// CHECK: scf.yield
// Normalized rows below S are stored as f16 pairs.
// CHECK: vector.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<?xf16, strided<[1], offset: ?>>, vector<2xf16>
// CHECK: gpu.return

// OPTS-LABEL: func @gqa_f16
// OPTS: dynamic_shared_memory_size %c27648_i32
// OPTS: #sqa.gpu_launch<threads = 128, rows_per_block = 64, heads_per_block = 1, output_heads = {{[0-9]+}}, shared_memory_bytes = 27648>
// 32 rows per warp: 128 stacked rows, Q re-read from shared memory inside
// the key loop, each K fragment feeding two MMAs per row tile pair.
// ROWS32-LABEL: func @gqa_f16
// ROWS32: #sqa.gpu_launch<threads = 128, rows_per_block = 64, heads_per_block = 2, output_heads = {{[0-9]+}}, shared_memory_bytes = 55296>
// ROWS32: scf.for
// ROWS32: scf.for
// ROWS32: nvgpu.ldmatrix {{.+}} : memref<128x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
func.func @gqa_f16(%q: memref<?x8x?x64xf16>, %k: memref<?x4x?x64xf16>,
                   %v: memref<?x4x?x64xf16>, %o: memref<?x8x?x64xf16>) {
  sqa.attention ins(%q, %k, %v : memref<?x8x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>)
      outs(%o : memref<?x8x?x64xf16>)
      {mask = #sqa.mask<causal = true, alignment = bottom_right, window_left = -1, window_right = -1>}
  return
}

// -----

// bf16 MMAs are NVVM ops on i32 pairs (nvgpu-to-nvvm cannot type them).
// CHECK-LABEL: func @mha_bf16
// CHECK: gpu.func @mha_bf16_attention
// CHECK: nvgpu.ldmatrix {{.+}} -> vector<4x2xbf16>
// CHECK: vector.bitcast %{{.+}} : vector<2xbf16> to vector<1xi32>
// CHECK: nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: nvgpu.mma.sync
func.func @mha_bf16(%q: memref<2x4x128x128xbf16>, %k: memref<2x4x256x128xbf16>,
                    %v: memref<2x4x256x128xbf16>, %o: memref<2x4x128x128xbf16>) {
  sqa.attention ins(%q, %k, %v : memref<2x4x128x128xbf16>, memref<2x4x256x128xbf16>, memref<2x4x256x128xbf16>)
      outs(%o : memref<2x4x128x128xbf16>)
  return
}

// -----

// f32 takes the SIMT path: a row per thread, K/V tiles in shared memory.
// CHECK-LABEL: func @simt_f32
// CHECK: gpu.func @simt_f32_attention{{.+}}#sqa.gpu_launch<threads = 128, rows_per_block = 128, heads_per_block = 1, output_heads = {{[0-9]+}}, shared_memory_bytes = 16384>
// CHECK-NOT: nvgpu
// CHECK: memref.view {{.+}} to memref<64x40xf32, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<64x24xf32, #gpu.address_space<workgroup>>
// CHECK: memref.alloca() : memref<40xf32>
// CHECK: memref.alloca() : memref<24xf32>
// CHECK: arith.mulf %{{.+}}, %{{.+}} fastmath<contract> : f32
func.func @simt_f32(%q: memref<?x4x?x40xf32>, %k: memref<?x2x?x40xf32>,
                    %v: memref<?x2x?x24xf32>, %o: memref<?x4x?x24xf32>) {
  sqa.attention ins(%q, %k, %v : memref<?x4x?x40xf32>, memref<?x2x?x40xf32>, memref<?x2x?x24xf32>)
      outs(%o : memref<?x4x?x24xf32>)
  return
}

// -----

// BSHD views (transposed strides) are fine: strides travel at run time.
// CHECK-LABEL: func @bshd
// CHECK: memref.extract_strided_metadata %{{.+}} : memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>
// CHECK: gpu.launch_func
func.func @bshd(%q: memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>,
                %k: memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>,
                %v: memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>,
                %o: memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>) {
  sqa.attention ins(%q, %k, %v : memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>, memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>, memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>)
      outs(%o : memref<?x4x?x64xf16, strided<[?, 64, 256, 1]>>)
  return
}
