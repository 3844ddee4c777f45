// The controller loop (controller/app/flowrun_controller.h) against a fake
// Kubernetes client (tests/kube/unimplemented_client.h): no cluster, no
// database. Waits are on conditions (what the fake recorded), never sleeps.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/app/flowrun_controller.h"
#include "kube/unimplemented_client.h"

namespace {

using nlohmann::json;
using namespace flowrun;
using namespace flowrun::controller::app;

// Lists what it was given, watches block until cancelled, records writes.
class FakeCluster : public kube::testing::UnimplementedClient {
 public:
  explicit FakeCluster(std::vector<json> flowruns) : flowruns_(std::move(flowruns)) {}

  StatusOr<kube::ObjectList> List(const kube::ResourceRef& r, const std::string&, const kube::ListOptions&) override {
    kube::ObjectList l;
    if (r.resource == "flowruns") l.items = flowruns_;
    l.resource_version = "1";
    return l;
  }
  StatusOr<std::string> Watch(const kube::ResourceRef&, const std::string&, const kube::WatchOptions&,
                              const std::function<bool(const kube::WatchEvent&)>&, kube::CancelToken* cancel) override {
    std::unique_lock<std::mutex> l(mu_);
    if (cancel) cancel->SetOnCancel([this] {
        std::lock_guard<std::mutex> g(mu_);
        cv_.notify_all();
      });
    cv_.wait(l, [&] { return stopping_ || (cancel && cancel->cancelled()); });
    return std::string("1");
  }
  StatusOr<json> MergePatch(const kube::ResourceRef& r, const std::string& ns, const std::string& name,
                            const json& patch, bool status) override {
    std::lock_guard<std::mutex> l(mu_);
    patches_.push_back({{"resource", r.resource}, {"ns", ns}, {"name", name}, {"patch", patch}, {"status", status}});
    cv_.notify_all();
    return json{{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", "2"}}}};
  }
  StatusOr<json> Create(const kube::ResourceRef& r, const std::string&, const json& obj) override {
    std::lock_guard<std::mutex> l(mu_);
    if (r.resource == "events") events_.push_back(obj);
    cv_.notify_all();
    return obj;
  }

  // Waits (bounded, generous) until `pred` holds over the recorded writes.
  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(30), pred);
  }
  void Stop() {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

  std::vector<json> flowruns_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<json> patches_;  // guarded by mu_
  std::vector<json> events_;   // guarded by mu_
};

struct Loop {
  explicit Loop(FakeCluster* cluster) : log("error"), metrics("flowrun", "test", 1) {
    cluster_ = cluster;
    Flags f;
    f.workers = 1;
    FlowRunControllerDeps d;
    d.client = cluster;
    d.open_admin = [this]() -> StatusOr<std::unique_ptr<RunAdmin>> {
      {
        std::lock_guard<std::mutex> l(cluster_->mu_);
        ++admin_opens;
        cluster_->cv_.notify_all();
      }
      return Unavailable("no database in this test");
    };
    d.log = &log;
    d.metrics = &metrics;
    d.phases = &phases;
    controller = std::make_unique<FlowRunController>(f, ToControllerConfig(f), std::move(d));
  }
  FakeCluster* cluster_;
  Logger log;
  metrics::ControllerMetrics metrics;
  metrics::PhaseCounter phases;
  std::atomic<int> admin_opens{0};
  std::unique_ptr<FlowRunController> controller;
};

// A FlowRun the core cannot use (no uid): a ReconcileError condition and a
// Warning Event, and the key is forgotten, not retried with backoff.
TEST(AppController, PermanentErrorIsSurfacedAndNotRetried) {
  FakeCluster cluster(std::vector<json>{json::parse(R"({"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun",
      "metadata": {"name": "broken", "namespace": "ns", "resourceVersion": "1"}, "spec": {}})")});
  Loop loop(&cluster);
  ASSERT_TRUE(loop.controller->StartInformers());
  loop.controller->StartWorkers();
  ASSERT_TRUE(cluster.WaitFor([&] { return !cluster.patches_.empty() && !cluster.events_.empty(); }))
      << "no condition patch or event";
  {
    std::lock_guard<std::mutex> l(cluster.mu_);
    const json& p = cluster.patches_.front();
    EXPECT_EQ(p["resource"], "flowruns");
    EXPECT_EQ(p["name"], "broken");
    EXPECT_TRUE(p["status"].get<bool>());
    const json& c = p["patch"]["status"]["conditions"].back();
    EXPECT_EQ(c["type"], "ReconcileError");
    EXPECT_EQ(c["status"], "True");
    EXPECT_EQ(c["reason"], "InvalidObject");
    EXPECT_NE(c["message"].get<std::string>().find("uid"), std::string::npos) << c.dump();
    EXPECT_EQ(cluster.events_.front().value("type", ""), "Warning");
    EXPECT_EQ(cluster.events_.front().value("reason", ""), "InvalidObject");
  }
  // Forgotten: no backoff history for the key (a retried error would have one).
  EXPECT_EQ(loop.controller->queue()->NumRequeues("ns/broken"), 0);
  EXPECT_EQ(loop.admin_opens.load(), 1);  // opened lazily once; no uid, so no GetRun needed
  loop.controller->RequestStop();
  cluster.Stop();
  loop.controller->Shutdown();
}

// The database is unreachable: the reconcile is an error, retried with
// backoff, and every retry opens a new session (the old one is discarded).
TEST(AppController, DatabaseUnavailableIsRetriedWithBackoffAndANewSession) {
  FakeCluster cluster(std::vector<json>{json::parse(R"({"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun",
      "metadata": {"name": "ok", "namespace": "ns", "uid": "u1", "resourceVersion": "1", "generation": 1},
      "spec": {"agent": {"image": "x"}}})")});
  Loop loop(&cluster);
  ASSERT_TRUE(loop.controller->StartInformers());
  loop.controller->StartWorkers();
  ASSERT_TRUE(cluster.WaitFor([&] { return loop.admin_opens.load() >= 3; })) << loop.admin_opens.load();
  EXPECT_GE(loop.controller->queue()->NumRequeues("ns/ok"), 2);
  {
    std::lock_guard<std::mutex> l(cluster.mu_);
    EXPECT_TRUE(cluster.patches_.empty());  // nothing decided without the run's state
  }
  loop.controller->RequestStop();
  cluster.Stop();
  loop.controller->Shutdown();
}

}  // namespace
