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

} // namespace mlir::sqa::aot

#endif // SQA_LIB_AOT_DRIVERSUPPORT_H
