//===- TestPasses.cpp - Register sqa-mlir's test passes -------------------===//
//
// The hook that sqa-opt's main calls when built as sqa-test-opt
// (SQA_INCLUDE_TESTS), as upstream mlir-opt registers test/lib's passes.
//
//===----------------------------------------------------------------------===//

namespace mlir::sqa::test {
void registerEmulateGPUKernelsPass();

void registerTestPasses() { registerEmulateGPUKernelsPass(); }
} // namespace mlir::sqa::test
