// RFC 7386 JSON merge patch, both directions (reconcile.h).
#include "flowrun/controller/reconcile.h"

namespace flowrun::controller {

using nlohmann::json;

json MergePatchDiff(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  json patch = json::object();
  for (auto it = from.begin(); it != from.end(); ++it)
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto f = from.find(it.key());
    if (f == from.end()) patch[it.key()] = *it;
    else if (*f != *it) patch[it.key()] = (f->is_object() && it->is_object()) ? MergePatchDiff(*f, *it) : *it;
  }
  return patch;
}

void ApplyMergePatch(json& target, const json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_null()) target.erase(it.key());
    else ApplyMergePatch(target[it.key()], *it);
  }
}

}  // namespace flowrun::controller
