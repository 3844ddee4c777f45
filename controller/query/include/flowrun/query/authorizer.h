// Authorization of every data request of the read API: "may <identity> get
// flowruns/<subresource> <name> in <namespace> of query.flowrun.dev?".
//
// SubjectAccessReviewAuthorizer asks kube-apiserver (a SubjectAccessReview,
// so RBAC, webhooks and any other authorizer of the cluster decide);
// CachingAuthorizer remembers answers for a short TTL (allowed and denied
// alike) so a page of requests costs one review. docs/read-api.md.
//
// Thread safety: all implementations may be called concurrently.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "flowrun/clock.h"
#include "flowrun/query/authentication.h"
#include "flowrun/status.h"

namespace flowrun::kube {
class KubeClient;
}

namespace flowrun::query {

inline constexpr char kGroup[] = "query.flowrun.dev";
inline constexpr char kVersion[] = "v1alpha1";

struct ResourceAttributes {
  std::string ns, name, subresource;  // resource is always flowruns, verb get
};

struct Decision {
  bool allowed = false;
  std::string reason;  // the authorizer's reason, for the 403 message (may be empty)
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // Errors: kUnavailable when the decision could not be obtained (503).
  virtual StatusOr<Decision> Authorize(const Identity& who, const ResourceAttributes& what) = 0;
};

// client: not owned, must outlive the authorizer.
class SubjectAccessReviewAuthorizer final : public Authorizer {
 public:
  explicit SubjectAccessReviewAuthorizer(kube::KubeClient* client) : client_(client) {}
  StatusOr<Decision> Authorize(const Identity& who, const ResourceAttributes& what) override;

 private:
  kube::KubeClient* client_;
};

// Wraps another authorizer (not owned). Errors are not cached. At most
// max_entries answers are kept (the oldest is dropped first).
class CachingAuthorizer final : public Authorizer {
 public:
  CachingAuthorizer(Authorizer* inner, std::chrono::milliseconds ttl, Clock* clock = nullptr, size_t max_entries = 4096);
  StatusOr<Decision> Authorize(const Identity& who, const ResourceAttributes& what) override;

 private:
  struct Entry {
    Decision decision;
    std::chrono::steady_clock::time_point expires;
    std::list<std::string>::iterator order;
  };
  Authorizer* inner_;
  std::chrono::milliseconds ttl_;
  Clock* clock_;
  size_t max_entries_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  std::list<std::string> order_;          // insertion order, oldest first; guarded by mu_
};

}  // namespace flowrun::query
