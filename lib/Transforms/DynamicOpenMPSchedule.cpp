//===- DynamicOpenMPSchedule.cpp - Balance tiles of unequal work ----------===//

#include "sqa/Transforms/Passes.h"

namespace mlir::sqa {
#define GEN_PASS_DEF_DYNAMICOPENMPSCHEDULE
#include "sqa/Transforms/Passes.h.inc"
} // namespace mlir::sqa

using namespace mlir;

namespace {
struct DynamicOpenMPSchedulePass
    : public sqa::impl::DynamicOpenMPScheduleBase<DynamicOpenMPSchedulePass> {
  void runOnOperation() override {
    auto dynamic = omp::ClauseScheduleKindAttr::get(
        &getContext(), omp::ClauseScheduleKind::Dynamic);
    getOperation()->walk([&](omp::WsloopOp loop) {
      if (!loop.getScheduleKindAttr())
        loop.setScheduleKindAttr(dynamic);
    });
  }
};
} // namespace
