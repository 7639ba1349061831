//===- DriverSupport.h - Helpers shared by the AOT back ends ----*- C++ -*-===//
//
// Internal to lib/AOT: scratch directories, file output, finding clang, and
// the C entry points every generated library has.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_AOT_DRIVERSUPPORT_H
#define SQA_LIB_AOT_DRIVERSUPPORT_H

#include "sqa/AOT/AttentionLibrary.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"

#include <map>
#include <string>

namespace llvm {
class MCSubtargetInfo;
class Module;
} // namespace llvm

namespace mlir::sqa::aot {

/// A scratch directory removed on destruction.
struct ScratchDir {
  SmallString<128> path;
  ~ScratchDir();
};

/// Sets `error` and returns false.
bool fail(std::string &error, const Twine &message);
bool writeFile(StringRef path, StringRef contents, std::string &error);
/// Fails unless `tool` left a non-empty `path` (a compiler that exits 0
/// without output is a failed step).
bool checkProduced(StringRef tool, StringRef path, std::string &error);
/// `options.clang`, else clang next to LLVM's tools or on PATH; empty if
/// none.
std::string findClang(const CodegenOptions &options);

/// Values of a template's {{placeholders}}.
using TemplateValues = std::map<std::string, std::string, std::less<>>;
/// The embedded template `name` (a file name under lib/AOT/templates) with
/// every placeholder replaced by its value.
std::string fillTemplate(StringRef name, const TemplateValues &values);

/// `NAME_error_string` and `NAME_config` of a library for `config`, with the
/// CUDA status codes for CUDA libraries.
std::string generateCommonEntries(const AttentionConfig &config);

/// One instruction-set level a CPU library is compiled for (CPULevels.cpp).
struct CPULevel {
  /// The run-time name (NAME_config's cpu_level, SQA_CPU_LEVEL) and the
  /// suffix of the level's symbols.
  std::string name;
  /// LLVM CPU name and extra features ("+a,+b").
  std::string cpu, features;
  /// __builtin_cpu_supports names the CPU must have to run the level.
  SmallVector<std::string> checks;
};

/// The levels `--cpu` asks for: "all" (the default) gives avx512bf16,
/// avx512 and avx2, best first; a level name gives that level; anything
/// else ("native", an LLVM CPU name) one level of that name.
SmallVector<CPULevel> resolveCPULevels(StringRef cpu);
/// Fills `level.checks` from the features of its target.
void setCPULevelChecks(CPULevel &level, const llvm::MCSubtargetInfo &subtarget);
/// The prefix of the dispatch functions (`PREFIX_cpu_level`).
std::string cpuLevelSymbolPrefix(const AttentionConfig *config);
/// The C source that chooses the level once (CPUID, SQA_CPU_LEVEL) and,
/// with a configuration, `NAME_config` naming the level in use.
std::string generateDispatchSource(ArrayRef<CPULevel> levels,
                                   const AttentionConfig *config);
/// Gives the functions of one level's module the level's target attributes
/// and suffixes every public symbol with `_<level>` (hidden); collects the
/// original names of the public functions into `publicFunctions` if given.
void renameForCPULevel(llvm::Module &module, const CPULevel &level,
                       StringRef cpu, StringRef features,
                       SmallVectorImpl<std::string> *publicFunctions);
/// Adds, for each of `publicFunctions`, a trampoline of that name that
/// tail-calls the `<name>_<level>` function of the level in use.
void addCPUDispatch(llvm::Module &module, ArrayRef<std::string> publicFunctions,
                    ArrayRef<CPULevel> levels, StringRef prefix);

} // namespace mlir::sqa::aot

#endif // SQA_LIB_AOT_DRIVERSUPPORT_H
