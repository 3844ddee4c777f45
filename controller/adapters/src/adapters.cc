#include "flowrun/controller/adapters.h"

#include "flowrun/controller/replay.h"

#include <algorithm>
#include <type_traits>
#include <variant>

#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"
#include "flowrun/kube/informer.h"

namespace flowrun::controller {
namespace {

using nlohmann::json;

// The existing Job is controlled by the FlowRun with `uid`.
bool ControlledBy(const json& job, const std::string& uid) {
  if (!job.is_object() || !job.contains("metadata")) return false;
  const json& md = job["metadata"];
  if (!md.contains("ownerReferences") || !md["ownerReferences"].is_array()) return false;
  for (const auto& ref : md["ownerReferences"]) {
    if (ref.value("uid", "") == uid && ref.value("controller", false)) return true;
  }
  return false;
}

// Keeps the FlowRun's resourceVersion (and finalizers) current after a
// patch of the FlowRun itself, so a later finalizer patch is not stale.
void Refresh(json& flowrun, const json& updated) {
  if (!updated.is_object() || !updated.contains("metadata")) return;
  const json& md = updated["metadata"];
  if (md.contains("resourceVersion")) flowrun["metadata"]["resourceVersion"] = md["resourceVersion"];
  if (md.contains("finalizers"))
    flowrun["metadata"]["finalizers"] = md["finalizers"];
  else
    flowrun["metadata"].erase("finalizers");
}

}  // namespace

void ActionExecutor::Warn(const json& flowrun, const std::string& reason, const std::string& message) {
  if (events_) events_->Record(flowrun, kube::EventType::kWarning, reason, message);
}

Status ActionExecutor::PatchFinalizers(json& flowrun, const std::string& finalizer, bool add) {
  std::vector<std::string> fins;
  const json& md = flowrun["metadata"];
  if (md.contains("finalizers") && md["finalizers"].is_array())
    for (const auto& f : md["finalizers"])
      if (f.is_string()) fins.push_back(f.get<std::string>());
  bool has = std::find(fins.begin(), fins.end(), finalizer) != fins.end();
  if (add == has) return Status();
  if (add)
    fins.push_back(finalizer);
  else
    fins.erase(std::remove(fins.begin(), fins.end(), finalizer), fins.end());
  json patch = {{"metadata", {{"finalizers", fins}, {"resourceVersion", JsonString(flowrun, "metadata", "resourceVersion")}}}};
  auto r = kube_->MergePatch(kube::resources::FlowRuns(), JsonString(flowrun, "metadata", "namespace"),
                             JsonString(flowrun, "metadata", "name"), patch, /*status=*/false);
  if (!r.ok()) {
    // Removing the finalizer of an object that is already gone is done.
    if (!add && kube::IsNotFound(r.status())) return Status();
    return r.status();
  }
  Refresh(flowrun, *r);
  return Status();
}

Status ActionExecutor::PatchLabel(json& flowrun, const std::string& key, const std::string& value) {
  json patch = {{"metadata",
                 {{"labels", {{key, value}}}, {"resourceVersion", JsonString(flowrun, "metadata", "resourceVersion")}}}};
  auto r = kube_->MergePatch(kube::resources::FlowRuns(), JsonString(flowrun, "metadata", "namespace"),
                             JsonString(flowrun, "metadata", "name"), patch, /*status=*/false);
  if (!r.ok()) return r.status();
  Refresh(flowrun, *r);
  return Status();
}

Status ActionExecutor::Prepare(json& flowrun, RunAdmin* admin) {
  auto view = ParseFlowRun(flowrun);
  if (!view.ok()) return view.status();
  if (!view->spec.replay) return Status();
  const ReplaySpec& rs = *view->spec.replay;
  const std::string ns = JsonString(flowrun, "metadata", "namespace");
  // The source, live (not from a cache: its uid is what the pin checks).
  std::optional<json> source;
  auto got = kube_->Get(kube::resources::FlowRuns(), ns, rs.run);
  if (got.ok()) source = std::move(*got);
  else if (!kube::IsNotFound(got.status())) return got.status();
  std::map<std::string, ConfigMapText> texts;
  for (const auto& [checkpoint, ref] : rs.output_from) {
    auto cm = kube_->Get(kube::resources::ConfigMaps(), ns, ref.name);
    if (!cm.ok()) {
      if (!kube::IsNotFound(cm.status())) return cm.status();
      texts.emplace(checkpoint, NotFound("no ConfigMap " + ref.name));
      continue;
    }
    const json& data = JsonField(*cm, "data");
    if (data.is_object() && data.contains(ref.key) && data[ref.key].is_string())
      texts.emplace(checkpoint, data[ref.key].get<std::string>());
    else
      texts.emplace(checkpoint, NotFound("ConfigMap " + ref.name + " has no key " + ref.key));
  }
  auto resolved = ResolveReplay(*view, source, texts, config_);
  std::optional<ReplayRefusal> refusal;
  if (auto* r = std::get_if<ReplayRefusal>(&resolved)) {
    refusal = *r;
  } else {
    if (!admin) return Unavailable("no database connection");
    auto prepared = admin->PrepareReplay(std::get<ReplayRequest>(resolved));
    if (prepared.ok()) return Status();
    refusal = RefusalOfPrepareError(prepared.status(), rs.run);
    if (!refusal) return prepared.status();
  }
  // Recorded on the FlowRun; the requeue backs off (the source may appear later).
  bool changed = false;
  json patch = ReplayRefusalPatch(flowrun, *refusal, now_ ? now_() : std::chrono::system_clock::now(), config_, &changed);
  const std::string rv = JsonString(flowrun, "metadata", "resourceVersion");
  if (!rv.empty()) patch["metadata"]["resourceVersion"] = rv;
  auto r = kube_->MergePatch(kube::resources::FlowRuns(), ns, JsonString(flowrun, "metadata", "name"), patch,
                             /*status=*/true);
  if (!r.ok()) return r.status();
  Refresh(flowrun, *r);
  if (changed) Warn(flowrun, refusal->reason, refusal->message);
  return FailedPrecondition("replay not prepared (" + refusal->reason + "): " + refusal->message);
}

Status ActionExecutor::Run(json& flowrun, const Action& action, RunAdmin* admin, bool& stop,
                           std::optional<std::chrono::milliseconds>& requeue) {
  const std::string ns = JsonString(flowrun, "metadata", "namespace");
  const std::string name = JsonString(flowrun, "metadata", "name");
  const std::string uid = JsonString(flowrun, "metadata", "uid");
  auto need_admin = [&]() -> Status {
    return admin ? Status() : Unavailable("no database connection");
  };
  return std::visit(
      [&](const auto& a) -> Status {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, CreateJob>) {
          auto r = kube_->Create(kube::resources::Jobs(), ns, a.job);
          if (r.ok()) return Status();
          if (!kube::IsAlreadyExists(r.status())) return r.status();
          auto existing = kube_->Get(kube::resources::Jobs(), ns, a.name);
          if (existing.ok() && ControlledBy(*existing, uid)) return Status();  // stale cache
          std::string msg = "Job " + a.name + " exists and is not controlled by this FlowRun";
          Warn(flowrun, "JobConflict", msg);
          return AlreadyExists(msg);
        } else if constexpr (std::is_same_v<T, DeleteJob>) {
          kube::DeleteOptions o;
          o.propagation_policy = a.propagation_policy.empty() ? "Background" : a.propagation_policy;
          Status s = kube_->Delete(kube::resources::Jobs(), ns, a.name, o);
          if (s.ok() || kube::IsNotFound(s)) return Status();
          return s;
        } else if constexpr (std::is_same_v<T, PatchStatus>) {
          // The status was computed from the FlowRun as the cache showed it;
          // its resourceVersion makes the patch conditional on that, so a
          // decision taken on a stale copy (the controller's previous patch
          // not yet in the cache) gets 409 and is made again, instead of
          // writing an older status (conditions, attempts) over a newer one.
          json patch = a.patch;
          const std::string rv = JsonString(flowrun, "metadata", "resourceVersion");
          if (!rv.empty()) patch["metadata"]["resourceVersion"] = rv;
          auto r = kube_->MergePatch(kube::resources::FlowRuns(), ns, name, patch, /*status=*/true);
          if (!r.ok()) return r.status();
          Refresh(flowrun, *r);
          return Status();
        } else if constexpr (std::is_same_v<T, AddFinalizer>) {
          return PatchFinalizers(flowrun, a.finalizer, true);
        } else if constexpr (std::is_same_v<T, RemoveFinalizer>) {
          return PatchFinalizers(flowrun, a.finalizer, false);
        } else if constexpr (std::is_same_v<T, RecordAnswer>) {
          if (Status s = need_admin(); !s.ok()) return s;
          AnswerOptions o;
          o.allow_early = false;
          o.answered_by = a.answered_by;
          auto r = admin->RecordAnswer(uid, a.wait, a.answer, o);
          if (r.ok()) return Status();
          // Answered meanwhile (another reconcile, flowrunctl): the Job about
          // to be created would carry an answer that is not the recorded one.
          // Stop with an error: the requeued reconcile reads the database and
          // resumes with the recorded answer.
          if (r.status().code() == StatusCode::kAlreadyExists)
            return Aborted("the wait was answered meanwhile: " + r.status().message());
          if (r.status().code() == StatusCode::kInvalidArgument) {
            Warn(flowrun, "InvalidAnswer", "answer to " + a.wait + " refused: " + r.status().message());
            stop = true;
            return Status();
          }
          return r.status();
        } else if constexpr (std::is_same_v<T, SetBudget>) {
          if (Status s = need_admin(); !s.ok()) return s;
          return admin->SetBudget(uid, a.usd);
        } else if constexpr (std::is_same_v<T, ExpireWait>) {
          if (Status s = need_admin(); !s.ok()) return s;
          auto r = admin->ExpireWait(uid, a.now);
          return r.ok() ? Status() : r.status();
        } else if constexpr (std::is_same_v<T, CancelRun>) {
          if (Status s = need_admin(); !s.ok()) return s;
          Status s = admin->CancelRun(uid, a.reason);
          if (s.ok() || s.code() == StatusCode::kNotFound) return Status();
          return s;
        } else if constexpr (std::is_same_v<T, DeleteRunRows>) {
          if (Status s = need_admin(); !s.ok()) return s;
          return admin->DeleteRun(uid);
        } else if constexpr (std::is_same_v<T, DeleteFlowRun>) {
          kube::DeleteOptions o;
          o.propagation_policy = "Background";
          o.precondition_uid = uid;
          Status s = kube_->Delete(kube::resources::FlowRuns(), ns, name, o);
          if (s.ok() || kube::IsNotFound(s)) return Status();
          return s;
        } else if constexpr (std::is_same_v<T, Event>) {
          if (events_)
            events_->Record(flowrun, a.type == "Warning" ? kube::EventType::kWarning : kube::EventType::kNormal,
                            a.reason, a.message);
          return Status();
        } else if constexpr (std::is_same_v<T, SetLabel>) {
          return PatchLabel(flowrun, a.key, a.value);
        } else if constexpr (std::is_same_v<T, PrepareReplay>) {
          return Prepare(flowrun, admin);
        } else if constexpr (std::is_same_v<T, RequeueAfter>) {
          requeue = a.after;
          return Status();
        } else {
          return Internal("unknown action");
        }
      },
      action);
}

ExecuteOutcome ActionExecutor::Execute(const json& flowrun_in, const ReconcileResult& result, RunAdmin* admin) {
  ExecuteOutcome out;
  json flowrun = flowrun_in;
  if (!flowrun.contains("metadata") || !flowrun["metadata"].is_object()) flowrun["metadata"] = json::object();
  for (const auto& action : result.actions) {
    bool stop = false;
    Status s = Run(flowrun, action, admin, stop, out.requeue_after);
    if (!s.ok()) {
      Log("error", "action failed",
          {{"action", Describe(action)}, {"flowrun", kube::ObjectKey(flowrun)}, {"error", s.message()}});
      out.status = s;
      return out;
    }
    Log("debug", "action done", {{"action", Describe(action)}, {"flowrun", kube::ObjectKey(flowrun)}});
    ++out.executed;
    if (stop) break;
  }
  return out;
}

}  // namespace flowrun::controller
