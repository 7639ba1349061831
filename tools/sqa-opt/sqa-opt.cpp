//===- sqa-opt.cpp - sqa-mlir optimizer driver ----------------------------===//

#include "sqa/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

#ifdef SQA_INCLUDE_TESTS
// test/lib's passes: only the test build of this main (sqa-test-opt) has them.
namespace mlir::sqa::test {
void registerTestPasses();
} // namespace mlir::sqa::test
#endif

int main(int argc, char **argv) {
  mlir::sqa::registerAllPasses();
#ifdef SQA_INCLUDE_TESTS
  mlir::sqa::test::registerTestPasses();
#endif
  mlir::DialectRegistry registry;
  mlir::sqa::registerAllDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "sqa-mlir optimizer driver\n", registry));
}
