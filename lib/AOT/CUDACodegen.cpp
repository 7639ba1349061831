//===- CUDACodegen.cpp - CUDA libraries: cubin plus a driver launcher -----===//
//
// The CUDA pipeline lowers the configuration's module in two stages. After
// the kernel stage the kernel's launch geometry is read from its attributes;
// after the binary stage the cubin (or PTX) is taken from `gpu.binary`. The
// library is a generated C launcher with the cubin embedded: it loads the
// CUDA driver with dlopen at the first call, so it builds and loads where
// there is no driver and reports that as an error code (Triton's AOT
// launchers work the same way). No libmlir_cuda_runtime is involved.
//
//===----------------------------------------------------------------------===//

#include "DriverSupport.h"
#include "sqa/AOT/AttentionLibrary.h"
#include "sqa/Pipelines/Pipelines.h"
#include "sqa/Transforms/GPUKernelABI.h"

#include "SQA/IR/SQAAttrs.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

namespace {
/// The generated kernel and its #sqa.gpu_launch geometry.
struct KernelLaunch {
  std::string name;
  GPULaunchAttr geometry;
};
} // namespace

/// The forward kernel: the one that is no decode or training stage.
static std::optional<KernelLaunch> findKernel(ModuleOp module) {
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("sqa_kernels");
  if (!kernels)
    return std::nullopt;
  std::optional<KernelLaunch> launch;
  for (auto func : kernels.getOps<gpu::GPUFuncOp>()) {
    if (func->hasAttr(gpu_abi::kDecodeStageAttrName) ||
        func->hasAttr(gpu_abi::kTrainingStageAttrName))
      continue;
    auto geometry =
        func->getAttrOfType<GPULaunchAttr>(gpu_abi::kLaunchAttrName);
    if (launch || !geometry) // One attention op per configuration module.
      return std::nullopt;
    launch = KernelLaunch{func.getName().str(), geometry};
  }
  return launch;
}

namespace {
/// The decode kernels in the launcher's order: (no append) split, merge;
/// (append) append, split, merge; and the split kernel's keys per split.
struct DecodeKernels {
  SmallVector<KernelLaunch> kernels;
  int64_t splitKeys = 0;
};
} // namespace

static std::optional<DecodeKernels> findDecodeKernels(ModuleOp module,
                                                      StringRef name) {
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("sqa_kernels");
  if (!kernels)
    return std::nullopt;
  DecodeKernels found;
  std::pair<StringRef, StringRef> wanted[] = {
      {"_decode_kernel", "split"},
      {"_decode_kernel", "merge"},
      {"_decode_append_kernel", "append"},
      {"_decode_append_kernel", "split"},
      {"_decode_append_kernel", "merge"}};
  for (auto [host, stage] : wanted) {
    std::string kernelName = (name + host + "_" + stage).str();
    auto func = kernels.lookupSymbol<gpu::GPUFuncOp>(kernelName);
    if (!func)
      return std::nullopt;
    auto geometry =
        func->getAttrOfType<GPULaunchAttr>(gpu_abi::kLaunchAttrName);
    if (!geometry || geometry.getThreads() <= 0 ||
        geometry.getRowsPerBlock() <= 0)
      return std::nullopt;
    if (auto keys =
            func->getAttrOfType<IntegerAttr>(gpu_abi::kDecodeSplitKeysAttrName))
      found.splitKeys = keys.getInt();
    found.kernels.push_back({kernelName, geometry});
  }
  if (found.splitKeys <= 0)
    return std::nullopt;
  return found;
}

/// The training kernels in the launcher's order: lse, dkdv, dq.
static std::optional<SmallVector<KernelLaunch>>
findTrainingKernels(ModuleOp module) {
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("sqa_kernels");
  if (!kernels)
    return std::nullopt;
  SmallVector<KernelLaunch> found;
  for (StringRef stage : {"lse", "dkdv", "dq"}) {
    gpu::GPUFuncOp match;
    for (auto func : kernels.getOps<gpu::GPUFuncOp>())
      if (auto attr =
              func->getAttrOfType<StringAttr>(gpu_abi::kTrainingStageAttrName);
          attr && attr.getValue() == stage) {
        if (match)
          return std::nullopt;
        match = func;
      }
    if (!match)
      return std::nullopt;
    auto geometry =
        match->getAttrOfType<GPULaunchAttr>(gpu_abi::kLaunchAttrName);
    if (!geometry || geometry.getThreads() <= 0 ||
        geometry.getRowsPerBlock() <= 0 || geometry.getHeadsPerBlock() <= 0)
      return std::nullopt;
    found.push_back({match.getName().str(), geometry});
  }
  return found;
}

static std::optional<std::string> binaryObject(ModuleOp module) {
  auto binary = module.lookupSymbol<gpu::BinaryOp>("sqa_kernels");
  if (!binary || binary.getObjects().size() != 1)
    return std::nullopt;
  auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
  return object.getObject().getValue().str();
}

namespace {
/// The C names of GPUKernelABI.def's lists, in parameter order.
struct KernelABINames {
  SmallVector<StringRef> buffers, memrefWords, memrefWordTypes, scalars;
  KernelABINames() {
#define SQA_GPU_BUFFER(Name, cName) buffers.push_back(#cName);
#define SQA_GPU_MEMREF_WORD(name, cType)                                       \
  memrefWords.push_back(#name);                                                \
  memrefWordTypes.push_back(#cType);
#define SQA_GPU_SCALAR(Name, cName) scalars.push_back(#cName);
#include "sqa/Transforms/GPUKernelABI.def"
  }
};
} // namespace

/// A C expression for every name in `names`, or a fatal error naming the
/// first the launcher does not know (GPUKernelABI.def grew a parameter).
static SmallVector<std::string>
lookupAll(ArrayRef<StringRef> names,
          const std::map<std::string, std::string, std::less<>> &known,
          StringRef what) {
  SmallVector<std::string> values;
  for (StringRef name : names) {
    auto it = known.find(name);
    if (it == known.end())
      llvm::report_fatal_error("sqa-aot: the CUDA launcher has no value for " +
                               what + " '" + name + "' of GPUKernelABI.def");
    values.push_back(it->second);
  }
  return values;
}

namespace {
/// An element buffer's extent: (heads, length expression, head dim).
struct BufferExtent {
  int64_t heads;
  StringRef len;
  int64_t dim;
};
using ExtentMap = std::map<std::string, BufferExtent, std::less<>>;
using TextMap = std::map<std::string, std::string, std::less<>>;

/// The C text of one parameter block: flat memref descriptors of `buffers`,
/// the values of `scalars` and the pointer array the launches take.
struct ParameterBlockText {
  std::string counts, descriptors, scalars, pointers;
};
} // namespace

/// One definition of how a launcher passes a list of GPUKernelABI.def to its
/// kernels: every buffer as a flat memref (its element count `n_<name>`,
/// counted here when it has an extent, else by the template), the element
/// strides of the buffers with an extent (BSHD or BHSD), then the scalars
/// by name. `indent` is the descriptors' indentation in the template.
static ParameterBlockText
parameterBlock(const AttentionConfig &config, ArrayRef<StringRef> buffers,
               ArrayRef<StringRef> scalars, const ExtentMap &extents,
               TextMap scalarValues, StringRef listName, StringRef indent) {
  static const KernelABINames abi;
  ParameterBlockText text;
  bool bhsd = config.layout == Layout::BHSD;
  std::string inner = (indent + "  ").str(),
              innermost = (indent + "    ").str();
  for (StringRef buffer : buffers) {
    std::string b = buffer.str();
    if (auto extent = extents.find(buffer); extent != extents.end()) {
      auto [heads, len, dim] = extent->second;
      text.counts +=
          llvm::formatv("  n_{0} = elements(batch, {1}, {2}, {3});\n", b, heads,
                        len, dim)
              .str();
      scalarValues[b + "_stride_batch"] =
          llvm::formatv("{0} * {1} * {2}", len, heads, dim).str();
      scalarValues[b + "_stride_head"] =
          bhsd ? llvm::formatv("{0} * {1}", len, dim).str()
               : std::to_string(dim);
      scalarValues[b + "_stride_pos"] =
          bhsd ? std::to_string(dim)
               : llvm::formatv("{0} * {1}", heads, dim).str();
    }
    TextMap wordValues = {{"allocated", "(void *)" + b},
                          {"aligned", "(void *)" + b},
                          {"offset", "0"},
                          {"size", "n_" + b},
                          {"stride", "1"}};
    text.descriptors +=
        indent.str() + "flat_memref m_" + b + " = {" +
        llvm::join(lookupAll(abi.memrefWords, wordValues, "memref word"),
                   ", ") +
        "};\n";
    for (StringRef word : abi.memrefWords)
      text.pointers += inner + "&m_" + b + "." + word.str() + ",\n";
  }
  SmallVector<std::string> scalarExprs =
      lookupAll(scalars, scalarValues, (listName + " scalar").str());
  for (auto [i, name] : llvm::enumerate(scalars)) {
    text.scalars += innermost + scalarExprs[i] + ", /* " + name.str() + " */\n";
    text.pointers += inner + "&scalars[" + std::to_string(i) + "],\n";
  }
  return text;
}

/// The C code of the kernel's parameter block, generated from
/// GPUKernelABI.def: the flat_memref fields, each buffer's element count and
/// descriptor, the scalars and the array of parameter pointers.
static void fillParameterBlock(const AttentionConfig &config,
                               TemplateValues &values) {
  static const KernelABINames abi;
  ExtentMap extents = {
      {"q", {config.heads.query, "q_len", config.headDim}},
      {"k", {config.heads.kv, "kv_len", config.headDim}},
      {"v", {config.heads.kv, "kv_len", config.valueHeadDim}},
      {"out", {config.outputHeads(), "q_len", config.valueHeadDim}}};
  TextMap scalarValues = {
      {"q_len", "q_len"},
      {"kv_len", "kv_len"},
      {"diagonal", config.alignment == MaskAlignment::BottomRight
                       ? "kv_len - q_len"
                       : "0"}};
  for (StringRef buffer : abi.buffers)
    if (!extents.count(buffer))
      llvm::report_fatal_error("sqa-aot: the CUDA launcher has no extent for "
                               "buffer '" +
                               buffer + "' of GPUKernelABI.def");
  std::string fields;
  for (auto [word, type] : llvm::zip(abi.memrefWords, abi.memrefWordTypes))
    fields +=
        ("  " + type + (type.ends_with("*") ? "" : " ") + word + ";\n").str();
  ParameterBlockText text =
      parameterBlock(config, abi.buffers, abi.scalars, extents, scalarValues,
                     "forward", "    ");
  values["memref_words"] = fields;
  values["element_counts"] = text.counts;
  values["buffer_descriptors"] = text.descriptors;
  values["scalar_values"] = text.scalars;
  values["parameter_pointers"] = text.pointers;
}

/// The decode entry's parameter block from GPUKernelABI.def's decode lists.
static void fillDecodeParameterBlock(const AttentionConfig &config,
                                     TemplateValues &values) {
  SmallVector<StringRef> buffers, scalars;
#define SQA_GPU_DECODE_BUFFER(Name, cName) buffers.push_back(#cName);
#define SQA_GPU_DECODE_SCALAR(Name, cName) scalars.push_back(#cName);
#include "sqa/Transforms/GPUKernelABI.def"
  // The rest are counted by the template (n_cache_lens, n_partials).
  ExtentMap extents = {
      {"q", {config.heads.query, "new_len", config.headDim}},
      {"k_cache", {config.heads.kv, "capacity", config.headDim}},
      {"v_cache", {config.heads.kv, "capacity", config.valueHeadDim}},
      {"k_new", {config.heads.kv, "new_len", config.headDim}},
      {"v_new", {config.heads.kv, "new_len", config.valueHeadDim}},
      {"out", {config.outputHeads(), "new_len", config.valueHeadDim}}};
  TextMap scalarValues = {{"new_len", "new_len"},
                          {"capacity", "capacity"},
                          {"num_splits", "num_splits"}};
  ParameterBlockText text = parameterBlock(config, buffers, scalars, extents,
                                           scalarValues, "decode", "    ");
  values["decode_element_counts"] = text.counts;
  values["decode_buffer_descriptors"] = text.descriptors;
  values["decode_scalar_values"] = text.scalars;
  values["decode_parameter_pointers"] = text.pointers;
}

/// The training entries' parameter block from GPUKernelABI.def's training
/// lists (launch_training's parameters name every buffer and its count).
static void fillTrainingParameterBlock(const AttentionConfig &config,
                                       TemplateValues &values) {
  SmallVector<StringRef> buffers, scalars;
#define SQA_GPU_TRAINING_BUFFER(Name, cName) buffers.push_back(#cName);
#define SQA_GPU_TRAINING_SCALAR(Name, cName) scalars.push_back(#cName);
#include "sqa/Transforms/GPUKernelABI.def"
  ExtentMap extents = {
      {"q", {config.heads.query, "q_len", config.headDim}},
      {"k", {config.heads.kv, "kv_len", config.headDim}},
      {"v", {config.heads.kv, "kv_len", config.valueHeadDim}},
      {"out", {config.outputHeads(), "q_len", config.valueHeadDim}},
      {"d_out", {config.outputHeads(), "q_len", config.valueHeadDim}},
      {"dq", {config.heads.query, "q_len", config.headDim}},
      {"dk", {config.heads.kv, "kv_len", config.headDim}},
      {"dv", {config.heads.kv, "kv_len", config.valueHeadDim}}};
  TextMap scalarValues = {
      {"q_len", "q_len"},
      {"kv_len", "kv_len"},
      {"diagonal",
       config.alignment == MaskAlignment::BottomRight ? "kv_len - q_len" : "0"},
      // lse is [batch][OUT_HEADS][q_len] in every layout.
      {"lse_stride_batch", "TRAINING_OUT_HEADS * q_len"},
      {"lse_stride_head", "q_len"},
      {"lse_stride_pos", "1"}};
  // The template counts the training buffers itself (launch_training's
  // parameters): only the descriptors, scalars and pointers are used.
  ParameterBlockText text = parameterBlock(config, buffers, scalars, extents,
                                           scalarValues, "training", "  ");
  values["training_buffer_descriptors"] = text.descriptors;
  values["training_scalar_values"] = text.scalars;
  values["training_parameter_pointers"] = text.pointers;
}

static std::string generateLauncher(const AttentionConfig &config,
                                    const KernelLaunch &launch,
                                    const DecodeKernels &decode,
                                    ArrayRef<KernelLaunch> training,
                                    StringRef cubin) {
  TemplateValues values = {{"name", config.name},
                           {"chip", config.chip},
                           {"kernel_name", launch.name}};
  GPULaunchAttr geometry = launch.geometry;
  values["shared_memory_bytes"] =
      std::to_string(geometry.getSharedMemoryBytes());
  values["rows_per_block"] = std::to_string(geometry.getRowsPerBlock());
  values["head_blocks"] =
      std::to_string(geometry.getOutputHeads() / geometry.getHeadsPerBlock());
  values["threads"] = std::to_string(geometry.getThreads());
  values["pointer_alignment"] =
      config.elementKind == ElementKind::F32 ? "4" : "16";
  // The cubin as bytes, NUL-terminated (PTX is loaded as a C string).
  std::string bytes;
  llvm::raw_string_ostream os(bytes);
  for (size_t i = 0; i < cubin.size(); ++i)
    os << (i % 16 ? "" : "\n ")
       << static_cast<unsigned>(static_cast<unsigned char>(cubin[i])) << ",";
  os << "0";
  values["image_size"] = std::to_string(cubin.size() + 1);
  values["image_bytes"] = bytes;
  fillParameterBlock(config, values);
  std::string names = "  \"" + launch.name + "\",\n";
  std::string shared =
      "  " + std::to_string(geometry.getSharedMemoryBytes()) + ",\n";
  for (const KernelLaunch &kernel : decode.kernels) {
    names += "  \"" + kernel.name + "\",\n";
    shared +=
        "  " + std::to_string(kernel.geometry.getSharedMemoryBytes()) + ",\n";
  }
  // Training kernels after the decode ones: lse, dkdv, dq.
  values["training_first_kernel"] = std::to_string(1 + decode.kernels.size());
  for (const KernelLaunch &kernel : training) {
    names += "  \"" + kernel.name + "\",\n";
    shared +=
        "  " + std::to_string(kernel.geometry.getSharedMemoryBytes()) + ",\n";
  }
  GPULaunchAttr lse = training[0].geometry, dkdv = training[1].geometry,
                dq = training[2].geometry;
  values["lse_rows_per_block"] = std::to_string(lse.getRowsPerBlock());
  values["lse_head_blocks"] =
      std::to_string(lse.getOutputHeads() / lse.getHeadsPerBlock());
  values["lse_threads"] = std::to_string(lse.getThreads());
  values["lse_shared_memory_bytes"] =
      std::to_string(lse.getSharedMemoryBytes());
  values["backward_rows_per_block"] = std::to_string(dkdv.getRowsPerBlock());
  values["backward_threads"] = std::to_string(dkdv.getThreads());
  values["dkdv_shared_memory_bytes"] =
      std::to_string(dkdv.getSharedMemoryBytes());
  values["dq_shared_memory_bytes"] = std::to_string(dq.getSharedMemoryBytes());
  values["training_out_heads"] = std::to_string(config.outputHeads());
  values["kv_heads"] = std::to_string(config.heads.kv);
  values["q_heads"] = std::to_string(config.heads.query);
  fillTrainingParameterBlock(config, values);
  values["kernel_names"] = names;
  values["kernel_shared_bytes"] = shared;
  // Append, split and merge share one geometry but the split's shared
  // memory.
  GPULaunchAttr split = decode.kernels[0].geometry;
  values["decode_rows_per_block"] = std::to_string(split.getRowsPerBlock());
  values["decode_group"] = std::to_string(split.getHeadsPerBlock());
  values["decode_split_keys"] = std::to_string(decode.splitKeys);
  values["decode_shared_memory_bytes"] =
      std::to_string(split.getSharedMemoryBytes());
  values["decode_threads"] = std::to_string(split.getThreads());
  values["decode_kv_heads"] = std::to_string(config.heads.kv);
  values["decode_value_head_dim"] = std::to_string(config.valueHeadDim);
  fillDecodeParameterBlock(config, values);
  return fillTemplate("cuda-launcher.c.in", values) +
         fillTemplate("entry-decode-cuda.c.in", values) +
         fillTemplate("entry-training-cuda.c.in", values) +
         generateCommonEntries(config);
}

bool aot::compileCUDALibrary(ModuleOp module, const CodegenOptions &options,
                             const AttentionConfig &config,
                             StringRef outputPath, std::string &error) {
  SQACUDAPipelineOptions pipeline;
  pipeline.chip = config.chip;
  pipeline.toolkit = options.cudaToolkit;
  pipeline.format = options.emit == EmitKind::PTX ? "isa" : "bin";
  pipeline.kvBlock = options.gpuKVBlock;
  pipeline.headsPerBlock = options.gpuHeadsPerBlock;
  pipeline.rowsPerWarp = options.gpuRowsPerWarp;
  pipeline.backwardTensorCores = options.gpuBackwardTensorCores;

  PassManager kernelStage(module.getContext());
  buildCUDAKernelPipeline(kernelStage, pipeline);
  if (failed(kernelStage.run(module)))
    return fail(error, "lowering to a CUDA kernel failed");
  if (options.emit == EmitKind::MLIR) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module.print(os);
    return writeFile(outputPath, text, error);
  }
  std::optional<KernelLaunch> launch = findKernel(module);
  if (!launch || launch->geometry.getThreads() <= 0 ||
      launch->geometry.getRowsPerBlock() <= 0 ||
      launch->geometry.getHeadsPerBlock() <= 0 ||
      launch->geometry.getOutputHeads() % launch->geometry.getHeadsPerBlock())
    return fail(error, "expected one sqa-lower-attention-to-gpu kernel");
  std::optional<DecodeKernels> decode = findDecodeKernels(module, config.name);
  if (!decode)
    return fail(error, "expected the sqa-lower-decode-to-gpu kernels");
  std::optional<SmallVector<KernelLaunch>> training =
      findTrainingKernels(module);
  if (!training)
    return fail(error, "expected the forward-with-lse and "
                       "sqa-lower-attention-backward-to-gpu kernels");

  PassManager binaryStage(module.getContext());
  buildCUDABinaryPipeline(binaryStage, pipeline);
  if (failed(binaryStage.run(module)))
    return fail(error, "serializing the CUDA kernel failed (for a cubin, "
                       "ptxas must be on PATH or under --cuda-toolkit)");
  std::optional<std::string> object = binaryObject(module);
  if (!object)
    return fail(error, "expected one serialized kernel in gpu.binary");
  if (options.emit == EmitKind::PTX || options.emit == EmitKind::Cubin)
    return writeFile(outputPath, *object, error);

  ScratchDir scratch;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("sqa-aot", scratch.path))
    return fail(error, "cannot create a scratch directory: " + ec.message());
  SmallString<128> source(scratch.path), header(scratch.path);
  llvm::sys::path::append(source, "launcher.c");
  llvm::sys::path::append(header, config.name + ".h");
  if (!writeFile(header, generateHeader(config), error) ||
      !writeFile(source,
                 generateLauncher(config, *launch, *decode, *training, *object),
                 error))
    return false;
  std::string clang = findClang(options);
  if (clang.empty())
    return fail(error, "cannot find clang (install clang-22 or pass --clang)");
  SmallVector<std::string> args = {clang,
                                   "-shared",
                                   "-fPIC",
                                   "-O2",
                                   "-fuse-ld=lld",
                                   "-fvisibility=default",
                                   "-o",
                                   outputPath.str(),
                                   source.str().str(),
                                   "-I" + scratch.path.str().str(),
                                   "-ldl",
                                   "-lpthread"};
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int status = llvm::sys::ExecuteAndWait(clang, argRefs, std::nullopt, {}, 0, 0,
                                         &message);
  if (status != 0)
    return fail(error, "compiling the CUDA launcher with '" + clang +
                           "' failed" +
                           (message.empty() ? "" : ": " + message));
  return checkProduced(clang, outputPath, error);
}
