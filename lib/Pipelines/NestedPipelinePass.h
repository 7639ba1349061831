//===- NestedPipelinePass.h - Passes that run a built pipeline ------------===//
//
// --sqa-cpu-pipeline and --sqa-cuda-pipeline are passes whose TableGen
// options fill an options struct, from which a builder (shared with sqa-aot)
// makes a nested pipeline. This is their one body: verify the options,
// declare the nested pipeline's dialects, run it.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_LIB_PIPELINES_NESTEDPIPELINEPASS_H
#define SQA_LIB_PIPELINES_NESTEDPIPELINEPASS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"

#include <string>

namespace mlir::sqa {

/// `Derived` provides `Options getOptions() const` from its TableGen options.
template <typename Derived, typename GeneratedBase, typename Options,
          void (*build)(OpPassManager &, const Options &),
          std::string (*verify)(const Options &)>
struct NestedPipelinePass : public GeneratedBase {
  using GeneratedBase::GeneratedBase;

  // The nested pipeline's dialects must be loaded before this pass runs,
  // since a running pass may not load dialects.
  void getDependentDialects(DialectRegistry &registry) const override {
    OpPassManager pm(ModuleOp::getOperationName());
    build(pm, options());
    pm.getDependentDialects(registry);
  }

  void runOnOperation() override {
    if (std::string error = verify(options()); !error.empty()) {
      emitError(this->getOperation()->getLoc()) << error;
      return this->signalPassFailure();
    }
    OpPassManager pm(ModuleOp::getOperationName());
    build(pm, options());
    if (failed(this->runPipeline(pm, this->getOperation())))
      this->signalPassFailure();
  }

private:
  Options options() const {
    return static_cast<const Derived *>(this)->getOptions();
  }
};

} // namespace mlir::sqa

#endif // SQA_LIB_PIPELINES_NESTEDPIPELINEPASS_H
