#include "flowrun/query/authorizer.h"

#include <nlohmann/json.hpp>

#include "flowrun/kube/client.h"

namespace flowrun::query {

StatusOr<Decision> SubjectAccessReviewAuthorizer::Authorize(const Identity& who, const ResourceAttributes& what) {
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& [k, v] : who.extra) extra[k] = v;
  nlohmann::json sar = {
      {"apiVersion", "authorization.k8s.io/v1"},
      {"kind", "SubjectAccessReview"},
      {"spec",
       {{"user", who.user},
        {"groups", who.groups},
        {"extra", extra},
        {"resourceAttributes",
         {{"namespace", what.ns},
          {"verb", "get"},
          {"group", kGroup},
          {"version", kVersion},
          {"resource", "flowruns"},
          {"subresource", what.subresource},
          {"name", what.name}}}}}};
  auto r = client_->Raw("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar);
  if (!r.ok()) return Unavailable("SubjectAccessReview failed: " + r.status().message());
  Decision d;
  const nlohmann::json& st = (*r).contains("status") ? (*r)["status"] : nlohmann::json::object();
  d.allowed = st.value("allowed", false) && !st.value("denied", false);
  d.reason = st.value("reason", "");
  return d;
}

CachingAuthorizer::CachingAuthorizer(Authorizer* inner, std::chrono::milliseconds ttl, Clock* clock, size_t max_entries)
    : inner_(inner), ttl_(ttl), clock_(clock ? clock : DefaultClock()), max_entries_(max_entries ? max_entries : 1) {}

namespace {
// Unambiguous: every part is length-prefixed.
void Put(std::string* key, const std::string& part) {
  *key += std::to_string(part.size());
  *key += ':';
  *key += part;
}
}  // namespace

StatusOr<Decision> CachingAuthorizer::Authorize(const Identity& who, const ResourceAttributes& what) {
  std::string key;
  Put(&key, who.user);
  for (const auto& g : who.groups) Put(&key, "g" + g);
  for (const auto& [k, vs] : who.extra) {
    Put(&key, "e" + k);
    for (const auto& v : vs) Put(&key, v);
  }
  Put(&key, "|");
  Put(&key, what.ns);
  Put(&key, what.name);
  Put(&key, what.subresource);
  const auto now = clock_->MonotonicNow();
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.expires > now) return it->second.decision;
      order_.erase(it->second.order);
      entries_.erase(it);
    }
  }
  auto d = inner_->Authorize(who, what);
  if (!d.ok()) return d;
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    order_.erase(it->second.order);
    entries_.erase(it);
  }
  while (entries_.size() >= max_entries_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(key);
  entries_[key] = Entry{*d, now + ttl_, std::prev(order_.end())};
  return d;
}

}  // namespace flowrun::query
