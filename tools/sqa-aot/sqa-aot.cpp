//===- sqa-aot.cpp - Compile a head configuration into a library ----------===//
//
// Option parsing only: lib/AOT (sqa/AOT/Driver.h) resolves, checks and runs.
//
//===----------------------------------------------------------------------===//

#include "sqa/AOT/Driver.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir::sqa;
namespace cl = llvm::cl;

static cl::OptionCategory category("sqa-aot options");

template <typename T> using Opt = cl::opt<T>;

static Opt<std::string> inputFile(cl::Positional, cl::desc("[input.mlir]"),
                                  cl::init(""), cl::cat(category));
static Opt<std::string>
    variant("variant",
            cl::desc("Head preset: mha, gqa, mqa, sqa, ssqa, xsqa, xsmqa, rsqa "
                     "(with --heads, and --groups for gqa)"),
            cl::cat(category));
static Opt<int64_t>
    totalHeads("heads",
               cl::desc("Baseline head count H (d_head = d_model / H)"),
               cl::cat(category));
static Opt<int64_t> groups("groups", cl::desc("Key/value heads for gqa"),
                           cl::cat(category));
static Opt<int64_t> queryHeads("q-heads", cl::desc("Query heads Hq"),
                               cl::cat(category));
static Opt<int64_t> kvHeads("kv-heads", cl::desc("Key/value heads Hkv"),
                            cl::cat(category));
static Opt<int64_t> headDim("head-dim", cl::desc("Head dimension D"),
                            cl::cat(category));
static Opt<int64_t>
    valueHeadDim("value-head-dim",
                 cl::desc("Value head dimension Dv (default: D)"),
                 cl::cat(category));
static Opt<std::string> dtype("dtype", cl::desc("f32, f16 or bf16"),
                              cl::init("f32"), cl::cat(category));
static Opt<std::string>
    causal("causal",
           cl::desc("Causal mask alignment: top-left (PyTorch is_causal) or "
                    "bottom-right (FlashAttention)"),
           cl::cat(category));
static Opt<std::string>
    window("window",
           cl::desc("Sliding window L,R around the diagonal (-1 = unbounded); "
                    "aligned as --causal, else top-left"),
           cl::cat(category));
static Opt<std::string>
    alignment("alignment",
              cl::desc("Window alignment without --causal: top-left or "
                       "bottom-right"),
              cl::cat(category));
static Opt<float> scale("scale", cl::desc("Softmax scale (1/sqrt(D))"),
                        cl::cat(category));
static Opt<std::string> layout("layout", cl::desc("bhsd (default) or bshd"),
                               cl::init("bhsd"), cl::cat(category));
static Opt<std::string>
    target("target",
           cl::desc("cpu (default) or cuda (an embedded cubin and a launcher "
                    "that loads the CUDA driver at run time)"),
           cl::init("cpu"), cl::cat(category));
static Opt<std::string>
    chip("chip", cl::desc("GPU architecture for --target cuda (sm_90)"),
         cl::init("sm_90"), cl::cat(category));
static Opt<int64_t>
    gpuKVBlock("gpu-kv-block",
               cl::desc("--target cuda: keys per shared-memory tile (64)"),
               cl::cat(category));
static Opt<int64_t> gpuHeadsPerBlock(
    "gpu-heads-per-block",
    cl::desc("--target cuda: output heads per thread block, 1, 2 or 4 (0: the "
             "largest dividing the heads per key/value head)"),
    cl::cat(category));
static Opt<int64_t> gpuRowsPerWarp(
    "gpu-rows-per-warp",
    cl::desc("--target cuda: query rows per warp, 16 (default) or 32"),
    cl::cat(category));
static Opt<std::string> gpuBackward(
    "gpu-backward",
    cl::desc("--target cuda: backward kernels, tensor-core (default: "
             "mma.sync for f16/bf16 with head dims multiples of 16 up to 128, "
             "SIMT otherwise) or simt"),
    cl::cat(category));
static Opt<int64_t> cpuQueryTile(
    "cpu-query-tile",
    cl::desc("CPU flash kernel: query rows per parallel tile of the forward (128)"),
    cl::cat(category));
static Opt<int64_t> cpuKVBlock(
    "cpu-kv-block",
    cl::desc("CPU flash kernel: keys per online-softmax block, a multiple of "
             "--cpu-nr x the vector width (64)"),
    cl::cat(category));
static Opt<int64_t> cpuMR("cpu-mr",
                          cl::desc("CPU flash kernel: rows per micro-kernel "
                                   "(6)"),
                          cl::cat(category));
static Opt<int64_t> cpuNR("cpu-nr",
                          cl::desc("CPU flash kernel: vectors per row per "
                                   "micro-kernel (2)"),
                          cl::cat(category));
static Opt<int64_t> cpuVectorWidth(
    "cpu-vector-width",
    cl::desc("CPU flash kernel: f32 lanes per vector, 4, 8 or 16 (default: "
             "16 where the CPU has AVX-512 and --cpu-kv-block allows, else "
             "8)"),
    cl::cat(category));
static Opt<std::string>
    cudaToolkit("cuda-toolkit",
                cl::desc("CUDA toolkit whose ptxas makes the cubin (default: "
                         "PATH, then /usr/local/cuda)"),
                cl::cat(category));
static Opt<std::string>
    cpu("cpu",
        cl::desc("all (default: avx512bf16, avx512 and avx2 kernels, chosen "
                 "by CPUID at the first call), one of those levels, native "
                 "or an LLVM CPU name"),
        cl::init("all"), cl::cat(category));
static Opt<std::string> name("name", cl::desc("Symbol prefix"),
                             cl::init("sqa_attention"), cl::cat(category));
static Opt<std::string> output("o", cl::desc("Output file"),
                               cl::value_desc("path"), cl::cat(category));
static Opt<std::string>
    emit("emit",
         cl::desc("mlir, llvm, asm, obj or so (default); with --target "
                  "cuda: mlir (GPU IR), ptx, cubin or so"),
         cl::init("so"), cl::cat(category));
static Opt<bool>
    printConfig("print-config",
                cl::desc("Print the resolved configuration, parameter counts "
                         "and FLOPs per token, then exit"),
                cl::cat(category));
static Opt<bool> layer("layer",
                       cl::desc("Compile the whole attention layer "
                                "(projections, RoPE, attention, output)"),
                       cl::cat(category));
static Opt<bool>
    crossAttention("cross-attention",
                   cl::desc("Layer keys and values come from a memory input"),
                   cl::cat(category));
static Opt<std::string>
    rope("rope", cl::desc("Layer RoPE: rotary, linear or dynamic-ntk"),
         cl::cat(category));
static Opt<double> ropeBase("rope-base", cl::desc("RoPE base (10000)"),
                            cl::init(10000.0), cl::cat(category));
static Opt<double> ropeFactor("rope-factor",
                              cl::desc("RoPE scaling factor (1)"),
                              cl::init(1.0), cl::cat(category));
static Opt<int64_t>
    ropeOriginalMax("rope-original-max",
                    cl::desc("Trained context of dynamic-ntk RoPE (2048)"),
                    cl::init(2048), cl::cat(category));
static Opt<int64_t> ropeOffset("rope-offset",
                               cl::desc("Position of the first token (0)"),
                               cl::init(0), cl::cat(category));
static Opt<bool>
    ropeQueriesOnly("rope-queries-only",
                    cl::desc("RoPE on queries only (cross-attention)"),
                    cl::cat(category));
static Opt<std::string> bias("bias", cl::desc("Layer biases, any of q,k,v,o"),
                             cl::cat(category));
static Opt<int64_t>
    numLayers("layers",
              cl::desc("With --print-config: also count a model of N layers"),
              cl::cat(category));
static Opt<std::string>
    kernel("kernel",
           cl::desc("flash (default: tiled, vectorized, multi-threaded) or "
                    "reference (naive oracle, S x T memory)"),
           cl::init("flash"), cl::cat(category));
static Opt<std::string> clang("clang",
                              cl::desc("clang used to link the library"),
                              cl::cat(category));

/// The value of an option if it was given.
template <typename T> static std::optional<T> given(const cl::opt<T> &option) {
  return option.getNumOccurrences() ? std::optional<T>(option) : std::nullopt;
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
  // cl::opt keeps the last of repeated options; a repeated one is a mistake.
  for (cl::Option *option : llvm::make_second_range(cl::getRegisteredOptions()))
    if (llvm::is_contained(option->Categories, &category) &&
        option->getNumOccurrences() > 1) {
      llvm::errs() << "sqa-aot: error: "
                   << (option->isPositional() ? "more than one input file"
                                              : "--" + option->ArgStr.str() +
                                                    " is given more than once")
                   << "\n";
      return 1;
    }

  aot::DriverOptions options;
  options.inputFile = inputFile;
  options.variant = variant;
  options.heads = given(totalHeads);
  options.groups = given(groups);
  options.queryHeads = given(queryHeads);
  options.kvHeads = given(kvHeads);
  options.headDim = given(headDim);
  options.valueHeadDim = given(valueHeadDim);
  options.dtype = dtype;
  options.causal = causal;
  options.window = window;
  options.alignment = alignment;
  options.scale = given(scale);
  options.layout = layout;
  options.target = target;
  options.chip = chip;
  options.gpuKVBlock = given(gpuKVBlock);
  options.gpuHeadsPerBlock = given(gpuHeadsPerBlock);
  options.gpuRowsPerWarp = given(gpuRowsPerWarp);
  options.gpuBackward = given(gpuBackward);
  options.cpuQueryTile = given(cpuQueryTile);
  options.cpuKVBlock = given(cpuKVBlock);
  options.cpuMR = given(cpuMR);
  options.cpuNR = given(cpuNR);
  options.cpuVectorWidth = given(cpuVectorWidth);
  options.cudaToolkit = cudaToolkit;
  options.cpu = cpu;
  options.name = name;
  options.output = output;
  options.emit = emit;
  options.printConfig = printConfig;
  options.layer = layer;
  options.crossAttention = crossAttention;
  options.rope = rope;
  options.ropeBase = ropeBase;
  options.ropeFactor = ropeFactor;
  options.ropeOriginalMax = ropeOriginalMax;
  options.ropeOffset = ropeOffset;
  options.ropeQueriesOnly = ropeQueriesOnly;
  options.bias = bias;
  options.layers = given(numLayers);
  options.kernel = kernel;
  options.clang = clang;
  return aot::runDriver(options, llvm::outs(), llvm::errs());
}
