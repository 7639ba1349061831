//===- DriverSupport.cpp - Helpers shared by the AOT back ends ------------===//

#include "DriverSupport.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

ScratchDir::~ScratchDir() {
  if (!path.empty())
    llvm::sys::fs::remove_directories(path);
}

bool aot::fail(std::string &error, const Twine &message) {
  error = message.str();
  return false;
}

bool aot::writeFile(StringRef path, StringRef contents, std::string &error) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return fail(error, "cannot write '" + path + "': " + ec.message());
  os << contents;
  os.close();
  if (os.has_error())
    return fail(error, "cannot write '" + path + "': " + os.error().message());
  return true;
}

bool aot::checkProduced(StringRef tool, StringRef path, std::string &error) {
  uint64_t size = 0;
  if (llvm::sys::fs::file_size(path, size) || size == 0)
    return fail(error,
                "'" + tool + "' exited successfully but wrote no output");
  return true;
}

std::string aot::findClang(const CodegenOptions &options) {
  if (!options.clang.empty())
    return options.clang;
  for (const char *candidate : {"clang", "clang-22"})
    if (auto path =
            llvm::sys::findProgramByName(candidate, {SQA_LLVM_TOOLS_DIR}))
      return *path;
  if (auto path = llvm::sys::findProgramByName("clang-22"))
    return *path;
  return {};
}
