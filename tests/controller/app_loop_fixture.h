// The controller loop's test world (controller/app/flowrun_controller.h):
//   * FakeCluster: a KubeClient double that behaves like a tiny API server
//     for the three resources the loop watches: List returns what it holds,
//     Watch delivers the changes (its own writes, and those a test makes
//     with Modify/Remove), merge patches apply (RFC 7386) and echo as
//     MODIFIED, Jobs it creates echo as ADDED. A GET is counted and refused:
//     the loop must read from its caches only.
//   * FakeDatabase: the RunAdmin sessions the loop opens, scriptable (open
//     fails, GetRun throws or blocks) and recording RecordAnswer.
//   * Loop: a FlowRunController with one worker on a FakeClock, so
//     RequeueAfter and backoff delays pass only when the test advances time.
// No cluster, no database, no sleeps: tests wait on conditions
// (tests/support/eventually.h) or read the queue, which is deterministic
// under the fake clock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/app/flowrun_controller.h"
#include "flowrun/controller/reconcile.h"
#include "flowrun/kube/informer.h"
#include "kube/unimplemented_client.h"
#include "support/eventually.h"
#include "support/fake_clock.h"

namespace app_loop_test {

using nlohmann::json;
using flowrun::Status;
using flowrun::StatusOr;
namespace fa = flowrun::controller::app;

class FakeCluster : public flowrun::kube::testing::UnimplementedClient {
 public:
  // Objects of `resource` ("flowruns", "jobs", "pods") before the informers list.
  void Seed(const std::string& resource, const json& objects) {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& o : objects) store_[resource][flowrun::kube::ObjectKey(o)] = o;
  }
  // One FlowRun with its Jobs and pods (a core_test::World's objects).
  void SeedWorld(const json& flowrun, const json& jobs, const json& pods) {
    Seed("flowruns", json::array({flowrun}));
    Seed("jobs", jobs);
    Seed("pods", pods);
  }

  // A change made by somebody else (a person, kube-controller-manager):
  // stored, then delivered to the watch; returns once the informer applied it.
  void Modify(const std::string& resource, const json& obj) {
    {
      std::lock_guard<std::mutex> l(mu_);
      json o = obj;
      o["metadata"]["resourceVersion"] = std::to_string(++rv_);
      store_[resource][flowrun::kube::ObjectKey(o)] = o;
      pending_[resource].push_back({"MODIFIED", o});
      cv_.notify_all();
    }
    WaitDelivered(resource);
  }
  void Remove(const std::string& resource, const std::string& key) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = store_[resource].find(key);
      if (it == store_[resource].end()) return;
      pending_[resource].push_back({"DELETED", it->second});
      store_[resource].erase(it);
      cv_.notify_all();
    }
    WaitDelivered(resource);
  }
  // The stored object (what a GET would return), or null.
  json Stored(const std::string& resource, const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = store_[resource].find(key);
    return it == store_[resource].end() ? json() : it->second;
  }

  StatusOr<flowrun::kube::ObjectList> List(const flowrun::kube::ResourceRef& r, const std::string&,
                                           const flowrun::kube::ListOptions&) override {
    std::lock_guard<std::mutex> l(mu_);
    flowrun::kube::ObjectList out;
    for (const auto& [key, o] : store_[r.resource]) out.items.push_back(o);
    out.resource_version = std::to_string(rv_);
    return out;
  }

  // Delivers the resource's pending changes until cancelled or Stop().
  StatusOr<std::string> Watch(const flowrun::kube::ResourceRef& r, const std::string&,
                              const flowrun::kube::WatchOptions&,
                              const std::function<bool(const flowrun::kube::WatchEvent&)>& on_event,
                              flowrun::kube::CancelToken* cancel) override {
    // Installed outside mu_: Cancel() calls it under the token's own lock.
    if (cancel) cancel->SetOnCancel([this] {
        std::lock_guard<std::mutex> g(mu_);
        cv_.notify_all();
      });
    std::string rv;
    {
      std::unique_lock<std::mutex> l(mu_);
      auto& q = pending_[r.resource];
      for (;;) {
        cv_.wait(l, [&] { return stopping_ || (cancel && cancel->cancelled()) || !q.empty(); });
        if (stopping_ || (cancel && cancel->cancelled())) break;
        flowrun::kube::WatchEvent ev = q.front();
        q.pop_front();
        delivering_[r.resource] = true;
        l.unlock();
        bool more = on_event(ev);
        l.lock();
        delivering_[r.resource] = false;
        cv_.notify_all();
        if (!more) break;
      }
      rv = std::to_string(rv_);
    }
    if (cancel) cancel->SetOnCancel(nullptr);
    return rv;
  }

  // Leases (leader election) are read live, as the elector does; anything
  // else is refused and counted.
  StatusOr<json> Get(const flowrun::kube::ResourceRef& r, const std::string& ns, const std::string& name) override {
    std::lock_guard<std::mutex> l(mu_);
    if (r.resource == "leases") {
      auto it = store_[r.resource].find(flowrun::kube::ObjectKey(ns, name));
      if (it == store_[r.resource].end()) return flowrun::NotFound("leases \"" + name + "\" not found");
      return it->second;
    }
    gets_.push_back(r.resource + " " + ns + "/" + name);
    return flowrun::Unimplemented("the loop reads from its caches, never with a live GET");
  }

  StatusOr<json> MergePatch(const flowrun::kube::ResourceRef& r, const std::string& ns, const std::string& name,
                            const json& patch, bool status) override {
    std::lock_guard<std::mutex> l(mu_);
    if (r.resource == "events") return json{{"metadata", {{"name", name}, {"namespace", ns}}}};
    const std::string key = flowrun::kube::ObjectKey(ns, name);
    auto it = store_[r.resource].find(key);
    if (it == store_[r.resource].end()) {
      refused_patches_.push_back(key);
      cv_.notify_all();
      return flowrun::NotFound(r.resource + " \"" + name + "\" not found");
    }
    json p = patch;
    if (p.contains("metadata")) p["metadata"].erase("resourceVersion");  // a precondition, not a change
    flowrun::controller::ApplyMergePatch(it->second, p);
    it->second["metadata"]["resourceVersion"] = std::to_string(++rv_);
    patches_.push_back({{"resource", r.resource}, {"key", key}, {"patch", patch}, {"status", status}});
    Echo(r.resource, "MODIFIED", it->second);
    return it->second;
  }

  // Replaces a stored object (the elector's Lease updates; no precondition).
  StatusOr<json> Update(const flowrun::kube::ResourceRef& r, const std::string& ns, const json& obj) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string key = flowrun::kube::ObjectKey(ns, obj["metadata"].value("name", ""));
    auto it = store_[r.resource].find(key);
    if (it == store_[r.resource].end()) return flowrun::NotFound(key + " not found");
    it->second = obj;
    it->second["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Echo(r.resource, "MODIFIED", it->second);
    return it->second;
  }

  StatusOr<json> Create(const flowrun::kube::ResourceRef& r, const std::string& ns, const json& obj) override {
    std::lock_guard<std::mutex> l(mu_);
    json o = obj;
    o["metadata"]["namespace"] = ns;
    if (r.resource == "events") {
      events_.push_back(o);
      cv_.notify_all();
      return o;
    }
    const std::string key = flowrun::kube::ObjectKey(o);
    if (store_[r.resource].count(key)) return flowrun::AlreadyExists(key + " already exists");
    o["metadata"]["uid"] = "uid-" + o["metadata"].value("name", "");
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    store_[r.resource][key] = o;
    created_.push_back(r.resource + " " + key);
    Echo(r.resource, "ADDED", o);
    return o;
  }

  // Waits (bounded, generous) until `pred` holds over what was recorded;
  // `pred` runs under the lock.
  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(30), pred);
  }
  // Until the watch of `resource` delivered everything pending.
  void WaitDelivered(const std::string& resource) {
    ASSERT_TRUE(WaitFor([&] { return pending_[resource].empty() && !delivering_[resource]; }))
        << "the " << resource << " watch did not deliver";
  }
  // Every watch delivered everything pending.
  bool Quiet() {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [r, q] : pending_)
      if (!q.empty()) return false;
    for (const auto& [r, d] : delivering_)
      if (d) return false;
    return true;
  }
  void Stop() {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

  // Recorded; read under mu_ (or through WaitFor's predicate).
  std::mutex mu_;
  std::vector<json> patches_;                // successful patches, flowruns and jobs
  std::vector<std::string> refused_patches_;  // patches of objects that are gone (404)
  std::vector<json> events_;                 // Events created
  std::vector<std::string> created_;         // "<resource> <ns>/<name>"
  std::vector<std::string> gets_;            // live GETs (there should be none)

  std::vector<json> FlowRunStatusPatches() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<json> out;
    for (const auto& p : patches_)
      if (p["resource"] == "flowruns" && p["status"].get<bool>()) out.push_back(p["patch"]);
    return out;
  }

 private:
  // A change to the watches of the resources the loop watches. Under mu_.
  void Echo(const std::string& resource, const std::string& type, const json& obj) {
    if (resource == "flowruns" || resource == "jobs" || resource == "pods") pending_[resource].push_back({type, obj});
    cv_.notify_all();
  }

  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t rv_ = 1;
  std::map<std::string, std::map<std::string, json>> store_;
  std::map<std::string, std::deque<flowrun::kube::WatchEvent>> pending_;
  std::map<std::string, bool> delivering_;
};

// The database behind every session the loop opens. Thread-safe.
struct FakeDatabase {
  struct Answer {
    std::string wait;
    json answer;
    std::string answered_by;
  };

  std::mutex mu;
  flowrun::Status open_error;             // non-OK: opening a session fails with it
  std::optional<flowrun::RunState> run;   // GetRun: kNotFound while absent
  flowrun::Status get_error;              // non-OK: GetRun fails with it
  std::string throw_on_get;               // non-empty: GetRun throws std::runtime_error(this)
  bool hold_get = false;                  // GetRun blocks while true (Release())
  std::condition_variable cv;
  int opens = 0, gets = 0;
  std::vector<Answer> answers;
  std::vector<flowrun::TimePoint> expiries;

  void Set(const std::function<void(FakeDatabase&)>& f) {
    std::lock_guard<std::mutex> l(mu);
    f(*this);
    cv.notify_all();
  }
  template <typename T>
  T Read(const std::function<T(FakeDatabase&)>& f) {
    std::lock_guard<std::mutex> l(mu);
    return f(*this);
  }
  int Gets() { return Read<int>([](FakeDatabase& d) { return d.gets; }); }
  int Opens() { return Read<int>([](FakeDatabase& d) { return d.opens; }); }
  // Until a GetRun is blocked by hold_get.
  bool WaitHeld() {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(30), [&] { return held; });
  }
  bool held = false;  // a GetRun is blocked
};

class FakeSession : public flowrun::RunAdmin {
 public:
  explicit FakeSession(FakeDatabase* db) : db_(db) {}
  StatusOr<flowrun::RunState> GetRun(const std::string&) override {
    std::unique_lock<std::mutex> l(db_->mu);
    ++db_->gets;
    db_->held = db_->hold_get;
    db_->cv.notify_all();
    db_->cv.wait(l, [&] { return !db_->hold_get; });
    db_->held = false;
    if (!db_->throw_on_get.empty()) throw std::runtime_error(db_->throw_on_get);
    if (!db_->get_error.ok()) return db_->get_error;
    if (!db_->run) return flowrun::NotFound("no run row");
    return *db_->run;
  }
  StatusOr<flowrun::RecordedAnswer> RecordAnswer(const std::string&, const std::string& wait, const json& answer,
                                                 const flowrun::AnswerOptions& o) override {
    std::lock_guard<std::mutex> l(db_->mu);
    if (!db_->run || !db_->run->open_wait || db_->run->open_wait->name != wait)
      return flowrun::AlreadyExists("wait '" + wait + "' is not open");
    db_->answers.push_back({wait, answer, o.answered_by});
    db_->run->open_wait.reset();
    return flowrun::RecordedAnswer{wait, 1, false};
  }
  StatusOr<WaitExpiry> ExpireWait(const std::string&, flowrun::TimePoint now) override {
    std::lock_guard<std::mutex> l(db_->mu);
    db_->expiries.push_back(now);
    return WaitExpiry::kNotDue;
  }
  StatusOr<flowrun::ReplayInfo> PrepareReplay(const flowrun::ReplayRequest&) override { return Unused(); }
  Status SetBudget(const std::string&, std::optional<double>) override { return Status(); }
  StatusOr<std::vector<flowrun::CheckpointInfo>> ListCheckpoints(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::CheckpointFailure>> ListFailures(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ModelUsage>> UsageByModel(const std::string&) override { return Unused(); }
  StatusOr<json> GetCheckpointOutput(const std::string&, const flowrun::CheckpointKey&) override { return Unused(); }
  Status CancelRun(const std::string&, const std::string&) override { return Unused(); }
  Status DeleteRun(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ArtifactInfo>> ListArtifacts(const std::string&) override { return Unused(); }
  StatusOr<flowrun::Artifact> LoadArtifact(const std::string&, const std::string&, int) override { return Unused(); }

 private:
  static flowrun::Status Unused() { return flowrun::Unimplemented("not used by the loop's tests"); }
  FakeDatabase* db_;
};

// controller_runtime_reconcile_total{result} (result: success, error,
// requeue_after) and the other counters, read from the registry.
inline double CounterValue(const flowrun::metrics::ControllerMetrics& m, const std::string& family,
                           const std::string& label = "", const std::string& value = "") {
  double sum = 0;
  for (const auto& f : m.registry()->Collect()) {
    if (f.name != family && f.name + "_total" != family) continue;
    for (const auto& metric : f.metric) {
      bool match = label.empty();
      for (const auto& l : metric.label) match |= l.name == label && l.value == value;
      if (match) sum += metric.counter.value;
    }
  }
  return sum;
}

// One worker on a fake clock, against `cluster` and `db`.
struct Loop {
  Loop(FakeCluster* cluster, FakeDatabase* db, flowrun::TimePoint now = flowrun::TimePoint{})
      : log("error"), metrics("flowrun", "test", 1) {
    if (now != flowrun::TimePoint{}) clock.Advance(now - clock.Now());
    fa::Flags f;
    f.workers = 1;
    fa::FlowRunControllerDeps d;
    d.client = cluster;
    d.open_admin = [db]() -> StatusOr<std::unique_ptr<flowrun::RunAdmin>> {
      std::lock_guard<std::mutex> l(db->mu);
      ++db->opens;
      if (!db->open_error.ok()) return db->open_error;
      return std::unique_ptr<flowrun::RunAdmin>(std::make_unique<FakeSession>(db));
    };
    d.clock = &clock;
    d.log = &log;
    d.metrics = &metrics;
    d.phases = &phases;
    controller = std::make_unique<fa::FlowRunController>(f, fa::ToControllerConfig(f), std::move(d));
    cluster_ = cluster;
  }
  ~Loop() { Stop(); }
  void Start(bool workers = true) {
    ASSERT_TRUE(controller->StartInformers());
    if (workers) controller->StartWorkers();
  }
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    controller->RequestStop();
    cluster_->Stop();
    controller->Shutdown();
  }
  double Reconciles(const std::string& result) {
    return CounterValue(metrics, "controller_runtime_reconcile_total", "result", result);
  }
  // The queue after promoting what is due on the fake clock: keys ready,
  // keys waiting for their time, keys being worked on.
  flowrun::kube::WorkQueueStats Queue() { return controller->queue()->Stats(); }
  // Until the worker is idle, the watches delivered the echoes of its writes
  // and nothing is ready: whatever is left waits for the fake clock.
  bool Idle() {
    auto idle = [&] {
      auto s = Queue();
      return s.depth == 0 && s.processing == 0;
    };
    return flowrun::testing::Eventually([&] { return idle() && cluster_->Quiet() && idle(); },
                                        std::chrono::seconds(30), std::chrono::milliseconds(5));
  }

  flowrun::testing::FakeClock clock;
  fa::Logger log;
  flowrun::metrics::ControllerMetrics metrics;
  flowrun::metrics::PhaseCounter phases;
  std::unique_ptr<fa::FlowRunController> controller;

 private:
  FakeCluster* cluster_;
  bool stopped_ = false;
};

}  // namespace app_loop_test
