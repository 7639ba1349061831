//===- BufferizableOpInterfaceImpl.h - Bufferizing sqa ops ------*- C++ -*-===//

#ifndef SQA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
#define SQA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;
namespace sqa {
/// Lets one-shot bufferization turn tensor sqa.attention into its memref form.
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);
} // namespace sqa
} // namespace mlir

#endif // SQA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
