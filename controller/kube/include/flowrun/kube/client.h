// KubeClient: flowrun's Kubernetes API client. Objects are nlohmann::json
// (the API's own JSON), addressed by a ResourceRef; every verb returns a
// Status or StatusOr with one error model (errors.h).
//
// Thread safety: all methods may be called concurrently from many threads.
// Ownership: the client owns its transport and credentials; Watch() blocks
// the calling thread until the stream ends or is cancelled.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/kube/request_observer.h"
#include "flowrun/kube/config.h"
#include "flowrun/http_transport.h"
#include "flowrun/kube/errors.h"
#include "flowrun/status.h"

namespace flowrun::kube {

// Which collection: group ("" for core), version, plural resource, scope.
struct ResourceRef {
  std::string group;
  std::string version;
  std::string resource;
  bool namespaced = true;
  std::string kind;  // for messages and Apply bodies, e.g. "Job"

  // "/api/v1/namespaces/<ns>/pods" or "/apis/batch/v1/namespaces/<ns>/jobs";
  // ns "" means all namespaces (or a cluster-scoped resource).
  std::string CollectionPath(const std::string& ns) const;
  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

namespace resources {
ResourceRef Pods();
ResourceRef Jobs();
ResourceRef Leases();
ResourceRef Events();
ResourceRef Namespaces();
ResourceRef ConfigMaps();
ResourceRef Secrets();
ResourceRef ServiceAccounts();
ResourceRef Nodes();
ResourceRef CustomResourceDefinitions();
ResourceRef FlowRuns();  // flowrun.dev/v1alpha1 flowruns
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;             // page size; 0: server default (everything)
  std::string continue_token;    // from the previous page
  std::string resource_version;  // "" (most recent, quorum read) or "0" (any, from cache)
  // Drop every item's metadata.managedFields while parsing the response (they
  // are never built): for callers that discard them anyway, like informers.
  // Often half of an object's JSON, and more of its parsed size.
  bool drop_managed_fields = false;
};

struct ObjectList {
  std::vector<nlohmann::json> items;
  std::string resource_version;  // of the list: where a watch resumes
  std::string continue_token;    // "" on the last page
};

struct DeleteOptions {
  std::string propagation_policy;            // "Background" | "Foreground" | "Orphan" | "" (server default)
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;  // resume point (opaque; compare for equality only)
  bool allow_bookmarks = true;
  // Server-side timeout of this one watch request. Informers randomize it in
  // [5, 10) minutes so watches of many clients do not expire together.
  std::chrono::seconds timeout{300};
  size_t max_event_bytes = 16 << 20;  // a longer line is an error
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK (ERROR events become a Status)
  nlohmann::json object;
};

// Cancels a blocking Watch from another thread.
// Thread safety: Cancel() may be called from any thread, any number of times,
// concurrently with a Watch that installs or clears its callback (the
// callback runs under a mutex, so Watch can clear it and then free what it
// uses). One token serves one Watch at a time; once cancelled it stays so.
class CancelToken {
 public:
  void Cancel() {
    cancelled_.store(true);
    std::lock_guard<std::mutex> lock(mu_);
    if (on_cancel_) on_cancel_();
  }
  bool cancelled() const { return cancelled_.load(); }
  // Set by Watch while it blocks; not for callers.
  void SetOnCancel(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(mu_);
    on_cancel_ = std::move(f);
  }

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::function<void()> on_cancel_;
};

class KubeClient {
 public:
  virtual ~KubeClient() = default;

  virtual StatusOr<nlohmann::json> Get(const ResourceRef& r, const std::string& ns, const std::string& name) = 0;
  // One page.
  virtual StatusOr<ObjectList> List(const ResourceRef& r, const std::string& ns, const ListOptions& o) = 0;
  // Every page, following continue tokens (o.limit is the page size).
  virtual StatusOr<ObjectList> ListAll(const ResourceRef& r, const std::string& ns, const ListOptions& o) = 0;
  virtual StatusOr<nlohmann::json> Create(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) = 0;
  // PUT; obj.metadata.resourceVersion is the precondition (409 Conflict if stale).
  virtual StatusOr<nlohmann::json> Update(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) = 0;
  virtual StatusOr<nlohmann::json> UpdateStatus(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) = 0;
  // application/merge-patch+json, optionally on the status subresource.
  virtual StatusOr<nlohmann::json> MergePatch(const ResourceRef& r, const std::string& ns, const std::string& name,
                                              const nlohmann::json& patch, bool status = false) = 0;
  // Server-side apply (application/apply-patch+yaml with a JSON body).
  virtual StatusOr<nlohmann::json> Apply(const ResourceRef& r, const std::string& ns, const std::string& name,
                                         const nlohmann::json& obj, const std::string& field_manager,
                                         bool force = false, bool status = false) = 0;
  virtual Status Delete(const ResourceRef& r, const std::string& ns, const std::string& name,
                        const DeleteOptions& o) = 0;

  // One watch request: calls on_event for each event until the server ends
  // the stream (returns OK with the last resourceVersion seen, bookmarks
  // included), on_event returns false, or `cancel` fires (kAborted). A 410
  // Gone — as an HTTP status or as an ERROR event in the stream — returns an
  // error for which IsGone() is true: the caller must relist.
  virtual StatusOr<std::string> Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& o,
                                      const std::function<bool(const WatchEvent&)>& on_event,
                                      CancelToken* cancel) = 0;

  // Any request, for the rare path without a verb here (TokenRequest, /version).
  virtual StatusOr<nlohmann::json> Raw(const std::string& method, const std::string& path,
                                       const nlohmann::json& body = nullptr,
                                       const std::string& content_type = "application/json") = 0;
};

struct ClientOptions {
  std::string user_agent = "flowrun";
  std::chrono::milliseconds request_timeout{30000};
  int max_attempts_on_429 = 3;  // honours Retry-After
  std::chrono::seconds max_retry_after{30};  // a longer Retry-After is capped to this
  bool tcp_no_delay = true;  // off only to measure Nagle stalls (bench)
  // Told about every request (latency, status); nullptr: none. request_observer.h
  std::shared_ptr<RequestObserver> observer;
  // Time: request latencies, the waits between 429 retries and credential
  // refreshes (token-file age, exec credential expiry). Not owned, must
  // outlive the client; nullptr: DefaultClock().
  Clock* clock = nullptr;
  // Once cancelled, a call waiting out a 429's Retry-After stops waiting and
  // returns kAborted (so shutting down need not wait up to max_retry_after).
  // Shared, so it outlives the client; nullptr: waits are not interruptible.
  // Give it its own token: not one that a Watch also uses (a token serves one
  // waiter's callback at a time).
  std::shared_ptr<CancelToken> cancel_retries;
  // Wraps each transport the client makes: one per TLS identity, since an
  // exec plugin's client certificate may change when it is run again. For a
  // caller that observes or adjusts raw requests (kubectl-flowrun overrides
  // Accept and keeps the last response's bytes). Empty: the transport as is.
  // Not used by NewKubeClientWithTransport.
  std::function<std::unique_ptr<HttpTransport>(std::unique_ptr<HttpTransport>)> wrap_transport;
};

// A client for `config`, over the cpprestsdk transport. Checks the PEM data
// (CA, client certificate, key) up front: kInvalidArgument names what is wrong.
// Warns on stderr when TLS verification is off (insecure-skip-tls-verify).
StatusOr<std::unique_ptr<KubeClient>> NewKubeClient(const ClusterConfig& config, const ClientOptions& options = {});

// The same over a given transport (tests: a fake HttpTransport). TLS settings
// of `config` are not used; credentials (token, token file, exec) are.
StatusOr<std::unique_ptr<KubeClient>> NewKubeClientWithTransport(const ClusterConfig& config,
                                                                 const ClientOptions& options,
                                                                 std::shared_ptr<HttpTransport> transport);

}  // namespace flowrun::kube
