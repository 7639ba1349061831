//===- InitAll.h - Register sqa-mlir's dialects and passes ------*- C++ -*-===//

#ifndef SQA_INITALL_H
#define SQA_INITALL_H

namespace mlir {
class DialectRegistry;
namespace sqa {

/// Adds the sqa dialect and the upstream dialects (with their interface
/// models, e.g. bufferization) that sqa-mlir's pipelines produce or accept.
void registerAllDialects(DialectRegistry &registry);

/// Registers sqa-mlir's passes and named pipelines with the global registry.
void registerAllPasses();

} // namespace sqa
} // namespace mlir

#endif // SQA_INITALL_H
