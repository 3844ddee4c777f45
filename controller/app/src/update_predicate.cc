#include "flowrun/controller/app/update_predicate.h"

#include <initializer_list>

namespace flowrun::controller::app {
namespace {

using nlohmann::json;

const json& Sub(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// The listed keys of `obj` that are present (absent and null compare equal).
json Pick(const json& obj, std::initializer_list<const char*> keys) {
  json out = json::object();
  for (const char* k : keys) {
    const json& v = Sub(obj, k);
    if (!v.is_null()) out[k] = v;
  }
  return out;
}

// What ParseMeta reads, plus the owners the pod/job mapping reads.
json MetaRelevant(const json& obj) {
  return Pick(Sub(obj, "metadata"), {"name", "namespace", "uid", "generation", "creationTimestamp",
                                     "deletionTimestamp", "finalizers", "labels", "annotations", "ownerReferences"});
}

}  // namespace

json FlowRunRelevant(const json& obj) {
  json out = json::object();
  out["metadata"] = Pick(Sub(obj, "metadata"), {"generation", "deletionTimestamp", "finalizers", "labels", "annotations"});
  out["spec"] = Sub(obj, "spec");
  out["answers"] = Sub(Sub(obj, "status"), "answers");
  return out;
}

json JobRelevant(const json& obj) {
  json out = json::object();
  out["metadata"] = MetaRelevant(obj);
  out["status"] = Pick(Sub(obj, "status"), {"active", "succeeded", "failed", "startTime", "completionTime"});
  json conds = json::array();
  const json& cs = Sub(Sub(obj, "status"), "conditions");
  if (cs.is_array())
    for (const auto& c : cs) conds.push_back(Pick(c, {"type", "status", "reason", "message", "lastTransitionTime"}));
  out["status"]["conditions"] = std::move(conds);
  return out;
}

json PodRelevant(const json& obj) {
  json out = json::object();
  out["metadata"] = MetaRelevant(obj);
  const json& st = Sub(obj, "status");
  out["status"] = Pick(st, {"phase", "reason", "message"});
  json conds = json::array();
  const json& cs = Sub(st, "conditions");
  if (cs.is_array())
    for (const auto& c : cs) conds.push_back(Pick(c, {"type", "status", "reason", "message"}));
  out["status"]["conditions"] = std::move(conds);
  json containers = json::array();
  const json& ctrs = Sub(st, "containerStatuses");
  if (ctrs.is_array())
    for (const auto& c : ctrs) containers.push_back(Pick(c, {"name", "state"}));
  out["status"]["containerStatuses"] = std::move(containers);
  return out;
}

bool FlowRunUpdateMatters(const json& old_obj, const json& new_obj) {
  return FlowRunRelevant(old_obj) != FlowRunRelevant(new_obj);
}
bool JobUpdateMatters(const json& old_obj, const json& new_obj) { return JobRelevant(old_obj) != JobRelevant(new_obj); }
bool PodUpdateMatters(const json& old_obj, const json& new_obj) { return PodRelevant(old_obj) != PodRelevant(new_obj); }

bool ManagedFieldTouchesAnswers(const json& entry) {
  const json& status = Sub(Sub(entry, "fieldsV1"), "f:status");
  return Sub(status, "f:answers").is_object();
}

}  // namespace flowrun::controller::app
