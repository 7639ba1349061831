//===- AttentionLibrary.h - Ahead-of-time attention libraries ---*- C++ -*-===//
//
// The compiler driver behind sqa-aot, as a library: a head configuration
// becomes an MLIR module, the CPU pipeline takes it to LLVM IR, LLVM's
// TargetMachine makes an object for a host or named CPU, and clang/lld link
// it with a small generated C entry layer into a shared library whose C
// header is generated alongside.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_AOT_ATTENTIONLIBRARY_H
#define SQA_AOT_ATTENTIONLIBRARY_H

#include "SQA/IR/SQAAttrs.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <optional>
#include <string>

namespace mlir::sqa::aot {

/// Limits on what sqa-aot compiles, within the dialect's (SQAAttrs.h, which
/// the sqa.attention verifier enforces): head counts (total, query,
/// key/value) also fit a CUDA grid, which walks output heads in gridDim.y
/// (at most 65535); head dims are the dialect's kMaxHeadDim.
constexpr int64_t kMaxLibraryHeads = std::min<int64_t>(kMaxHeads, 65535);
/// CPU kernel knobs: query rows per parallel tile and keys per block; rows
/// and vectors of the micro-kernel (past these it only spills registers).
constexpr int64_t kMaxCPUTile = 65536;
constexpr int64_t kMaxCPUMicroKernelRows = 16;
constexpr int64_t kMaxCPUMicroKernelVectors = 8;
/// Keys per shared-memory tile of a CUDA kernel.
constexpr int64_t kMaxGPUKVBlock = 1024;
/// Model layers counted by --print-config.
constexpr int64_t kMaxLayers = 1 << 20;

enum class ElementKind { F32, F16, BF16 };
/// BHSD: [B, H, S, D] contiguous; BSHD: [B, S, H, D] (FlashAttention's).
enum class Layout { BHSD, BSHD };
/// Where the library's kernel runs.
enum class Target { CPU, CUDA };

/// Everything a generated attention library is specialized on.
struct AttentionConfig {
  /// Preset name the configuration came from, for reporting; empty if the
  /// heads were given explicitly.
  std::string variant;
  HeadCounts heads;
  int64_t headDim = 0;
  int64_t valueHeadDim = 0;
  ElementKind elementKind = ElementKind::F32;
  Layout layout = Layout::BHSD;
  bool causal = false;
  MaskAlignment alignment = MaskAlignment::TopLeft;
  int64_t windowLeft = -1;
  int64_t windowRight = -1;
  std::optional<float> scale;
  /// Prefix of every exported symbol; a C identifier.
  std::string name = "sqa_attention";
  Target target = Target::CPU;
  /// GPU architecture of a CUDA library's cubin (sm_80 or later).
  std::string chip = "sm_90";

  /// A whole attention layer (projections, RoPE, attention, output
  /// projection) instead of the attention core alone; d_model is
  /// heads.total * headDim.
  struct Layer {
    bool crossAttention = false;
    std::optional<RopeKind> rope;
    double ropeBase = 10000.0;
    double ropeFactor = 1.0;
    int64_t ropeOriginalMaxPositions = 2048;
    int64_t ropePositionOffset = 0;
    bool ropeQueriesOnly = false;
    bool biasQ = false, biasK = false, biasV = false, biasO = false;
  };
  std::optional<Layer> layer;
  int64_t modelDim() const { return heads.total * headDim; }

  int64_t outputHeads() const { return std::max(heads.query, heads.kv); }
  float effectiveScale() const;
  /// Checks the configuration; returns a message naming the bad value, or an
  /// empty string.
  std::string validate() const;
  /// One-line description, also returned by the library's `_config()`.
  std::string describe() const;
};

StringRef stringifyElementKind(ElementKind kind);
std::optional<ElementKind> parseElementKind(StringRef text);

/// What the driver stops at.
/// PTX and Cubin are for CUDA; LLVMIR, Assembly and Object for the CPU.
enum class EmitKind {
  MLIR,
  LLVMIR,
  Assembly,
  Object,
  PTX,
  Cubin,
  SharedLibrary
};

struct CodegenOptions {
  /// "all": one library with kernels for the avx512bf16, avx512 and avx2
  /// levels, chosen at the first call by CPUID; one level's name; "native"
  /// for the host CPU (with its features); or an LLVM CPU name.
  std::string cpu = "all";
  EmitKind emit = EmitKind::SharedLibrary;
  /// "flash" (tiled, vectorized, multi-threaded) or "reference" (the naive
  /// oracle, single-threaded, S x T memory).
  std::string attentionKernel = "flash";
  /// clang used to compile the C entry layer and link the library; found
  /// next to LLVM's tools or on PATH when empty.
  std::string clang;
  /// CUDA toolkit whose ptxas makes cubins; PATH, then /usr/local/cuda when
  /// empty.
  std::string cudaToolkit;
  /// CUDA kernel tiling (sqa-lower-attention-to-gpu's kv-block and
  /// heads-per-block; 0 heads per block picks the largest that fits).
  int64_t gpuKVBlock = 64;
  int64_t gpuHeadsPerBlock = 0;
  int64_t gpuRowsPerWarp = 16;
  /// f16/bf16 backward on mma.sync where the head dims allow
  /// (sqa-lower-attention-backward-to-gpu's tensor-cores).
  bool gpuBackwardTensorCores = true;
  /// CPU flash kernel tiling (sqa-cpu-pipeline's query-tile, kv-block, mr,
  /// nr and vector-width); the pipeline's defaults when not set, and the
  /// target's vector width (16 with AVX-512, else 8).
  std::optional<int64_t> cpuQueryTile, cpuKVBlock, cpuMR, cpuNR, cpuVectorWidth;
};

/// Builds the kernel module for `config`: one function `<name>_kernel` over
/// memrefs in the configured layout.
OwningOpRef<ModuleOp> buildAttentionModule(MLIRContext &context,
                                           const AttentionConfig &config);

/// The CUDA architectures a library can be built for: those the kernels'
/// PTX ISA (8.0) can target.
ArrayRef<StringRef> supportedChips();

/// The generated C header and the C entry layer (argument checks, memref
/// descriptors, error strings) of a library for `config`.
std::string generateHeader(const AttentionConfig &config);
std::string generateEntryLayer(const AttentionConfig &config);

/// Lowers `module` and writes the requested artifact to `outputPath`. For a
/// shared library built from a configuration, `config` supplies the C entry
/// layer; without it (a user's .mlir file) the library exports the module's
/// `_mlir_ciface_` functions as they are. On failure returns false and sets
/// `error`.
bool compileModule(ModuleOp module, const CodegenOptions &options,
                   const AttentionConfig *config, StringRef outputPath,
                   std::string &error);

/// Compiles a CUDA library for `config` (target CUDA) from its module: the
/// kernel is lowered by the CUDA pipeline, serialized to a cubin for
/// `config.chip` and embedded in a C launcher over the CUDA driver API, which
/// is loaded at run time (the library does not link libcuda). `MLIR` emits
/// the kernel-stage IR (gpu.module with nvgpu ops), `PTX` and `Cubin` the
/// kernel alone.
bool compileCUDALibrary(ModuleOp module, const CodegenOptions &options,
                        const AttentionConfig &config, StringRef outputPath,
                        std::string &error);

} // namespace mlir::sqa::aot

#endif // SQA_AOT_ATTENTIONLIBRARY_H
