//===- sqa-aot.cpp - Compile a head configuration into a library ----------===//

#include "sqa/AOT/AttentionLibrary.h"
#include "sqa/InitAll.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include <algorithm>

using namespace mlir;
using namespace mlir::sqa;
namespace cl = llvm::cl;

static cl::OptionCategory category("sqa-aot options");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("[input.mlir]"),
                                      cl::init(""), cl::cat(category));
static cl::opt<std::string>
    variant("variant",
            cl::desc("Head preset: mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa, rsqa "
                     "(with --heads, and --groups for gqa)"),
            cl::cat(category));
static cl::opt<int64_t>
    totalHeads("heads",
               cl::desc("Baseline head count H (d_head = d_model / H)"),
               cl::init(0), cl::cat(category));
static cl::opt<int64_t> groups("groups", cl::desc("Key/value heads for gqa"),
                               cl::init(0), cl::cat(category));
static cl::opt<int64_t> queryHeads("q-heads", cl::desc("Query heads Hq"),
                                   cl::init(0), cl::cat(category));
static cl::opt<int64_t> kvHeads("kv-heads", cl::desc("Key/value heads Hkv"),
                                cl::init(0), cl::cat(category));
static cl::opt<int64_t> headDim("head-dim", cl::desc("Head dimension D"),
                                cl::init(0), cl::cat(category));
static cl::opt<int64_t>
    valueHeadDim("value-head-dim",
                 cl::desc("Value head dimension Dv (default: D)"), cl::init(0),
                 cl::cat(category));
static cl::opt<std::string> dtype("dtype", cl::desc("f32, f16 or bf16"),
                                  cl::init("f32"), cl::cat(category));
static cl::opt<std::string>
    causal("causal",
           cl::desc("Causal mask alignment: top-left (PyTorch is_causal) or "
                    "bottom-right (FlashAttention)"),
           cl::init(""), cl::cat(category));
static cl::opt<std::string>
    window("window",
           cl::desc("Sliding window L,R around the diagonal (-1 = unbounded); "
                    "aligned as --causal, else top-left"),
           cl::init(""), cl::cat(category));
static cl::opt<std::string>
    alignment("alignment",
              cl::desc("Window alignment without --causal: top-left or "
                       "bottom-right"),
              cl::init(""), cl::cat(category));
static cl::opt<float> scale("scale", cl::desc("Softmax scale (1/sqrt(D))"),
                            cl::init(0.0f), cl::cat(category));
static cl::opt<std::string> layout("layout", cl::desc("bhsd (default) or bshd"),
                                   cl::init("bhsd"), cl::cat(category));
static cl::opt<std::string>
    target("target",
           cl::desc("cpu (default) or cuda (an embedded cubin and a launcher "
                    "that loads the CUDA driver at run time)"),
           cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    chip("chip", cl::desc("GPU architecture for --target cuda (sm_90)"),
         cl::init("sm_90"), cl::cat(category));
static cl::opt<int64_t>
    gpuKVBlock("gpu-kv-block",
               cl::desc("--target cuda: keys per shared-memory tile (64)"),
               cl::init(64), cl::cat(category));
static cl::opt<int64_t> gpuHeadsPerBlock(
    "gpu-heads-per-block",
    cl::desc("--target cuda: output heads per thread block, 1, 2 or 4 (0: the "
             "largest dividing the heads per key/value head)"),
    cl::init(0), cl::cat(category));
static cl::opt<int64_t> gpuRowsPerWarp(
    "gpu-rows-per-warp",
    cl::desc("--target cuda: query rows per warp, 16 (default) or 32"),
    cl::init(16), cl::cat(category));
static cl::opt<std::string>
    cudaToolkit("cuda-toolkit",
                cl::desc("CUDA toolkit whose ptxas makes the cubin (default: "
                         "PATH, then /usr/local/cuda)"),
                cl::init(""), cl::cat(category));
static cl::opt<std::string>
    cpu("cpu", cl::desc("native (default) or an LLVM CPU name"),
        cl::init("native"), cl::cat(category));
static cl::opt<std::string> name("name", cl::desc("Symbol prefix"),
                                 cl::init("sqa_attention"), cl::cat(category));
static cl::opt<std::string> output("o", cl::desc("Output file"),
                                   cl::value_desc("path"), cl::init(""),
                                   cl::cat(category));
static cl::opt<std::string>
    emit("emit",
         cl::desc("mlir, llvm, asm, obj or so (default); with --target "
                  "cuda: mlir (GPU IR), ptx, cubin or so"),
         cl::init("so"), cl::cat(category));
static cl::opt<bool>
    printConfig("print-config",
                cl::desc("Print the resolved configuration, parameter counts "
                         "and FLOPs per token, then exit"),
                cl::init(false), cl::cat(category));
static cl::opt<bool> layer("layer",
                           cl::desc("Compile the whole attention layer "
                                    "(projections, RoPE, attention, output)"),
                           cl::init(false), cl::cat(category));
static cl::opt<bool>
    crossAttention("cross-attention",
                   cl::desc("Layer keys and values come from a memory input"),
                   cl::init(false), cl::cat(category));
static cl::opt<std::string>
    rope("rope", cl::desc("Layer RoPE: rotary, linear or dynamic-ntk"),
         cl::init(""), cl::cat(category));
static cl::opt<double> ropeBase("rope-base", cl::desc("RoPE base (10000)"),
                                cl::init(10000.0), cl::cat(category));
static cl::opt<double> ropeFactor("rope-factor",
                                  cl::desc("RoPE scaling factor (1)"),
                                  cl::init(1.0), cl::cat(category));
static cl::opt<int64_t>
    ropeOriginalMax("rope-original-max",
                    cl::desc("Trained context of dynamic-ntk RoPE (2048)"),
                    cl::init(2048), cl::cat(category));
static cl::opt<int64_t> ropeOffset("rope-offset",
                                   cl::desc("Position of the first token (0)"),
                                   cl::init(0), cl::cat(category));
static cl::opt<bool>
    ropeQueriesOnly("rope-queries-only",
                    cl::desc("RoPE on queries only (cross-attention)"),
                    cl::init(false), cl::cat(category));
static cl::opt<std::string> bias("bias",
                                 cl::desc("Layer biases, any of q,k,v,o"),
                                 cl::init(""), cl::cat(category));
static cl::opt<int64_t>
    numLayers("layers",
              cl::desc("With --print-config: also count a model of N layers"),
              cl::init(0), cl::cat(category));
static cl::opt<std::string>
    kernel("kernel",
           cl::desc("flash (default: tiled, vectorized, multi-threaded) or "
                    "reference (naive oracle, S x T memory)"),
           cl::init("flash"), cl::cat(category));
static cl::opt<std::string> clang("clang",
                                  cl::desc("clang used to link the library"),
                                  cl::init(""), cl::cat(category));

static int failWith(const Twine &message) {
  llvm::errs() << "sqa-aot: error: " << message << "\n";
  return 1;
}

static std::optional<MaskAlignment> parseAlignment(StringRef text) {
  if (text == "top-left" || text == "top_left")
    return MaskAlignment::TopLeft;
  if (text == "bottom-right" || text == "bottom_right")
    return MaskAlignment::BottomRight;
  return std::nullopt;
}

/// Resolves the command line into a configuration; returns an error message.
static std::string resolveConfig(aot::AttentionConfig &config) {
  if (!variant.empty()) {
    std::optional<HeadVariant> preset = symbolizeHeadVariant(variant);
    if (!preset)
      return "unknown --variant '" + variant +
             "'; expected mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa or rsqa";
    if (queryHeads || kvHeads)
      return "--variant fixes the head counts; drop --q-heads/--kv-heads";
    std::string error;
    std::optional<HeadCounts> counts = resolveHeadPreset(
        *preset, totalHeads,
        groups ? std::optional<int64_t>(groups) : std::nullopt, error);
    if (!counts)
      return error;
    config.variant = variant;
    config.heads = *counts;
  } else {
    if (!queryHeads || !kvHeads)
      return "give a head configuration: --variant NAME --heads H, or "
             "--q-heads N --kv-heads N";
    if (groups)
      return "--groups goes with --variant gqa";
    int64_t total = totalHeads ? static_cast<int64_t>(totalHeads)
                               : std::max<int64_t>(queryHeads, kvHeads);
    config.heads = {total, queryHeads, kvHeads};
  }
  if (headDim <= 0)
    return "--head-dim must be a positive integer";
  config.headDim = headDim;
  config.valueHeadDim =
      valueHeadDim ? static_cast<int64_t>(valueHeadDim) : config.headDim;
  std::optional<aot::ElementKind> kind = aot::parseElementKind(dtype);
  if (!kind)
    return "unknown --dtype '" + dtype + "'; expected f32, f16 or bf16";
  config.elementKind = *kind;
  if (layout == "bhsd")
    config.layout = aot::Layout::BHSD;
  else if (layout == "bshd")
    config.layout = aot::Layout::BSHD;
  else
    return "unknown --layout '" + layout + "'; expected bhsd or bshd";
  if (!causal.empty()) {
    std::optional<MaskAlignment> align = parseAlignment(causal);
    if (!align)
      return "unknown --causal '" + causal +
             "'; expected top-left or bottom-right";
    config.causal = true;
    config.alignment = *align;
  }
  if (!alignment.empty()) {
    std::optional<MaskAlignment> align = parseAlignment(alignment);
    if (!align)
      return "unknown --alignment '" + alignment +
             "'; expected top-left or bottom-right";
    if (config.causal && *align != config.alignment)
      return "--alignment contradicts --causal";
    config.alignment = *align;
  }
  if (!window.empty()) {
    auto [left, right] = StringRef(window).split(',');
    if (left.trim().getAsInteger(10, config.windowLeft) ||
        right.trim().getAsInteger(10, config.windowRight))
      return "--window expects L,R with integers, got '" + window + "'";
  }
  if (scale.getNumOccurrences())
    config.scale = scale;
  bool layerOptionGiven =
      crossAttention || !rope.empty() || !bias.empty() || ropeQueriesOnly;
  if (layerOptionGiven && !layer)
    return "--cross-attention, --rope, --rope-queries-only and --bias need "
           "--layer";
  if (layer) {
    aot::AttentionConfig::Layer options;
    options.crossAttention = crossAttention;
    if (!rope.empty()) {
      std::string kind = rope;
      std::replace(kind.begin(), kind.end(), '-', '_');
      options.rope = symbolizeRopeKind(kind);
      if (!options.rope)
        return "unknown --rope '" + rope +
               "'; expected rotary, linear or dynamic-ntk";
    }
    options.ropeBase = ropeBase;
    options.ropeFactor = ropeFactor;
    options.ropeOriginalMaxPositions = ropeOriginalMax;
    options.ropePositionOffset = ropeOffset;
    options.ropeQueriesOnly = ropeQueriesOnly;
    if (!bias.empty()) {
      SmallVector<StringRef> parts;
      StringRef(bias).split(parts, ',');
      for (StringRef part : parts) {
        part = part.trim();
        bool *slot = llvm::StringSwitch<bool *>(part)
                         .Case("q", &options.biasQ)
                         .Case("k", &options.biasK)
                         .Case("v", &options.biasV)
                         .Case("o", &options.biasO)
                         .Default(nullptr);
        if (!slot)
          return "unknown --bias entry '" + part.str() +
                 "'; expected a list of q, k, v, o";
        *slot = true;
      }
    }
    config.layer = options;
  }
  config.name = name;
  if (target == "cuda")
    config.target = aot::Target::CUDA;
  else if (target != "cpu")
    return "unknown --target '" + target + "'; expected cpu or cuda";
  config.chip = chip;
  return config.validate();
}

static void printConfiguration(const aot::AttentionConfig &config) {
  const HeadCounts &h = config.heads;
  int64_t d = config.headDim, dv = config.valueHeadDim;
  int64_t dModel = h.total * d;
  // Projections: W_q d x Hq*D, W_k d x Hkv*D, W_v d x Hkv*Dv, W_o out*Dv x d.
  int64_t wq = dModel * h.query * d, wk = dModel * h.kv * d,
          wv = dModel * h.kv * dv, wo = config.outputHeads() * dv * dModel;
  llvm::outs() << "configuration: " << config.describe() << "\n"
               << "d_model: " << dModel << " (heads " << h.total
               << " x head_dim " << d << ")\n"
               << "attention parameters per layer (no biases): "
               << wq + wk + wv + wo << " (W_q " << wq << ", W_k " << wk
               << ", W_v " << wv << ", W_o " << wo << ")\n"
               << "projection FLOPs per token: " << 2 * (wq + wk + wv + wo)
               << "\n"
               << "attention FLOPs per query token and key: "
               << 2 * config.outputHeads() * (d + dv)
               << " (x kv_len non-causal, about half that causal)\n";
  if (config.layer) {
    const aot::AttentionConfig::Layer &l = *config.layer;
    int64_t biases = (l.biasQ ? h.query * d : 0) + (l.biasK ? h.kv * d : 0) +
                     (l.biasV ? h.kv * dv : 0) + (l.biasO ? dModel : 0);
    int64_t perLayer = wq + wk + wv + wo + biases;
    llvm::outs() << "layer parameters: " << perLayer << " (weights "
                 << wq + wk + wv + wo << ", biases " << biases << ")\n";
    if (numLayers > 0)
      llvm::outs() << "model attention parameters (" << numLayers
                   << " layers): " << perLayer * numLayers << "\n";
  } else if (numLayers > 0) {
    llvm::outs() << "model attention parameters (" << numLayers
                 << " layers, no biases): " << (wq + wk + wv + wo) * numLayers
                 << "\n";
  }
}

static std::optional<aot::EmitKind> parseEmit(StringRef text) {
  return llvm::StringSwitch<std::optional<aot::EmitKind>>(text)
      .Case("mlir", aot::EmitKind::MLIR)
      .Case("llvm", aot::EmitKind::LLVMIR)
      .Case("asm", aot::EmitKind::Assembly)
      .Case("obj", aot::EmitKind::Object)
      .Case("ptx", aot::EmitKind::PTX)
      .Case("cubin", aot::EmitKind::Cubin)
      .Case("so", aot::EmitKind::SharedLibrary)
      .Default(std::nullopt);
}

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "sqa-aot: compile an attention head configuration (or an .mlir file) "
      "into a shared library and C header\n\n"
      "  sqa-aot --variant ssqa --heads 16 --head-dim 64 -o libattn.so\n"
      "  sqa-aot --q-heads 8 --kv-heads 4 --head-dim 64 --dtype bf16 "
      "--causal bottom-right --name sqa84 -o libsqa84.so\n");

  std::optional<aot::EmitKind> emitKind = parseEmit(emit);
  if (!emitKind)
    return failWith("unknown --emit '" + emit +
                    "'; expected mlir, llvm, asm, obj, ptx, cubin or so");
  bool cuda = target == "cuda";
  bool gpuArtifact =
      *emitKind == aot::EmitKind::PTX || *emitKind == aot::EmitKind::Cubin;
  bool cpuArtifact = *emitKind == aot::EmitKind::LLVMIR ||
                     *emitKind == aot::EmitKind::Assembly ||
                     *emitKind == aot::EmitKind::Object;
  if (gpuArtifact && !cuda)
    return failWith("--emit " + emit + " needs --target cuda");
  if (cpuArtifact && cuda)
    return failWith("--emit " + emit +
                    " is for --target cpu; with --target cuda use mlir, ptx, "
                    "cubin or so");

  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  // Diagnostics name the location; dumping whole lowered ops helps nobody.
  context.printOpOnDiagnostic(false);

  // Diagnostics print with file:line:col and the source line.
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnosticHandler(sourceMgr, &context);

  aot::AttentionConfig config;
  OwningOpRef<ModuleOp> module;
  bool fromConfig = inputFile.empty();
  if (fromConfig) {
    std::string error = resolveConfig(config);
    if (!error.empty())
      return failWith(error);
    if (printConfig) {
      printConfiguration(config);
      return 0;
    }
    module = aot::buildAttentionModule(context, config);
  } else {
    if (printConfig)
      return failWith("--print-config describes a head configuration, not "
                      "an input file");
    std::string error;
    auto file = openInputFile(inputFile, &error);
    if (!file)
      return failWith(error);
    sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    // The parser has reported why, at the offending location.
    if (!module)
      return 1;
  }
  if (!module)
    return failWith("could not build the module");

  if (output.empty())
    return failWith("give an output path with -o");
  aot::CodegenOptions options;
  options.cpu = cpu;
  options.emit = *emitKind;
  options.clang = clang;
  if (kernel != "flash" && kernel != "reference")
    return failWith("unknown --kernel '" + kernel +
                    "'; expected flash or reference");
  options.attentionKernel = kernel;
  options.cudaToolkit = cudaToolkit;
  options.gpuKVBlock = gpuKVBlock;
  options.gpuHeadsPerBlock = gpuHeadsPerBlock;
  options.gpuRowsPerWarp = gpuRowsPerWarp;
  std::string error;
  if (cuda) {
    if (!fromConfig)
      return failWith("--target cuda compiles a head configuration, not an "
                      "input file");
    if (kernel != "flash")
      return failWith("--kernel reference is CPU-only");
    if (!aot::compileCUDALibrary(*module, options, config, output, error))
      return failWith(error);
  } else if (!aot::compileModule(*module, options,
                                 fromConfig ? &config : nullptr, output,
                                 error)) {
    return failWith(error);
  }

  // The header goes beside the library.
  if (fromConfig && *emitKind == aot::EmitKind::SharedLibrary) {
    SmallString<128> header = llvm::sys::path::parent_path(output);
    llvm::sys::path::append(header, config.name + ".h");
    std::string headerError;
    auto file = openOutputFile(header, &headerError);
    if (!file)
      return failWith(headerError);
    file->os() << aot::generateHeader(config);
    file->keep();
  }
  return 0;
}
