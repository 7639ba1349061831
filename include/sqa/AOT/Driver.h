//===- Driver.h - sqa-aot's command line, resolved and run ------*- C++ -*-===//
//
// Everything sqa-aot does after parsing its command line: resolving presets
// and knobs into an AttentionConfig and CodegenOptions (with every value
// checked against the limits below), the --print-config report, and writing
// the library and its header atomically. tools/sqa-aot only parses options.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_AOT_DRIVER_H
#define SQA_AOT_DRIVER_H

#include "sqa/AOT/AttentionLibrary.h"

#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>

namespace mlir::sqa::aot {

/// sqa-aot's options as given on the command line, before resolution.
/// Integers not given are std::nullopt; strings not given are empty or hold
/// the documented default.
struct DriverOptions {
  std::string inputFile;
  std::string variant;
  std::optional<int64_t> heads, groups, queryHeads, kvHeads, headDim,
      valueHeadDim;
  std::string dtype = "f32";
  std::string causal, window, alignment;
  std::optional<float> scale;
  std::string layout = "bhsd";
  std::string target = "cpu";
  std::string chip = "sm_90";
  std::optional<int64_t> gpuKVBlock, gpuHeadsPerBlock, gpuRowsPerWarp;
  /// "tensor-core" or "simt" (--gpu-backward).
  std::optional<std::string> gpuBackward;
  std::optional<int64_t> cpuQueryTile, cpuKVBlock, cpuMR, cpuNR, cpuVectorWidth;
  std::string cudaToolkit;
  std::string cpu = "all";
  std::string name = "sqa_attention";
  std::string output;
  std::string emit = "so";
  bool printConfig = false;
  bool layer = false, crossAttention = false;
  std::string rope;
  double ropeBase = 10000.0, ropeFactor = 1.0;
  int64_t ropeOriginalMax = 2048, ropeOffset = 0;
  bool ropeQueriesOnly = false;
  std::string bias;
  std::optional<int64_t> layers;
  std::string kernel = "flash";
  std::string clang;
};

/// Resolves the head configuration (presets, explicit counts, mask, layer)
/// and validates it. Returns an error message, or an empty string.
std::string resolveConfig(const DriverOptions &options,
                          AttentionConfig &config);

/// Resolves the code generation options (--emit, --kernel, CPU and GPU
/// knobs). Returns an error message, or an empty string.
std::string resolveCodegenOptions(const DriverOptions &options,
                                  CodegenOptions &codegen);

/// Writes --print-config's report: the configuration, d_model, parameter
/// counts and FLOPs, with `layers` layers if given. Every product is
/// checked; returns an error message (and writes nothing) on overflow.
std::string printConfiguration(const AttentionConfig &config,
                               std::optional<int64_t> layers,
                               llvm::raw_ostream &os);

/// Runs sqa-aot: messages go to `errs` as "sqa-aot: error: ...". Returns
/// the process exit code.
int runDriver(const DriverOptions &options, llvm::raw_ostream &outs,
              llvm::raw_ostream &errs);

} // namespace mlir::sqa::aot

#endif // SQA_AOT_DRIVER_H
