//===- sqa-opt.cpp - sqa-mlir optimizer driver ----------------------------===//

#include "sqa/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::sqa::registerAllPasses();
  mlir::DialectRegistry registry;
  mlir::sqa::registerAllDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "sqa-mlir optimizer driver\n", registry));
}
