// The workload view: object metadata, Jobs and Pods as the core reads them
// (types.h). Only the fields the core decides on are parsed.
#include "flowrun/controller/types.h"

#include <algorithm>

#include "flowrun/json_fields.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

std::optional<TimePoint> Time(const json& o, const char* key) { return ParseTime(JsonString(o, key)); }

}  // namespace

ObjectMeta ParseMeta(const json& obj) {
  ObjectMeta m;
  const json& md = JsonField(obj, "metadata");
  m.name = JsonString(md, "name");
  m.namespace_ = JsonString(md, "namespace");
  m.uid = JsonString(md, "uid");
  m.generation = JsonInt(md, "generation");
  m.creation_timestamp = Time(md, "creationTimestamp");
  m.deletion_timestamp = Time(md, "deletionTimestamp");
  const json& f = JsonField(md, "finalizers");
  if (f.is_array())
    for (const auto& x : f)
      if (x.is_string()) m.finalizers.push_back(x.get<std::string>());
  const json& l = JsonField(md, "labels");
  if (l.is_object())
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it->is_string()) m.labels[it.key()] = it->get<std::string>();
  const json& an = JsonField(md, "annotations");
  if (an.is_object())
    for (auto it = an.begin(); it != an.end(); ++it)
      if (it->is_string()) m.annotations[it.key()] = it->get<std::string>();
  const json& mf = JsonField(md, "managedFields");
  if (mf.is_array()) m.managed_fields = mf;
  return m;
}

bool ObjectMeta::HasFinalizer(const std::string& f) const {
  for (const auto& x : finalizers)
    if (x == f) return true;
  return false;
}

const JobCondition* JobView::TrueCondition(const std::string& type) const {
  for (const auto& c : conditions)
    if (c.type == type && c.status == "True") return &c;
  return nullptr;
}

bool JobView::FinishedOk() const { return TrueCondition("Complete") || TrueCondition("SuccessCriteriaMet"); }

bool JobView::Finished() const { return FinishedOk() || TrueCondition("Failed") || TrueCondition("FailureTarget"); }

JobView ParseJob(const json& obj) {
  JobView j;
  j.meta = ParseMeta(obj);
  auto it = j.meta.labels.find(kLabelAttempt);
  if (it != j.meta.labels.end()) {
    try {
      size_t used = 0;
      int n = std::stoi(it->second, &used);
      if (used == it->second.size() && n > 0) j.attempt = n;
    } catch (...) {
    }
  }
  if (j.attempt == 0) {  // fall back to the "-a<N>" suffix
    auto pos = j.meta.name.rfind("-a");
    if (pos != std::string::npos && pos + 2 < j.meta.name.size()) {
      std::string digits = j.meta.name.substr(pos + 2);
      if (digits.find_first_not_of("0123456789") == std::string::npos && digits.size() < 9 && digits[0] != '0')
        j.attempt = std::stoi(digits);
    }
  }
  const json& st = JsonField(obj, "status");
  j.active = JsonInt(st, "active");
  j.succeeded = JsonInt(st, "succeeded");
  j.failed = JsonInt(st, "failed");
  j.start_time = Time(st, "startTime");
  j.completion_time = Time(st, "completionTime");
  const json& conds = JsonField(st, "conditions");
  if (conds.is_array())
    for (const auto& c : conds)
      j.conditions.push_back({JsonString(c, "type"), JsonString(c, "status"), JsonString(c, "reason"), JsonString(c, "message"),
                              Time(c, "lastTransitionTime")});
  return j;
}

PodView ParsePod(const json& obj) {
  PodView p;
  p.meta = ParseMeta(obj);
  auto jl = p.meta.labels.find("batch.kubernetes.io/job-name");
  if (jl == p.meta.labels.end()) jl = p.meta.labels.find("job-name");
  if (jl != p.meta.labels.end()) p.job_name = jl->second;
  const json& owners = JsonField(JsonField(obj, "metadata"), "ownerReferences");
  if (owners.is_array())
    for (const auto& o : owners)
      if (JsonString(o, "kind") == "Job" && JsonField(o, "controller") == json(true)) {
        p.job_uid = JsonString(o, "uid");
        if (p.job_name.empty()) p.job_name = JsonString(o, "name");
      }
  const json& st = JsonField(obj, "status");
  p.phase = JsonString(st, "phase");
  p.reason = JsonString(st, "reason");
  p.message = JsonString(st, "message");
  const json& conds = JsonField(st, "conditions");
  if (conds.is_array())
    for (const auto& c : conds) {
      if (JsonString(c, "type") == "DisruptionTarget" && JsonString(c, "status") == "True") p.disruption_reason = JsonString(c, "reason");
      if (JsonString(c, "type") == "PodScheduled" && JsonString(c, "status") == "False" && JsonString(c, "reason") == "Unschedulable")
        p.unschedulable_message = JsonString(c, "message").empty() ? "Unschedulable" : JsonString(c, "message");
    }
  const json& cs = JsonField(st, "containerStatuses");
  const json* chosen = nullptr;
  if (cs.is_array()) {
    for (const auto& c : cs)
      if (JsonString(c, "name") == kContainerName) chosen = &c;
    if (!chosen && !cs.empty()) chosen = &cs[0];
  }
  if (chosen) {
    ContainerState s;
    const json& state = JsonField(*chosen, "state");
    const json& w = JsonField(state, "waiting");
    if (w.is_object()) {
      s.waiting_reason = JsonString(w, "reason");
      s.waiting_message = JsonString(w, "message");
    }
    const json& r = JsonField(state, "running");
    if (r.is_object()) {
      s.running = true;
      s.started_at = Time(r, "startedAt");
    }
    const json& t = JsonField(state, "terminated");
    if (t.is_object()) {
      s.terminated = true;
      s.exit_code = static_cast<int>(JsonInt(t, "exitCode"));
      s.terminated_reason = JsonString(t, "reason");
      s.terminated_message = JsonString(t, "message");
      s.finished_at = Time(t, "finishedAt");
    }
    p.agent = s;
  }
  return p;
}

}  // namespace flowrun::controller
