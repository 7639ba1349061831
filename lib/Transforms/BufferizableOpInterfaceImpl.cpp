//===- BufferizableOpInterfaceImpl.cpp - Bufferizing sqa ops --------------===//

#include "sqa/Transforms/BufferizableOpInterfaceImpl.h"

#include "SQA/IR/SQAOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::bufferization;

namespace {
/// sqa.attention and sqa.attention_backward: every init is only written, and
/// the buffer form is the same op on memrefs without results.
template <typename OpTy>
struct AttentionOpInterface
    : public DstBufferizableOpInterfaceExternalModel<AttentionOpInterface<OpTy>,
                                                     OpTy> {
  // The destination is only written: its old contents need no copy.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &state) const {
    return !cast<DestinationStyleOpInterface>(op).isDpsInit(&operand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto dps = cast<DestinationStyleOpInterface>(op);
    SmallVector<Value> operands;
    for (Value operand : op->getOperands()) {
      if (!isa<TensorType>(operand.getType())) {
        operands.push_back(operand);
        continue;
      }
      FailureOr<Value> buffer = getBuffer(rewriter, operand, options, state);
      if (failed(buffer))
        return failure();
      operands.push_back(*buffer);
    }
    SmallVector<Value> initBuffers;
    for (OpOperand &init : dps.getDpsInitsMutable())
      initBuffers.push_back(operands[init.getOperandNumber()]);
    rewriter.setInsertionPoint(op);
    mlir::clone(rewriter, op, TypeRange{}, operands);
    replaceOpWithBufferizedValues(rewriter, op, initBuffers);
    return success();
  }
};
} // namespace

void mlir::sqa::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, sqa::SQADialect *) {
    sqa::AttentionOp::attachInterface<AttentionOpInterface<sqa::AttentionOp>>(
        *context);
    sqa::AttentionBackwardOp::attachInterface<
        AttentionOpInterface<sqa::AttentionBackwardOp>>(*context);
  });
}
