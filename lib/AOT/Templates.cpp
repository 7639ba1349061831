//===- Templates.cpp - The C templates of generated libraries -------------===//
//
// Triton's scheme: C sources are template files (lib/AOT/templates/*.in)
// with named {{placeholders}}, filled from a map. Optional parts are
// separate templates filled into a placeholder of the main one. The files
// are embedded at build time (EmbedTemplates.cmake -> Templates.inc).
//
//===----------------------------------------------------------------------===//

#include "DriverSupport.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ErrorHandling.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

namespace {
struct Template {
  const char *name;
  const char *text;
};
} // namespace

static const Template templates[] = {
#include "Templates.inc"
};

static bool isPlaceholderChar(char c) {
  return llvm::isLower(c) || llvm::isDigit(c) || c == '_';
}

std::string aot::fillTemplate(StringRef name, const TemplateValues &values) {
  const Template *found = llvm::find_if(
      templates, [&](const Template &t) { return name == t.name; });
  // Templates and their callers ship together: a mismatch is a bug.
  if (found == std::end(templates))
    llvm::report_fatal_error("sqa-aot: no template '" + name + "'");
  StringRef text = found->text;
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    size_t open = text.find("{{");
    if (open == StringRef::npos)
      break;
    StringRef key = text.substr(open + 2).take_while(isPlaceholderChar);
    if (key.empty() || !text.substr(open + 2 + key.size()).starts_with("}}")) {
      // Not a placeholder (e.g. a brace of C code): keep one character.
      out += text.take_front(open + 1);
      text = text.drop_front(open + 1);
      continue;
    }
    auto value = values.find(key);
    if (value == values.end())
      llvm::report_fatal_error("sqa-aot: template '" + name +
                               "' has no value for {{" + key + "}}");
    out += text.take_front(open);
    out += value->second;
    text = text.drop_front(open + 2 + key.size() + 2);
  }
  out += text;
  return out;
}
