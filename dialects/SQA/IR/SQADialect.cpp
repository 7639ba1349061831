//===- SQADialect.cpp - SQA dialect ---------------------------------------===//

#include "SQA/IR/SQADialect.h"
#include "SQA/IR/SQAAttrs.h"
#include "SQA/IR/SQAOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::sqa;

#include "SQA/IR/SQAOpsDialect.cpp.inc"

void SQADialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "SQA/IR/SQAOps.cpp.inc"
      >();
  registerAttributes();
}
