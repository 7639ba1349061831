//===- sqa-aot-unittests.cpp - Unit tests of lib/AOT's driver -------------===//
//
// Calls the driver library directly (no process, no compiler): each case
// prints "PASS name" or "FAIL name: why"; driver-unit.test checks the lines.
//
//===----------------------------------------------------------------------===//

#include "sqa/AOT/Driver.h"

#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mlir::sqa;
using namespace mlir::sqa::aot;

static int failures = 0;

static void expect(bool ok, llvm::StringRef name, const std::string &why) {
  if (ok) {
    llvm::outs() << "PASS " << name << "\n";
    return;
  }
  ++failures;
  llvm::outs() << "FAIL " << name << ": " << why << "\n";
}

/// Resolves `options`; expects `error` (empty: success) and returns the
/// configuration.
static AttentionConfig resolve(llvm::StringRef name,
                               const DriverOptions &options,
                               llvm::StringRef error = "") {
  AttentionConfig config;
  std::string got = resolveConfig(options, config);
  expect(got == error, name,
         "expected error '" + error.str() + "', got '" + got + "'");
  return config;
}

static DriverOptions preset(llvm::StringRef variant, int64_t heads,
                            int64_t headDim) {
  DriverOptions options;
  options.variant = variant.str();
  options.heads = heads;
  options.headDim = headDim;
  return options;
}

static void testPresets() {
  AttentionConfig sqa = resolve("preset-sqa", preset("sqa", 16, 16));
  expect(sqa.heads.total == 16 && sqa.heads.query == 8 && sqa.heads.kv == 4,
         "preset-sqa-heads", sqa.describe());
  expect(sqa.valueHeadDim == 16, "value-head-dim-defaults-to-head-dim",
         sqa.describe());

  DriverOptions gqa = preset("gqa", 16, 8);
  gqa.groups = 4;
  AttentionConfig g = resolve("preset-gqa", gqa);
  expect(g.heads.query == 16 && g.heads.kv == 4, "preset-gqa-heads",
         g.describe());

  DriverOptions explicitHeads;
  explicitHeads.queryHeads = 2;
  explicitHeads.kvHeads = 8;
  explicitHeads.headDim = 8;
  AttentionConfig reverse = resolve("explicit-reverse", explicitHeads);
  expect(reverse.heads.total == 8 && reverse.outputHeads() == 8,
         "explicit-reverse-total", reverse.describe());
}

static void testErrors() {
  DriverOptions options = preset("mha", 4, 16);
  options.valueHeadDim = 0;
  resolve("value-head-dim-zero", options,
          "--value-head-dim must be a positive integer, got 0");

  options = preset("mha", 4, 16);
  options.heads = int64_t(1) << 62;
  resolve("heads-limit", options,
          "--heads must be in [1, 65535], got 4611686018427387904");

  options = preset("mha", 4, kMaxHeadDim + 1);
  resolve("head-dim-limit", options,
          "head dims of at most 65536 are supported, got 65537 and 65537");

  options = preset("mha", 4, kMaxHeadDim);
  resolve("head-dim-at-limit", options);

  options = preset("mha", 4, 16);
  options.window = "3,x";
  resolve("window-syntax", options,
          "--window expects L,R with integers, got "
          "'3,x'");

  options = preset("mha", 4, 16);
  options.target = "cuda";
  options.chip = "sm_100";
  resolve("chip", options,
          "unsupported --chip 'sm_100'; expected one of sm_80, sm_86, sm_87, "
          "sm_89, sm_90, sm_90a");
}

static void testCodegenOptions() {
  auto check = [](llvm::StringRef name, DriverOptions options,
                  llvm::StringRef error) {
    CodegenOptions codegen;
    std::string got = resolveCodegenOptions(options, codegen);
    expect(got == error, name,
           "expected '" + error.str() + "', got '" + got + "'");
    return codegen;
  };
  DriverOptions cpu = preset("mha", 4, 16);
  cpu.cpuQueryTile = 5;
  cpu.cpuKVBlock = 16;
  CodegenOptions codegen = check("cpu-knobs", cpu, "");
  expect(codegen.cpuQueryTile == 5 && codegen.cpuKVBlock == 16 &&
             !codegen.cpuMR && !codegen.cpuNR,
         "cpu-knobs-passed", "knobs not carried to CodegenOptions");
  cpu.cpuMR = 0;
  check("cpu-mr-zero", cpu, "--cpu-mr must be in [1, 16], got 0");

  DriverOptions gpu = preset("mha", 4, 16);
  gpu.target = "cuda";
  gpu.gpuHeadsPerBlock = 3;
  check("gpu-heads-per-block", gpu,
        "--gpu-heads-per-block must be 0 (automatic), 1, 2 or 4, got 3");
  gpu.gpuHeadsPerBlock = 0;
  gpu.gpuRowsPerWarp = 32;
  codegen = check("gpu-knobs", gpu, "");
  expect(codegen.gpuRowsPerWarp == 32 && codegen.gpuKVBlock == 64,
         "gpu-knobs-passed", "knobs not carried to CodegenOptions");
  gpu.emit = "obj";
  check("emit-obj-cuda", gpu,
        "--emit obj is for --target cpu; with --target cuda use mlir, ptx, "
        "cubin or so");
}

static void testPrintConfig() {
  // The SQA paper's MHA baseline: 4 x 256 x 256 weights.
  AttentionConfig mha = resolve("print-mha", preset("mha", 16, 16));
  std::string text;
  llvm::raw_string_ostream os(text);
  std::string error = printConfiguration(mha, 8, os);
  expect(error.empty(), "print-mha-ok", error);
  expect(text.find("attention parameters per layer (no biases): 262144 (W_q "
                   "65536, W_k 65536, W_v 65536, W_o 65536)") !=
                 std::string::npos &&
             text.find("projection FLOPs per token: 524288") !=
                 std::string::npos &&
             text.find("attention FLOPs per query token and key: 1024") !=
                 std::string::npos &&
             text.find("(8 layers, no biases): 2097152") != std::string::npos,
         "print-mha-counts", text);

  // Within the limits, yet W_q alone has 2^32 x 2^32 entries.
  AttentionConfig huge =
      resolve("print-huge", preset("mha", kMaxLibraryHeads, kMaxHeadDim));
  text.clear();
  error = printConfiguration(huge, std::nullopt, os);
  expect(error == "--print-config: the parameter or FLOP counts of this "
                  "configuration overflow int64" &&
             text.empty(),
         "print-overflow", error + " / " + text);

  text.clear();
  error = printConfiguration(mha, int64_t(0), os);
  expect(error == "--layers must be in [1, 1048576], got 0", "print-layers",
         error);
}

static void testDescribe() {
  DriverOptions options = preset("mha", 4, 16);
  options.window = "3,1";
  options.alignment = "bottom-right";
  AttentionConfig config = resolve("describe-window", options);
  expect(config.describe().find("causal=none window=3,1 "
                                "alignment=bottom_right") != std::string::npos,
         "describe-alignment", config.describe());
  AttentionConfig plain = resolve("describe-plain", preset("mha", 4, 16));
  expect(plain.describe().find("alignment") == std::string::npos,
         "describe-no-mask", plain.describe());
}

/// The C sources come from templates: every placeholder is filled, and
/// the optional pieces appear exactly where the configuration has them.
static void testCSources() {
  DriverOptions cpu = preset("gqa", 8, 16);
  cpu.groups = 2;
  cpu.name = "g8";
  AttentionConfig config = resolve("c-cpu", cpu);
  std::string header = generateHeader(config),
              entry = generateEntryLayer(config);
  expect(header.find("{{") == std::string::npos &&
             entry.find("{{") == std::string::npos,
         "c-cpu-filled", header + entry);
  expect(header.find("#define G8_KV_HEADS 2\n") != std::string::npos &&
             header.find("int64_t batch, int64_t q_len, int64_t kv_len);") !=
                 std::string::npos &&
             header.find("_last_error") == std::string::npos,
         "c-cpu-header", header);
  expect(entry.find("view(&mk, k, batch, 2, kv_len, 16, &bk)") !=
             std::string::npos,
         "c-cpu-entry", entry);

  DriverOptions cuda = cpu;
  cuda.target = "cuda";
  cuda.dtype = "bf16";
  header = generateHeader(resolve("c-cuda", cuda));
  expect(header.find("{{") == std::string::npos &&
             header.find("const char *g8_last_error(void);") !=
                 std::string::npos &&
             header.find("16-byte aligned") != std::string::npos &&
             header.find("CUDA library for sm_90") != std::string::npos,
         "c-cuda-header", header);

  DriverOptions layer = cpu;
  layer.layer = true;
  layer.crossAttention = true;
  layer.bias = "k,o";
  config = resolve("c-layer", layer);
  header = generateHeader(config);
  entry = generateEntryLayer(config);
  expect(header.find("{{") == std::string::npos &&
             entry.find("{{") == std::string::npos,
         "c-layer-filled", header + entry);
  expect(header.find("#define G8_D_MODEL 128") != std::string::npos,
         "c-layer-header", header);
  // NAME_layer_forward, before the backward and decode entries.
  std::string forward = entry.substr(0, entry.find("int g8_layer_backward("));
  expect(forward.find("memref1 *, memref1 *, memref3 *);") !=
                 std::string::npos &&
             forward.find("b_q = NULL;") != std::string::npos &&
             forward.find("b_k = NULL;") == std::string::npos &&
             forward.find("|| !memory || !b_k || !b_o)") != std::string::npos &&
             forward.find("mem_len <= 0") != std::string::npos &&
             forward.find("_kernel(&mx, &mm, &mw_q, &mw_k, &mw_v, &mw_o, "
                          "&mb_k, &mb_o, &mo);") != std::string::npos,
         "c-layer-entry", entry);
  // Cross-attention without RoPE: a decode step that ignores the key/value
  // weights, and the memory's K/V with the configured b_k.
  std::string decode = entry.substr(entry.find("g8_layer_decode("));
  expect(header.find("int g8_layer_decode(") != std::string::npos &&
             header.find("int g8_layer_memory_kv(") != std::string::npos &&
             decode.find("w_k = NULL;") != std::string::npos &&
             decode.find("_layer_decode_kernel(&m_x_new, &m_w_q, &m_w_o, "
                         "&m_b_o, &m_k_cache, &m_v_cache, &m_cache_lens, "
                         "&m_y);") != std::string::npos &&
             decode.find("_layer_memory_kv_kernel(&m_memory, &m_w_k, "
                         "&m_w_v, &m_b_k, &m_k_cache, &m_v_cache);") !=
                 std::string::npos &&
             decode.find("mem_len > capacity") != std::string::npos,
         "c-layer-decode-entry", decode);
}

int main() {
  testPresets();
  testErrors();
  testCodegenOptions();
  testPrintConfig();
  testDescribe();
  testCSources();
  llvm::outs() << (failures ? "FAIL" : "PASS") << " failures=" << failures
               << "\n";
  return failures ? 1 : 0;
}
