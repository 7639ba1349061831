//===- Passes.td - SQA transformation passes ---------------*- tablegen -*-===//

#ifndef SQA_TRANSFORMS_PASSES_TD
#define SQA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerAttentionReference : Pass<"sqa-lower-attention-reference"> {
  let summary = "Lower sqa.attention to naive linalg on tensors (the oracle)";
  let description = [{
    Rewrites every `sqa.attention` into `linalg.generic` ops on tensors that
    materialize the scores `[B, Hkv, G, S, T]` in f32: Q.K^T * scale, the
    mask as -inf, a row max, exp, a row sum and P.V, then one normalization
    and one rounding to the element type. Grouped heads are a reshape of the
    query (or, for reverse SQA, of key and value) into `[B, Hkv, G, ...]`
    and an indexing map that omits `G` on the other side: K and V are never
    repeated. A query row that sees no key yields 0, never NaN.

    This is the in-compiler oracle for the tiled kernels, not a fast path:
    it needs O(B * H * S * T) memory.

    `sqa.attention ... lse(...)` also writes each row's logsumexp.
    `sqa.attention_backward` becomes the same scores, the probabilities
    recomputed from lse, `Delta = rowsum(d_out * out)`, `dP = d_out.v^T`,
    `dS = P * (dP - Delta)` and the three gradient contractions, each
    reducing over the group dim of the grouped side (no expanded K/V).
    `backward-only` leaves `sqa.attention` alone (for pipelines whose
    forward is tiled).
  }];
  let options = [
    Option<"backwardOnly", "backward-only", "bool", /*default=*/"false",
           "Lower only sqa.attention_backward ops">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def DecomposeAttentionLayer : Pass<"sqa-decompose-attention-layer"> {
  let summary = "Decompose sqa.attention_layer (backward, decode step, memory "
                "K/V) into matmuls, RoPE and sqa.attention / sqa.decode";
  let description = [{
    Rewrites every `sqa.attention_layer` into:

    * one `linalg.matmul` per projection (f32 accumulation) on the
      flattened `[B*S, d_model]` input, K and V from the memory operand for
      cross-attention;
    * one `linalg.generic` epilogue per projection that adds the bias,
      splits heads into BHSD, applies RoPE (rotate-half pairs read through
      two indexing maps into the same projection) and rounds to the element
      type: bias, head split and RoPE cost one pass over q/k/v;
    * `sqa.attention` on the heads (K/V never repeated);
    * a head-merging `linalg.generic`, the output `linalg.matmul`, and an
      epilogue adding `b_o` and rounding into the destination.

    Every `sqa.attention_layer_backward` becomes the same forward (with
    `lse`), `sqa.attention_backward`, head merges with RoPE's transpose, and
    the gradient GEMMs: dX as projections against transposed weights, dW
    and db as linalg reductions over batch and positions.

    `sqa.attention_layer_decode` becomes the same projections and epilogues
    (RoPE at each row's `cache_lens[b] + i`) around an `sqa.decode` on
    buffers, and `sqa.attention_layer_kv` the key/value projections: the
    layer builder's one projection and one RoPE rotation serve every op.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def LowerProjections : Pass<"sqa-lower-projections"> {
  let summary = "Lower projection batch-matmuls to parallel vector GEMM loops";
  let description = [{
    Rewrites buffer-form `linalg.batch_matmul` ops whose right operand is a
    shared weight `[K, N]` (the layer projections from
    `sqa-decompose-attention-layer`) with an f32 accumulator into a
    cache-blocked GEMM: `kc` x `nc` weight blocks, an `scf.forall` over row
    blocks of the flattened `[B*L, K]` input (OpenMP threads after the CPU
    pipeline), and `mr` x `nr` broadcast-FMA register tiles. Other matmuls,
    and those whose N is not a multiple of the vector width, are left alone.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector">,
    Option<"rowsPerKernel", "mr", "int64_t", /*default=*/"6",
           "Rows per micro-kernel">,
    Option<"vectorsPerKernel", "nr", "int64_t", /*default=*/"2",
           "Vectors per row per micro-kernel">,
    Option<"kBlock", "kc", "int64_t", /*default=*/"256",
           "Reduction block (weight rows per cache block)">,
    Option<"nBlock", "nc", "int64_t", /*default=*/"256",
           "Column block (weight columns per cache block)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def DynamicOpenMPSchedule : Pass<"sqa-dynamic-omp-schedule"> {
  let summary = "Give every omp.wsloop a dynamic schedule";
  let description = [{
    `convert-scf-to-openmp` leaves the default static schedule, which hands
    each thread a contiguous range of tiles. Causal and windowed tiles do
    unequal work (the last query block of a head sees S keys, the first
    one a block), so contiguous ranges leave threads idle; a dynamic
    schedule hands out tiles one at a time.
  }];
  let dependentDialects = ["::mlir::omp::OpenMPDialect"];
}

def TileAttention : Pass<"sqa-tile-attention"> {
  let summary = "Tile sqa.attention over batch, head groups and query rows";
  let description = [{
    Tiles every tensor `sqa.attention` through its TilingInterface with
    upstream SCF tiling into an `scf.forall` over (batch, heads, query
    blocks). A head tile covers query heads of one key/value head's group
    (as many as keep the tile within 256 rows; for reverse SQA one output
    head), so the tile reads each key/value block once for all of them. Each tile is again
    an `sqa.attention` whose `diagonal_offset` keeps the global mask.
  }];
  let options = [
    Option<"queryTile", "query-tile", "int64_t", /*default=*/"64",
           "Query rows per tile">,
    Option<"headTile", "head-tile", "int64_t", /*default=*/"0",
           "Output heads per tile; 0 picks the largest divisor of the "
           "group size that keeps a tile within 256 rows (1 for reverse "
           "SQA). Must be a multiple or divisor of the group size">
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def LowerFlashAttentionBackward : Pass<"sqa-lower-flash-attention-backward"> {
  let summary = "Lower memref sqa.attention_backward to FlashAttention-2's "
                "backward on threads";
  let description = [{
    Rewrites every buffer-form `sqa.attention_backward` into three
    `scf.forall` loops (OpenMP after `convert-scf-to-openmp`), with no
    S x T buffer:

    1. Delta = rowsum(d_out * out) per (batch, output head).
    2. dK and dV per (batch, kv head, key block): the block's K and V are
       packed once (f32, keys along vector lanes); for every output head of
       the kv head, the rows that see the block are taken in tiles of
       `query-block` rows: P = exp(s - lse) and dS = P * (dP - Delta) from
       register-tiled q . K^T and d_out . V^T kernels, then dV += P^T d_out
       and dK += dS^T q on register tiles (mr keys x nr vectors) held over
       the tile's rows. K/V/dK/dV are never expanded per query head.
    3. dQ per (batch, query head, query tile): P and dS recomputed against
       every visible key block with rows along lanes (q and d_out
       transposed once per tile, k and v read in place), dQ += dS K
       (reverse SQA: summed over the query head's kv heads).

    Each output element is written by one iteration, summing in a fixed
    order: the result is bitwise identical for any number of threads.
    Extra memory: O(B * H * S) for Delta plus O(threads * (query-block +
    D + Dv) * kv-block).
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector (keys along lanes)">,
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per block; a multiple of vector-width">,
    Option<"queryBlock", "query-block", "int64_t", /*default=*/"64",
           "Query rows per tile (and per dQ task)">,
    Option<"rowsPerKernel", "mr", "int64_t", /*default=*/"4",
           "Rows (or keys) per register tile">,
    Option<"vectorsPerKernel", "nr", "int64_t", /*default=*/"2",
           "Lane vectors per register tile">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def LowerFlashAttention : Pass<"sqa-lower-flash-attention"> {
  let summary = "Lower memref sqa.attention to FlashAttention-2 vector loops";
  let description = [{
    Rewrites every buffer-form `sqa.attention` (typically one tile from
    `sqa-tile-attention`) into FlashAttention-2's online softmax over
    key/value blocks, with register-blocked vector micro-kernels. Query rows
    run along vector lanes in every scratch buffer (Q^T, S^T = P^T, O^T):

    * The query heads that share a key/value head are stacked into one
      block of M rows, so each key/value block is read once for every head
      of the group.
    * Q.K^T: `mr` keys x `nr` row vectors of f32 accumulators, reduction
      over D; keys are broadcast scalars read from K in place (no packing,
      no transpose for f32; f16/bf16 blocks are converted to f32 once per
      block).
    * Online softmax in f32, base 2 (Q pre-scaled by log2 e), on
      `vector-width` rows at a time: row max, sum and rescale factor are
      vectors, so there is no horizontal reduction; exp2 is a short
      polynomial.
    * P.V: `mr` value columns x `nr` row vectors of the output accumulator;
      its rescale is skipped when no row of the tile changed its max.
    * Causal and window masks: key blocks outside every row's range are not
      visited; only blocks that cross a bound are masked element-wise.

    Extra memory is O(M * (D + Dv + kv-block)) per op, never S x T.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector: 8 for AVX2, 16 for AVX-512">,
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per block; a multiple of mr and of 4">,
    Option<"rowsPerKernel", "mr", "int64_t", /*default=*/"4",
           "Keys (Q.K^T) and value columns (P.V) per micro-kernel">,
    Option<"vectorsPerKernel", "nr", "int64_t", /*default=*/"2",
           "Vectors of query rows per micro-kernel">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "bf16 q, k and v: Q.K^T and P.V as AVX-512 BF16 pair dot "
           "products (x86vector.avx512.dot, vdpbf16ps) with f32 "
           "accumulation, P rounded to bf16; needs vector-width 16 and an "
           "even head dim, else the f32 kernels are used">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect"
  ];
}

def LowerAttentionToGPU : Pass<"sqa-lower-attention-to-gpu",
                               "::mlir::ModuleOp"> {
  let summary = "Lower memref sqa.attention to a CUDA flash-attention kernel "
                "and its launch";
  let description = [{
    Rewrites every buffer-form `sqa.attention` into a `gpu.launch_func` of a
    FlashAttention-2 kernel generated into the `gpu.module @sqa_kernels`
    (created on demand; the module gets `gpu.container_module`).

    The op's iteration space (batch, output heads, query rows) maps to the
    grid: x = query blocks x batch, y = head blocks, with 128 threads (4
    warps) per block. f16 and bf16 use tensor cores (sm_80 and later):

    * A block stacks `heads-per-block` output heads that share one
      key/value head (GQA by index mapping, K/V never repeated), 16 or 32
      (`rows-per-warp`) query rows per warp: 64 or 128 stacked rows.
    * Q and double-buffered `kv-block`-key K/V tiles are staged in dynamic
      shared memory with `nvgpu.device_async_copy` (cp.async, zero fill
      past the sequence ends), rows padded by 16 bytes against bank
      conflicts.
    * Q.K^T and P.V are `m16n8k16` tensor-core MMAs on fragments loaded
      with `nvgpu.ldmatrix` (`.trans` for V); f16 uses `nvgpu.mma.sync`,
      bf16 `nvvm.mma.sync` (MLIR 22's nvgpu-to-nvvm cannot type bf16 MMAs).
      P stays in registers: the score accumulators are the A fragments.
    * Online softmax in f32 registers with exp2 (ex2.approx), row
      reductions by warp shuffles within each quad.
    * Causal and window masks skip key blocks outside the block's rows and
      mask only blocks that cross a bound; rows that see no key write 0.

    f32 takes a SIMT path: one query row per thread, K/V tiles in shared
    memory, per-key online softmax.

    The kernel takes each operand as a 1-D memref plus strides, so any
    strided layout (BHSD, BSHD) works; the innermost stride must be 1.
    Kernels follow the calling convention of
    `include/sqa/Transforms/GPUKernelABI.def` and carry their launch geometry
    as `sqa.gpu_launch = #sqa.gpu_launch<...>` for launchers outside MLIR
    (sqa-aot).
  }];
  let options = [
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per shared-memory tile (a multiple of 16)">,
    Option<"headsPerBlock", "heads-per-block", "int64_t", /*default=*/"0",
           "Output heads stacked in one thread block (1, 2 or 4, dividing "
           "the heads per key/value head); 0 picks the largest">,
    Option<"rowsPerWarp", "rows-per-warp", "int64_t", /*default=*/"16",
           "Query rows per warp on tensor cores: 16 (Q fragments stay in "
           "registers) or 32 (each K/V fragment feeds two row tiles; Q is "
           "re-read from shared memory)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def LowerDecodeToGPU : Pass<"sqa-lower-decode-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower sqa.decode to split-KV CUDA kernels and their launches";
  let description = [{
    Rewrites every `sqa.decode` into `gpu.launch_func`s of SIMT kernels
    generated into `gpu.module @sqa_kernels` (decode is bandwidth bound):

    1. `append` (with new tokens): copies key_new/value_new into the caches.
    2. `split`: a block per (batch row, split of `split-keys` cache
       positions, kv head, chunk of `rows-per-block` stacked query rows of
       the kv head's group x new_len): K/V tiles of `kv-block` keys are
       staged in shared memory with 16-byte loads and read once for all the
       chunk's rows; online softmax per row (base 2); the partial max, sum
       and accumulator of each row go to an f32 scratch buffer.
    3. `merge`: per (batch row, kv head, chunk), partials merged in split
       order (`OnlineSoftmax::merge`), normalized and stored.

    Splits are fixed ranges of the capacity: deterministic. A row whose
    device-side lengths are out of range (`lengthsInRange`) is not appended
    or read; its output is NaN. Parameters follow the decode lists of
    `include/sqa/Transforms/GPUKernelABI.def`; each kernel carries
    `sqa.gpu_launch` and `sqa.gpu_decode_stage`.
  }];
  let options = [
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"32",
           "Keys per shared-memory tile">,
    Option<"splitKeys", "split-keys", "int64_t", /*default=*/"256",
           "Cache positions per split (a multiple of kv-block)">,
    Option<"rowsPerBlock", "rows-per-block", "int64_t", /*default=*/"16",
           "Stacked query rows (group heads x new_len) per thread block">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def LowerAttentionBackwardToGPU : Pass<"sqa-lower-attention-backward-to-gpu",
                                       "::mlir::ModuleOp"> {
  let summary = "Lower memref sqa.attention_backward to CUDA dK/dV and dQ "
                "kernels and their launches";
  let description = [{
    Rewrites every buffer-form `sqa.attention_backward` into two
    `gpu.launch_func`s of SIMT kernels (FlashAttention-2's structure, no
    atomics: deterministic), 128 threads per block, f32 arithmetic:

    1. `dkdv`: a block per (batch, kv head, 128 keys), a thread per key; it
       loops over the kv head's output heads (grouped heads reduced, never
       expanded) and the query tiles of `tile` rows whose key-block range
       (`keyBlockRange`) holds its keys; Q, dO, lse and Delta of a tile are
       staged in shared memory; P is recomputed from lse.
    2. `dq`: a block per (batch, query head, 128 query rows), a thread per
       row, looping over the query head's output heads (several for reverse
       SQA) and their key blocks of `tile` keys (K, V in shared memory).

    Delta = rowsum(dO * O) is recomputed per staged row (Dv multiply-adds)
    instead of by a preprocess kernel: no scratch buffer, no extra launch.
    Parameters follow the training list of
    `include/sqa/Transforms/GPUKernelABI.def`; each kernel carries
    `sqa.gpu_launch` and `sqa.gpu_training_stage`. Compiles; measured only
    on the CPU emulator.

    With `tensor-cores` (default), f16/bf16 with head dims that are
    multiples of 16 and at most 128 take mma.sync kernels instead
    (TensorCoreBackward.cpp): the same two kernels with 64 keys (dK/dV) or
    rows (dQ) per block of 4 warps, tiles of 32 rows/keys, the five GEMMs
    on m16n8k16 with f32 accumulation, P and dS rounded to the element type
    as MMA operands. Compiles; run only on the CPU emulator.
  }];
  let options = [
    Option<"tile", "tile", "int64_t", /*default=*/"32",
           "Rows per shared-memory tile: query rows (dK/dV kernel), keys "
           "(dQ kernel)">,
    Option<"tensorCores", "tensor-cores", "bool", /*default=*/"true",
           "mma.sync kernels for f16/bf16 with head dims that are multiples "
           "of 16, at most 128 (others take the SIMT kernels)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def LowerDecodeReference : Pass<"sqa-lower-decode-reference"> {
  let summary = "Lower sqa.decode to naive scalar loops (the oracle)";
  let description = [{
    Rewrites every `sqa.decode` into the append copy (when it has new
    tokens) and, per batch row, output head and query row, three plain
    loops over the row's valid keys: the maximum of the visible scores, the
    sum of exp(score - max) with the accumulation of P.V, and the
    normalization. Scalar f32 and `math.exp`; sequential. The oracle the
    split-KV kernel is checked against, not a fast path.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def LowerDecodeSplitKV : Pass<"sqa-lower-decode-split-kv"> {
  let summary = "Lower sqa.decode to a parallel split-KV CPU kernel";
  let description = [{
    Rewrites every `sqa.decode` into three phases:

    1. The new tokens are copied into the caches (when given).
    2. `scf.forall` over work items (kv head, split): each batch row's
       visible key blocks (`keyBlockRange`) are cut into splits of the same
       number of blocks, so a row costs splits in proportion to its own
       length (no padding to the longest row). The split size is computed
       per call from the lengths: the smallest that keeps the items near 64
       over all kv heads, at least one block, at most `split-keys` keys, so
       B = 1 with a short cache still has items for every core. An item
       stacks the rows of every query head of
       its kv head's group (x new_len) and streams its keys once, in blocks
       of `kv-block`: vector dot products along the head dim, the block's
       online softmax with keys along lanes (base 2, the shared polynomial
       exp2), P.V into an f32 accumulator along the value dim. It leaves
       the partial max, sum and accumulator of each row.
    3. `scf.forall` over (batch, kv head): the partials of each row are
       merged in split order (`OnlineSoftmax::merge`), normalized, rounded
       and stored.

    Split boundaries depend only on the cache lengths and the options,
    never on the thread count, and each partial is computed by one thread:
    the result is bitwise identical for any OMP_NUM_THREADS.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "Largest f32 vector (lanes); the kernel uses the largest power "
           "of two <= it that divides both head dims">,
    Option<"kvBlock", "kv-block", "int64_t", /*default=*/"64",
           "Keys per softmax block; a multiple of 4">,
    Option<"splitKeys", "split-keys", "int64_t", /*default=*/"512",
           "Most keys per work item; a multiple of kv-block">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // SQA_TRANSFORMS_PASSES_TD
