//===- Driver.cpp - sqa-aot's command line, resolved and run --------------===//

#include "sqa/AOT/Driver.h"

#include "DriverSupport.h"
#include "sqa/InitAll.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/SourceMgr.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

static std::optional<MaskAlignment> parseAlignment(StringRef text) {
  if (text == "top-left" || text == "top_left")
    return MaskAlignment::TopLeft;
  if (text == "bottom-right" || text == "bottom_right")
    return MaskAlignment::BottomRight;
  return std::nullopt;
}

/// "" if `value` (when given) lies in [lo, hi], else a message naming it.
static std::string checkRange(StringRef option, std::optional<int64_t> value,
                              int64_t lo, int64_t hi) {
  if (!value || (*value >= lo && *value <= hi))
    return "";
  return ("--" + option + " must be in [" + Twine(lo) + ", " + Twine(hi) +
          "], got " + Twine(*value))
      .str();
}

std::string aot::resolveConfig(const DriverOptions &options,
                               AttentionConfig &config) {
  // Bound every count before any arithmetic on it.
  for (auto [option, value] : {std::pair{"heads", options.heads},
                               {"groups", options.groups},
                               {"q-heads", options.queryHeads},
                               {"kv-heads", options.kvHeads}})
    if (std::string error = checkRange(option, value, 1, kMaxLibraryHeads);
        !error.empty())
      return error;
  if (!options.variant.empty()) {
    std::optional<HeadVariant> preset = symbolizeHeadVariant(options.variant);
    if (!preset)
      return "unknown --variant '" + options.variant +
             "'; expected mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa or rsqa";
    if (options.queryHeads || options.kvHeads)
      return "--variant fixes the head counts; drop --q-heads/--kv-heads";
    std::string error;
    std::optional<HeadCounts> counts = resolveHeadPreset(
        *preset, options.heads.value_or(0), options.groups, error);
    if (!counts)
      return error;
    config.variant = options.variant;
    config.heads = *counts;
  } else {
    if (!options.queryHeads || !options.kvHeads)
      return "give a head configuration: --variant NAME --heads H, or "
             "--q-heads N --kv-heads N";
    if (options.groups)
      return "--groups goes with --variant gqa";
    config.heads = {
        options.heads.value_or(std::max(*options.queryHeads, *options.kvHeads)),
        *options.queryHeads, *options.kvHeads};
  }
  if (!options.headDim || *options.headDim <= 0)
    return "--head-dim must be a positive integer";
  if (options.valueHeadDim && *options.valueHeadDim <= 0)
    return "--value-head-dim must be a positive integer, got " +
           std::to_string(*options.valueHeadDim);
  config.headDim = *options.headDim;
  config.valueHeadDim = options.valueHeadDim.value_or(config.headDim);
  std::optional<ElementKind> kind = parseElementKind(options.dtype);
  if (!kind)
    return "unknown --dtype '" + options.dtype + "'; expected f32, f16 or bf16";
  config.elementKind = *kind;
  if (options.layout == "bhsd")
    config.layout = Layout::BHSD;
  else if (options.layout == "bshd")
    config.layout = Layout::BSHD;
  else
    return "unknown --layout '" + options.layout + "'; expected bhsd or bshd";
  if (!options.causal.empty()) {
    std::optional<MaskAlignment> align = parseAlignment(options.causal);
    if (!align)
      return "unknown --causal '" + options.causal +
             "'; expected top-left or bottom-right";
    config.causal = true;
    config.alignment = *align;
  }
  if (!options.alignment.empty()) {
    std::optional<MaskAlignment> align = parseAlignment(options.alignment);
    if (!align)
      return "unknown --alignment '" + options.alignment +
             "'; expected top-left or bottom-right";
    if (config.causal && *align != config.alignment)
      return "--alignment contradicts --causal";
    config.alignment = *align;
  }
  if (!options.window.empty()) {
    auto [left, right] = StringRef(options.window).split(',');
    if (left.trim().getAsInteger(10, config.windowLeft) ||
        right.trim().getAsInteger(10, config.windowRight))
      return "--window expects L,R with integers, got '" + options.window + "'";
  }
  config.scale = options.scale;
  bool layerOptionGiven = options.crossAttention || !options.rope.empty() ||
                          !options.bias.empty() || options.ropeQueriesOnly;
  if (layerOptionGiven && !options.layer)
    return "--cross-attention, --rope, --rope-queries-only and --bias need "
           "--layer";
  if (options.layer) {
    AttentionConfig::Layer layer;
    layer.crossAttention = options.crossAttention;
    if (!options.rope.empty()) {
      std::string kind = options.rope;
      std::replace(kind.begin(), kind.end(), '-', '_');
      layer.rope = symbolizeRopeKind(kind);
      if (!layer.rope)
        return "unknown --rope '" + options.rope +
               "'; expected rotary, linear or dynamic-ntk";
    }
    layer.ropeBase = options.ropeBase;
    layer.ropeFactor = options.ropeFactor;
    layer.ropeOriginalMaxPositions = options.ropeOriginalMax;
    layer.ropePositionOffset = options.ropeOffset;
    layer.ropeQueriesOnly = options.ropeQueriesOnly;
    if (!options.bias.empty()) {
      SmallVector<StringRef> parts;
      StringRef(options.bias).split(parts, ',');
      for (StringRef part : parts) {
        part = part.trim();
        bool *slot = llvm::StringSwitch<bool *>(part)
                         .Case("q", &layer.biasQ)
                         .Case("k", &layer.biasK)
                         .Case("v", &layer.biasV)
                         .Case("o", &layer.biasO)
                         .Default(nullptr);
        if (!slot)
          return "unknown --bias entry '" + part.str() +
                 "'; expected a list of q, k, v, o";
        *slot = true;
      }
    }
    config.layer = layer;
  }
  config.name = options.name;
  if (options.target == "cuda")
    config.target = Target::CUDA;
  else if (options.target != "cpu")
    return "unknown --target '" + options.target + "'; expected cpu or cuda";
  config.chip = options.chip;
  return config.validate();
}

static std::optional<EmitKind> parseEmit(StringRef text) {
  return llvm::StringSwitch<std::optional<EmitKind>>(text)
      .Case("mlir", EmitKind::MLIR)
      .Case("llvm", EmitKind::LLVMIR)
      .Case("asm", EmitKind::Assembly)
      .Case("obj", EmitKind::Object)
      .Case("ptx", EmitKind::PTX)
      .Case("cubin", EmitKind::Cubin)
      .Case("so", EmitKind::SharedLibrary)
      .Default(std::nullopt);
}

std::string aot::resolveCodegenOptions(const DriverOptions &options,
                                       CodegenOptions &codegen) {
  std::optional<EmitKind> emit = parseEmit(options.emit);
  if (!emit)
    return "unknown --emit '" + options.emit +
           "'; expected mlir, llvm, asm, obj, ptx, cubin or so";
  bool cuda = options.target == "cuda";
  if ((*emit == EmitKind::PTX || *emit == EmitKind::Cubin) && !cuda)
    return "--emit " + options.emit + " needs --target cuda";
  if ((*emit == EmitKind::LLVMIR || *emit == EmitKind::Assembly ||
       *emit == EmitKind::Object) &&
      cuda)
    return "--emit " + options.emit +
           " is for --target cpu; with --target cuda use mlir, ptx, cubin or "
           "so";
  codegen.emit = *emit;
  if (options.kernel != "flash" && options.kernel != "reference")
    return "unknown --kernel '" + options.kernel +
           "'; expected flash or reference";
  if (cuda && options.kernel != "flash")
    return "--kernel reference is CPU-only";
  codegen.attentionKernel = options.kernel;

  // Knobs of the other target's kernel would be silently ignored.
  bool cpuKnob = options.cpuQueryTile || options.cpuKVBlock || options.cpuMR ||
                 options.cpuNR || options.cpuVectorWidth;
  bool gpuKnob =
      options.gpuKVBlock || options.gpuHeadsPerBlock || options.gpuRowsPerWarp;
  gpuKnob |= options.gpuBackward.has_value();
  if (cpuKnob && (cuda || options.kernel != "flash"))
    return "--cpu-query-tile, --cpu-kv-block, --cpu-mr, --cpu-nr and "
           "--cpu-vector-width tune the CPU flash kernel (--target cpu "
           "--kernel flash)";
  if (gpuKnob && !cuda)
    return "--gpu-kv-block, --gpu-heads-per-block, --gpu-rows-per-warp and "
           "--gpu-backward need --target cuda";
  for (auto [option, value, hi] :
       {std::tuple{"cpu-query-tile", options.cpuQueryTile, kMaxCPUTile},
        {"cpu-kv-block", options.cpuKVBlock, kMaxCPUTile},
        {"cpu-mr", options.cpuMR, kMaxCPUMicroKernelRows},
        {"cpu-nr", options.cpuNR, kMaxCPUMicroKernelVectors},
        {"gpu-kv-block", options.gpuKVBlock, kMaxGPUKVBlock}})
    if (std::string error = checkRange(option, value, 1, hi); !error.empty())
      return error;
  if (options.cpuVectorWidth &&
      !llvm::is_contained({4, 8, 16}, *options.cpuVectorWidth))
    return "--cpu-vector-width must be 4, 8 or 16, got " +
           std::to_string(*options.cpuVectorWidth);
  if (options.gpuHeadsPerBlock &&
      !llvm::is_contained({0, 1, 2, 4}, *options.gpuHeadsPerBlock))
    return "--gpu-heads-per-block must be 0 (automatic), 1, 2 or 4, got " +
           std::to_string(*options.gpuHeadsPerBlock);
  if (options.gpuRowsPerWarp &&
      !llvm::is_contained({16, 32}, *options.gpuRowsPerWarp))
    return "--gpu-rows-per-warp must be 16 or 32, got " +
           std::to_string(*options.gpuRowsPerWarp);
  if (options.gpuBackward &&
      !llvm::is_contained({"tensor-core", "simt"}, *options.gpuBackward))
    return "--gpu-backward must be tensor-core or simt, got '" +
           *options.gpuBackward + "'";
  codegen.gpuBackwardTensorCores = options.gpuBackward.value_or("") != "simt";
  codegen.cpuQueryTile = options.cpuQueryTile;
  codegen.cpuKVBlock = options.cpuKVBlock;
  codegen.cpuMR = options.cpuMR;
  codegen.cpuNR = options.cpuNR;
  codegen.cpuVectorWidth = options.cpuVectorWidth;
  codegen.gpuKVBlock = options.gpuKVBlock.value_or(codegen.gpuKVBlock);
  codegen.gpuHeadsPerBlock =
      options.gpuHeadsPerBlock.value_or(codegen.gpuHeadsPerBlock);
  codegen.gpuRowsPerWarp =
      options.gpuRowsPerWarp.value_or(codegen.gpuRowsPerWarp);
  codegen.cpu = options.cpu;
  codegen.clang = options.clang;
  codegen.cudaToolkit = options.cudaToolkit;
  return "";
}

namespace {
/// Products and sums that fail once any step overflows int64.
struct Checked {
  bool overflow = false;
  int64_t mul(int64_t a, int64_t b) { return wrap(llvm::checkedMul(a, b)); }
  int64_t add(int64_t a, int64_t b) { return wrap(llvm::checkedAdd(a, b)); }
  int64_t wrap(std::optional<int64_t> value) {
    overflow |= !value;
    return value.value_or(0);
  }
};
} // namespace

std::string aot::printConfiguration(const AttentionConfig &config,
                                    std::optional<int64_t> layers,
                                    llvm::raw_ostream &out) {
  if (layers && (*layers < 1 || *layers > kMaxLayers))
    return "--layers must be in [1, " + std::to_string(kMaxLayers) + "], got " +
           std::to_string(*layers);
  const HeadCounts &h = config.heads;
  int64_t d = config.headDim, dv = config.valueHeadDim,
          out_ = config.outputHeads();
  Checked c;
  int64_t dModel = c.mul(h.total, d);
  // Projections: W_q d x Hq*D, W_k d x Hkv*D, W_v d x Hkv*Dv, W_o out*Dv x d.
  int64_t wq = c.mul(dModel, c.mul(h.query, d)),
          wk = c.mul(dModel, c.mul(h.kv, d)),
          wv = c.mul(dModel, c.mul(h.kv, dv)),
          wo = c.mul(c.mul(out_, dv), dModel);
  int64_t weights = c.add(c.add(wq, wk), c.add(wv, wo));
  int64_t projectionFlops = c.mul(2, weights);
  int64_t attentionFlops = c.mul(2, c.mul(out_, c.add(d, dv)));
  int64_t biases = 0, perLayer = weights;
  if (config.layer) {
    const AttentionConfig::Layer &l = *config.layer;
    biases = c.add(
        c.add(l.biasQ ? c.mul(h.query, d) : 0, l.biasK ? c.mul(h.kv, d) : 0),
        c.add(l.biasV ? c.mul(h.kv, dv) : 0, l.biasO ? dModel : 0));
    perLayer = c.add(weights, biases);
  }
  int64_t model = layers ? c.mul(perLayer, *layers) : 0;
  if (c.overflow)
    return "--print-config: the parameter or FLOP counts of this "
           "configuration overflow int64";

  std::string text;
  llvm::raw_string_ostream os(text);
  os << "configuration: " << config.describe() << "\n"
     << "d_model: " << dModel << " (heads " << h.total << " x head_dim " << d
     << ")\n"
     << "attention parameters per layer (no biases): " << weights << " (W_q "
     << wq << ", W_k " << wk << ", W_v " << wv << ", W_o " << wo << ")\n"
     << "projection FLOPs per token: " << projectionFlops << "\n"
     << "attention FLOPs per query token and key: " << attentionFlops
     << " (x kv_len non-causal, about half that causal)\n";
  if (config.layer) {
    os << "layer parameters: " << perLayer << " (weights " << weights
       << ", biases " << biases << ")\n";
    if (layers)
      os << "model attention parameters (" << *layers << " layers): " << model
         << "\n";
  } else if (layers) {
    os << "model attention parameters (" << *layers
       << " layers, no biases): " << model << "\n";
  }
  out << text;
  return "";
}

namespace {
/// Output files written under temporary names in their final directory and
/// renamed into place together: a failure leaves none of them behind.
class AtomicOutputs {
public:
  ~AtomicOutputs() {
    for (const Entry &entry : entries)
      llvm::sys::fs::remove(entry.temporary);
  }

  /// Reserves a temporary file beside `path`; returns its name, or "" and
  /// sets `error`.
  std::string add(StringRef path, std::string &error) {
    if (std::string reason = checkDestination(path); !reason.empty()) {
      error = reason;
      return "";
    }
    SmallString<128> model(path);
    model += ".tmp-%%%%%%";
    SmallString<128> temporary;
    int fd;
    if (std::error_code ec =
            llvm::sys::fs::createUniqueFile(model, fd, temporary)) {
      error = ("cannot write '" + path + "': " + ec.message()).str();
      return "";
    }
    llvm::sys::Process::SafelyCloseFileDescriptor(fd);
    // Killed mid-way (say, by a timeout), sqa-aot leaves no partial file.
    llvm::sys::RemoveFileOnSignal(temporary);
    entries.push_back({path.str(), temporary.str().str()});
    return entries.back().temporary;
  }

  /// Renames every file into place; on failure removes those already
  /// renamed.
  bool commit(std::string &error) {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (std::error_code ec =
              llvm::sys::fs::rename(entries[i].temporary, entries[i].path)) {
        error = "cannot write '" + entries[i].path + "': " + ec.message();
        for (size_t j = 0; j < i; ++j)
          llvm::sys::fs::remove(entries[j].path);
        return false;
      }
    }
    for (const Entry &entry : entries)
      llvm::sys::DontRemoveFileOnSignal(entry.temporary);
    entries.clear();
    return true;
  }

private:
  /// Only regular files are replaced: never a device, pipe or directory.
  static std::string checkDestination(StringRef path) {
    llvm::sys::fs::file_status status;
    if (!llvm::sys::fs::status(path, status) &&
        status.type() != llvm::sys::fs::file_type::regular_file)
      return ("refusing to write '" + path + "': it is not a regular file")
          .str();
    SmallString<128> dir = llvm::sys::path::parent_path(path);
    if (dir.empty())
      dir = ".";
    if (!llvm::sys::fs::is_directory(dir) ||
        llvm::sys::fs::access(dir, llvm::sys::fs::AccessMode::Write))
      return ("cannot write '" + path + "': directory '" + dir +
              "' does not exist or is not writable")
          .str();
    return "";
  }

  struct Entry {
    std::string path, temporary;
  };
  SmallVector<Entry> entries;
};
} // namespace

int aot::runDriver(const DriverOptions &options, llvm::raw_ostream &outs,
                   llvm::raw_ostream &errs) {
  auto failWith = [&](const Twine &message) {
    errs << "sqa-aot: error: " << message << "\n";
    return 1;
  };
  bool fromConfig = options.inputFile.empty();
  AttentionConfig config;
  CodegenOptions codegen;
  if (fromConfig) {
    if (std::string error = resolveConfig(options, config); !error.empty())
      return failWith(error);
    if (options.printConfig) {
      if (std::string error = printConfiguration(config, options.layers, outs);
          !error.empty())
        return failWith(error);
      return 0;
    }
  } else if (options.printConfig) {
    return failWith("--print-config describes a head configuration, not an "
                    "input file");
  }
  if (options.layers)
    return failWith("--layers goes with --print-config");
  if (std::string error = resolveCodegenOptions(options, codegen);
      !error.empty())
    return failWith(error);
  bool cuda = options.target == "cuda";
  if (cuda && !fromConfig)
    return failWith("--target cuda compiles a head configuration, not an "
                    "input file");

  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext context(registry);
  // Diagnostics name the location; dumping whole lowered ops helps nobody.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnosticHandler(sourceMgr, &context, errs);

  OwningOpRef<ModuleOp> module;
  if (fromConfig) {
    module = buildAttentionModule(context, config);
    if (!module)
      return failWith("could not build the module");
  } else {
    std::string error;
    auto file = openInputFile(options.inputFile, &error);
    if (!file)
      return failWith(error);
    sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    // The parser has reported why, at the offending location.
    if (!module)
      return 1;
  }

  if (options.output.empty())
    return failWith("give an output path with -o");
  // The one compile step, into `path`, for both kinds of destination.
  auto compileTo = [&](StringRef path, std::string &error) {
    return cuda ? compileCUDALibrary(*module, codegen, config, path.str(),
                                     error)
                : compileModule(*module, codegen,
                                fromConfig ? &config : nullptr, path.str(),
                                error);
  };
  if (options.output == "-") {
    // Text goes to standard output (FileCheck, pipes); it is compiled to a
    // temporary file first, so a failure still prints nothing.
    bool text =
        codegen.emit == EmitKind::MLIR || codegen.emit == EmitKind::LLVMIR ||
        codegen.emit == EmitKind::Assembly || codegen.emit == EmitKind::PTX;
    if (!text)
      return failWith("-o - writes text only (--emit mlir, llvm, asm or ptx)");
    SmallString<128> temporary;
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("sqa-aot", "out", temporary))
      return failWith("cannot create a temporary file: " + ec.message());
    llvm::FileRemover remover(temporary);
    std::string error;
    if (!compileTo(temporary, error))
      return failWith(error);
    auto buffer = llvm::MemoryBuffer::getFile(temporary);
    if (!buffer)
      return failWith("cannot read back the output: " +
                      buffer.getError().message());
    outs << (*buffer)->getBuffer();
    outs.flush();
    return 0;
  }
  // The artifact, and beside a configuration's library its header: both are
  // written or neither.
  AtomicOutputs outputs;
  std::string error;
  std::string artifact = outputs.add(options.output, error);
  if (artifact.empty())
    return failWith(error);
  std::string header;
  if (fromConfig && codegen.emit == EmitKind::SharedLibrary) {
    SmallString<128> path = llvm::sys::path::parent_path(options.output);
    llvm::sys::path::append(path, config.name + ".h");
    header = outputs.add(path, error);
    if (header.empty() || !writeFile(header, generateHeader(config), error))
      return failWith(error);
  }
  bool compiled = compileTo(artifact, error);
  if (!compiled || !outputs.commit(error))
    return failWith(error);
  return 0;
}
