//===- SQAOps.h - SQA operations --------------------------------*- C++ -*-===//

#ifndef SQA_IR_SQAOPS_H
#define SQA_IR_SQAOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/TilingInterface.h"

#include "SQA/IR/AttentionRules.h"
#include "SQA/IR/SQAAttrs.h"
#include "SQA/IR/SQADialect.h"

#define GET_OP_CLASSES
#include "SQA/IR/SQAOps.h.inc"

#endif // SQA_IR_SQAOPS_H
