#include "flowrun/controller/actions.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string Describe(const Action& a) {
  struct V {
    std::string operator()(const CreateJob& x) const { return "CreateJob(" + x.name + ")"; }
    std::string operator()(const DeleteJob& x) const { return "DeleteJob(" + x.name + ", " + x.propagation_policy + ")"; }
    std::string operator()(const PatchStatus& x) const { return "PatchStatus(" + Dump(x.patch) + ")"; }
    std::string operator()(const AddFinalizer& x) const { return "AddFinalizer(" + x.finalizer + ")"; }
    std::string operator()(const RemoveFinalizer& x) const { return "RemoveFinalizer(" + x.finalizer + ")"; }
    std::string operator()(const RecordAnswer& x) const {
      return "RecordAnswer(" + x.wait + ", " + Dump(x.answer) + ", " + x.answered_by + ")";
    }
    std::string operator()(const SetBudget& x) const {
      return "SetBudget(" + (x.usd ? json(*x.usd).dump() : std::string("none")) + ")";
    }
    std::string operator()(const ExpireWait& x) const { return "ExpireWait(" + FormatTime(x.now) + ")"; }
    std::string operator()(const CancelRun& x) const { return "CancelRun(" + x.reason + ")"; }
    std::string operator()(const DeleteRunRows&) const { return "DeleteRunRows"; }
    std::string operator()(const DeleteFlowRun&) const { return "DeleteFlowRun"; }
    std::string operator()(const Event& x) const { return "Event(" + x.type + " " + x.reason + ": " + x.message + ")"; }
    std::string operator()(const SetLabel& x) const { return "SetLabel(" + x.key + "=" + x.value + ")"; }
    std::string operator()(const PrepareReplay&) const { return "PrepareReplay"; }
    std::string operator()(const RequeueAfter& x) const {
      return "RequeueAfter(" + std::to_string(x.after.count()) + "ms)";
    }
  };
  return std::visit(V{}, a);
}

}  // namespace flowrun::controller
