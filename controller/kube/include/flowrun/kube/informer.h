// Informer: list + watch of one resource into a thread-safe, indexed cache of
// read-only snapshots (modelled on client-go's tools/cache Reflector +
// Indexer + sharedIndexInformer, and kube-rs's watcher/reflector).
//
// Contract:
//   * One std::thread per informer runs: List -> apply to the cache -> Watch
//     from the list's resourceVersion, resuming from the last
//     resourceVersion seen (bookmarks included) each time a watch ends. Each
//     watch asks for a random timeoutSeconds in [min_watch_timeout,
//     max_watch_timeout) (default [5, 10) min) so many clients do not expire
//     together.
//   * The list is paged (page_size objects a request, following continue
//     tokens) and applied page by page: each page is stripped, packed into
//     the cache and freed before the next one is requested, so a big list
//     costs one page's parsed JSON on top of the cache, not the whole list's.
//     Handlers therefore see a list's adds/updates page by page. A 410
//     Expired on a continue token (the list outlived etcd's compaction)
//     restarts the list from a fresh snapshot at once (once; then it counts
//     as a failed list); pages already applied stay cached.
//   * A 410 Gone (HTTP status or ERROR event) relists at once. Other errors
//     back off (initial 0.8 s doubling to 30 s, with jitter) and retry the
//     watch from the same resourceVersion; a failed list backs off the same
//     way. These transitions are NextStep (list_watch_step.h); the sleeps
//     and jitter come from InformerOptions::clock / random.
//   * After the last page of every list, objects that are no longer there
//     get a synthesized delete (handlers see on_delete with
//     final_state_unknown = true).
//   * Readers get std::shared_ptr<const nlohmann::json>: immutable
//     snapshots; never mutate one (copy it). The cache itself keeps each
//     object compactly, as its MessagePack bytes (~0.9x the JSON text instead
//     of ~6x for a parsed tree), plus its index values; a read materializes a
//     snapshot from them. While any reader (or handler) still holds an
//     object's snapshot, every read returns that same pointer (the cache keeps
//     a weak_ptr to it); once nobody holds it, the next read decodes a fresh,
//     equal snapshot. So compare snapshots by value (or resourceVersion), not
//     by pointer, and hold on to one instead of calling Get() in a loop: each
//     read of an unheld object costs a decode (~10-20 us for a 2.6 KB object;
//     List() decodes every unheld object).
//     metadata.managedFields is stripped before caching; an optional
//     transform hook may strip more.
//   * Handlers run on the informer's thread, in event order, after the cache
//     was updated (a Get from a handler sees the new state). They are meant
//     to enqueue keys ("ns/name") into a WorkQueue and return: a slow handler
//     delays the informer.
//   * HasSynced() turns true once the first list has been applied (all its
//     pages) and the handlers for it have run.
//   * Stop() cancels the watch (CancelToken) and joins the thread; a list
//     stops between pages, a page in flight ends within the client's request
//     timeout.
//
// Thread safety: all const accessors may be called from any thread at any
// time; AddIndex / AddEventHandler only before Start().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/list_watch_step.h"
#include "flowrun/status.h"

namespace flowrun::kube {

using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// "ns/name" for a namespaced object, "name" for a cluster-scoped one
// (client-go's MetaNamespaceKeyFunc).
std::string ObjectKey(const nlohmann::json& obj);
std::string ObjectKey(const std::string& ns, const std::string& name);

// Index functions: the values under which an object is filed.
using IndexFunc = std::function<std::vector<std::string>(const nlohmann::json& obj)>;
// Every metadata.ownerReferences[].uid.
IndexFunc IndexByOwnerUid();
// The value of label `label` (no value: not indexed).
IndexFunc IndexByLabel(const std::string& label);
IndexFunc IndexByNamespace();

struct InformerHandlers {
  std::function<void(const ObjectPtr& obj)> on_add;
  std::function<void(const ObjectPtr& old_obj, const ObjectPtr& new_obj)> on_update;
  // `final_state_unknown`: the delete was synthesized after a relist, so
  // `last_known` is the last state this informer saw, not the final one.
  std::function<void(const ObjectPtr& last_known, bool final_state_unknown)> on_delete;
};

struct InformerOptions {
  ResourceRef resource;
  std::string ns;  // "" : all namespaces (or a cluster-scoped resource)
  std::string label_selector;
  std::string field_selector;
  int64_t page_size = 500;  // objects per list request (the list follows continue tokens)
  // Applied to every object before caching, after managedFields are stripped.
  std::function<void(nlohmann::json& obj)> transform;
  // metadata.managedFields entries to keep in the cache (e.g. the ones naming
  // who wrote a field the controller reads). Empty (the default): every entry
  // is dropped, and lists ask the client not to parse them at all.
  std::function<bool(const nlohmann::json& entry)> keep_managed_field;
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::seconds min_watch_timeout{300};
  std::chrono::seconds max_watch_timeout{600};
  std::string name;  // for logs; default: the resource

  // Time and chance, injectable so tests control the retry gaps (kept as
  // their own block). `clock`: the backoff sleeps (interrupted by Stop())
  // and the very-short-watch test; not owned, must outlive the informer;
  // nullptr: DefaultClock(). `random`: numbers in [0, 1) for the backoff
  // jitter and the watch timeouts, called on the informer's thread only;
  // empty: a pseudo-random generator seeded from std::random_device.
  Clock* clock = nullptr;
  std::function<double()> random;
};

struct InformerStats {
  uint64_t lists = 0;               // successful lists (the first one included)
  uint64_t list_errors = 0;
  uint64_t list_restarts = 0;       // lists started over after an expired continue token
  uint64_t watches = 0;             // watch requests started
  uint64_t watch_errors = 0;        // watches that ended with an error other than 410
  uint64_t gone = 0;                // 410 Gone: relists forced by an expired resourceVersion
  uint64_t events = 0;              // ADDED / MODIFIED / DELETED events applied
  uint64_t bookmarks = 0;
  uint64_t synthesized_deletes = 0;
  std::string last_resource_version;
  std::string last_error;
};

class Informer {
 public:
  Informer(KubeClient* client, InformerOptions options);
  ~Informer();  // Stop()
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Before Start().
  void AddIndex(const std::string& name, IndexFunc f);
  void AddEventHandler(InformerHandlers h);

  // Starts the informer's thread. Once only.
  void Start();
  // Cancels the watch and joins the thread (idempotent). Handlers are not
  // called after Stop() returns.
  void Stop();

  bool HasSynced() const;
  // Waits until synced, Stop(), or `timeout`; returns HasSynced().
  bool WaitForSync(std::chrono::milliseconds timeout) const;

  // The cache. nullptr when absent.
  ObjectPtr Get(const std::string& key) const;
  ObjectPtr Get(const std::string& ns, const std::string& name) const;
  std::vector<ObjectPtr> List() const;
  std::vector<std::string> Keys() const;
  size_t Size() const;
  // Objects filed under `value` by index `index` (empty if the index is unknown).
  std::vector<ObjectPtr> ByIndex(const std::string& index, const std::string& value) const;

  InformerStats Stats() const;

 private:
  void Run();
  // Lists page by page, applying each page as it arrives, then FinishList;
  // `rv` gets the list's resourceVersion. Aborted once stopped.
  Status ListAndApply(std::string* rv);
  // Caches one page's objects (adds/updates) and adds their keys to `seen`.
  void ApplyPage(std::vector<nlohmann::json> items, std::unordered_set<std::string>* seen);
  // After a list's last page: synthesized deletes for cached keys not in
  // `seen`, stats, the synced flag.
  void FinishList(const std::unordered_set<std::string>& seen, const std::string& rv);
  void ApplyEvent(const WatchEvent& ev);

  // One cached object: its MessagePack bytes, the snapshot last handed out
  // (alive while somebody holds it), and the values it is filed under.
  struct Entry {
    std::string packed;
    mutable std::weak_ptr<const nlohmann::json> live;  // guarded by memo_mu_ under a shared cache_mu_
    std::vector<std::vector<std::string>> index;  // per index_funcs_ entry, in map order
  };

  // `obj` was prepared (Prepare); caches it and runs the handlers. `packed`:
  // its MessagePack bytes if already at hand (else packed here).
  void Upsert(nlohmann::json obj, std::string packed = {});
  void Remove(const std::string& key, const ObjectPtr& last_known, bool final_state_unknown);
  // Strips managedFields and applies the transform, in place.
  void Prepare(nlohmann::json& obj) const;
  std::vector<std::vector<std::string>> IndexValues(const nlohmann::json& obj) const;
  void IndexLocked(const std::string& key, const std::vector<std::vector<std::string>>& values, bool add);
  // The entry's live snapshot, or a freshly decoded one (then remembered).
  // Needs cache_mu_ (shared is enough) or exclusive ownership of `e`.
  ObjectPtr Materialize(const Entry& e) const;
  // Sleeps up to `d` on the clock; false if stopped meanwhile.
  bool SleepUnlessStopped(std::chrono::milliseconds d);
  double Random01();

  KubeClient* client_;
  InformerOptions opts_;
  Clock* clock_;
  std::vector<InformerHandlers> handlers_;
  std::map<std::string, IndexFunc> index_funcs_;

  mutable std::shared_mutex cache_mu_;
  mutable std::mutex memo_mu_;  // Entry::live, taken under a shared cache_mu_
  std::unordered_map<std::string, Entry> items_;
  // index name -> value -> keys
  std::map<std::string, std::unordered_map<std::string, std::set<std::string>>> indices_;

  mutable std::mutex mu_;  // stop flag, sync flag, stats
  mutable std::condition_variable cv_;
  bool stopped_ = false;
  bool synced_ = false;
  InformerStats stats_;

  CancelToken cancel_;
  std::thread thread_;
  std::atomic<bool> started_{false};
};

}  // namespace flowrun::kube
