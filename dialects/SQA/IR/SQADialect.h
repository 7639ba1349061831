//===- SQADialect.h - SQA dialect -------------------------------*- C++ -*-===//

#ifndef SQA_IR_SQADIALECT_H
#define SQA_IR_SQADIALECT_H

#include "mlir/IR/Dialect.h"

#include "SQA/IR/SQAOpsDialect.h.inc"

#endif // SQA_IR_SQADIALECT_H
