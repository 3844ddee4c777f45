// EventRecorder against a real control plane (label kube).
#include "flowrun/kube/event_recorder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>
#include <vector>
#include <string>
#include <thread>

#include "flowrun/kube/client.h"
#include "kube/unimplemented_client.h"
#include "flowrun/kube/config.h"
#include "kube/kube_cluster.h"

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using flowrun::testing::KubeCluster;

std::unique_ptr<KubeClient> AdminClient() {
  auto cfg = LoadKubeconfig(KubeCluster::Get().admin_kubeconfig());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  auto c = NewKubeClient(*cfg);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

// ---------- pure: a fake client that records writes ----------

class RecordingClient final : public flowrun::kube::testing::UnimplementedClient {
 public:
  std::vector<std::pair<std::string, nlohmann::json>> creates;  // (namespace, body)
  std::vector<nlohmann::json> patches;
  int fail_transient = 0;  // the next N writes fail with kUnavailable
  std::mutex mu;

  StatusOr<nlohmann::json> Create(const ResourceRef&, const std::string& ns, const nlohmann::json& o) override {
    std::lock_guard<std::mutex> l(mu);
    if (fail_transient > 0) {
      --fail_transient;
      return Unavailable("connection reset");
    }
    creates.emplace_back(ns, o);
    return o;
  }
  StatusOr<nlohmann::json> MergePatch(const ResourceRef&, const std::string&, const std::string&,
                                      const nlohmann::json& p, bool) override {
    std::lock_guard<std::mutex> l(mu);
    patches.push_back(p);
    return p;
  }
};

// A client whose writes wait until the test opens the gate: an API that does
// not answer. Record() returning while a write hangs proves it never waits
// for the API (whatever the machine's speed).
class GatedClient final : public flowrun::kube::testing::UnimplementedClient {
 public:
  StatusOr<nlohmann::json> Create(const ResourceRef&, const std::string&, const nlohmann::json& o) override {
    std::unique_lock<std::mutex> l(mu_);
    ++writes_started_;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    return o;
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits (30 s at most) until the writer is inside a Create.
  bool WaitWriting() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, 30s, [&] { return writes_started_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int writes_started_ = 0;
};

TEST(EventRecorderPure, RecordNeverWaitsForAHangingApiAndCountsWhatItDrops) {
  GatedClient api;
  EventRecorderOptions o;
  o.queue_capacity = 3;
  EventRecorder rec(&api, o);
  ObjectReference first{"v1", "ConfigMap", "ns", "obj-first", "", ""};
  rec.Record(first, EventType::kNormal, "Created", "created");
  ASSERT_TRUE(api.WaitWriting()) << "the writer never started";
  // The writer hangs in Create; 200 more Records still return, from another
  // thread so that a blocking Record fails the test instead of hanging it.
  auto recording = std::async(std::launch::async, [&] {
    for (int i = 0; i < 200; ++i) {
      ObjectReference ref{"v1", "ConfigMap", "ns", "obj-" + std::to_string(i), "", ""};
      rec.Record(ref, EventType::kNormal, "Created", "created");
    }
  });
  ASSERT_EQ(recording.wait_for(30s), std::future_status::ready) << "Record() waited for the API";
  auto st = rec.Stats();
  EXPECT_EQ(st.accepted, 1u + 3u) << "the one being written and a full queue";
  EXPECT_EQ(st.dropped_queue_full, 197u);
  api.Open();
  ASSERT_TRUE(rec.Flush(30s));
  EXPECT_EQ(rec.Stats().created, 4u);
}

TEST(EventRecorderPure, TruncatesAtAUtf8BoundaryAndUsesDefaultNamespaceForClusterObjects) {
  RecordingClient fc;
  EventRecorder rec(&fc);
  nlohmann::json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "n1"}, {"uid", "u1"}}}};
  // Room for 1021 bytes before the "..." marker; 'é' straddles that cut.
  std::string msg = std::string(1020, 'a') + "\xc3\xa9" + "tail";
  rec.Record(node, EventType::kWarning, "NodeLost", msg);
  ASSERT_TRUE(rec.Flush(5s));
  ASSERT_EQ(fc.creates.size(), 1u);
  EXPECT_EQ(fc.creates[0].first, "default");
  const auto& ev = fc.creates[0].second;
  // Cut before the 'é', never inside it, and marked as cut.
  EXPECT_EQ(ev["message"].get<std::string>(), std::string(1020, 'a') + "...");
  EXPECT_EQ(ev["involvedObject"]["kind"], "Node");
  EXPECT_EQ(ev["involvedObject"]["uid"], "u1");
  EXPECT_FALSE(ev["involvedObject"].contains("namespace"));
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["count"], 1);
  EXPECT_EQ(ev["metadata"]["name"].get<std::string>().rfind("n1.", 0), 0u);
}

TEST(EventRecorderPure, RetriesTransientErrorsThenCountsTheDrop) {
  RecordingClient fc;
  EventRecorder rec(&fc);
  ObjectReference ref{"v1", "ConfigMap", "ns", "cm", "uid-1", ""};
  fc.fail_transient = 2;  // two failures, the third attempt succeeds
  rec.Record(ref, EventType::kNormal, "A", "first");
  ASSERT_TRUE(rec.Flush(10s));
  EXPECT_EQ(fc.creates.size(), 1u);
  EXPECT_EQ(rec.Stats().write_errors, 0u);
  {
    std::lock_guard<std::mutex> l(fc.mu);
    fc.fail_transient = 3;  // all three attempts fail
  }
  rec.Record(ref, EventType::kNormal, "B", "second");
  ASSERT_TRUE(rec.Flush(10s));
  EXPECT_EQ(fc.creates.size(), 1u);
  EXPECT_EQ(rec.Stats().write_errors, 1u);
  EXPECT_NE(rec.Stats().last_error.find("connection reset"), std::string::npos);
}

TEST(EventRecorderPure, RepeatsBecomeCountPatchesAndShutdownWritesWhatIsQueued) {
  RecordingClient fc;
  {
    EventRecorder rec(&fc);
    ObjectReference ref{"v1", "ConfigMap", "ns", "cm", "uid-1", ""};
    for (int i = 0; i < 4; ++i) rec.Record(ref, EventType::kNormal, "Synced", "ok");
  }  // destructor: Shutdown() writes everything queued
  ASSERT_EQ(fc.creates.size(), 1u);
  ASSERT_EQ(fc.patches.size(), 3u);
  EXPECT_EQ(fc.patches[0]["count"], 2);
  EXPECT_EQ(fc.patches[2]["count"], 4);
  EXPECT_TRUE(fc.patches[2].contains("lastTimestamp"));
}

// ---------- against the real control plane ----------

class EventTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = AdminClient();
    ns_ = KubeCluster::Get().CreateNamespace("events-" + std::to_string(counter_++));
  }
  nlohmann::json MakeConfigMap(const std::string& name) {
    nlohmann::json cm = {{"apiVersion", "v1"},
                         {"kind", "ConfigMap"},
                         {"metadata", {{"name", name}, {"namespace", ns_}}},
                         {"data", {{"k", "v"}}}};
    auto r = client_->Create(resources::ConfigMaps(), ns_, cm);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : cm;
  }
  std::vector<nlohmann::json> EventsFor(const std::string& name) {
    ListOptions o;
    o.field_selector = "involvedObject.name=" + name + ",involvedObject.kind=ConfigMap";
    auto l = client_->List(resources::Events(), ns_, o);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? l->items : std::vector<nlohmann::json>{};
  }

  std::unique_ptr<KubeClient> client_;
  std::string ns_;
  static inline int counter_ = 0;
};

TEST_F(EventTest, RecordsEventsVisibleThroughTheApi) {
  auto cm = MakeConfigMap("target");
  EventRecorderOptions o;
  o.reporting_controller = "flowrun.dev/test-controller";
  o.reporting_instance = "test-1";
  EventRecorder rec(client_.get(), o);
  rec.Record(cm, EventType::kNormal, "Started", "attempt 1 started");
  rec.Record(cm, EventType::kWarning, "Failed", std::string(3000, 'x') + " tail");
  ASSERT_TRUE(rec.Flush(30s));
  auto st = rec.Stats();
  EXPECT_EQ(st.created, 2u) << st.last_error;
  EXPECT_EQ(st.write_errors, 0u) << st.last_error;

  auto events = EventsFor("target");
  ASSERT_EQ(events.size(), 2u);
  bool normal = false, warning = false;
  for (const auto& e : events) {
    EXPECT_EQ(e["involvedObject"]["uid"], cm["metadata"]["uid"]);
    EXPECT_EQ(e["involvedObject"]["kind"], "ConfigMap");
    EXPECT_EQ(e["reportingComponent"], "flowrun.dev/test-controller");
    EXPECT_EQ(e["reportingInstance"], "test-1");
    EXPECT_EQ(e["source"]["component"], "flowrun.dev/test-controller");
    EXPECT_EQ(e["count"], 1);
    if (e["reason"] == "Started") {
      normal = true;
      EXPECT_EQ(e["type"], "Normal");
      EXPECT_EQ(e["message"], "attempt 1 started");
    } else {
      warning = true;
      EXPECT_EQ(e["type"], "Warning");
      EXPECT_EQ(e["message"].get<std::string>().size(), 1024u) << "truncated to 1 KiB";
    }
  }
  EXPECT_TRUE(normal && warning);
}

TEST_F(EventTest, RepeatsAggregateIntoOneEvent) {
  auto cm = MakeConfigMap("repeat");
  EventRecorder rec(client_.get());
  for (int i = 0; i < 5; ++i) rec.Record(cm, EventType::kWarning, "BackOff", "restarting failed attempt");
  rec.Record(cm, EventType::kWarning, "BackOff", "a different message");
  ASSERT_TRUE(rec.Flush(30s));
  auto st = rec.Stats();
  EXPECT_EQ(st.created, 2u) << st.last_error;
  EXPECT_EQ(st.aggregated, 4u) << st.last_error;
  auto events = EventsFor("repeat");
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    if (e["message"] == "restarting failed attempt") {
      EXPECT_EQ(e["count"], 5);
    } else {
      EXPECT_EQ(e["count"], 1);
    }
  }

  // The aggregated Event was deleted meanwhile: the next repeat creates a new one.
  for (const auto& e : events) {
    DeleteOptions d;
    ASSERT_TRUE(client_->Delete(resources::Events(), ns_, e["metadata"]["name"], d).ok());
  }
  rec.Record(cm, EventType::kWarning, "BackOff", "restarting failed attempt");
  ASSERT_TRUE(rec.Flush(30s));
  events = EventsFor("repeat");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 1);
}

TEST_F(EventTest, BurstBeyondTheLimitIsDroppedAndCountedWithoutBlocking) {
  auto cm = MakeConfigMap("burst");
  EventRecorderOptions o;
  o.per_object_burst = 5;  // refill: one per 5 minutes (default)
  EventRecorder rec(client_.get(), o);
  // (That Record never waits for the API is proven against a hanging one in
  // EventRecorderPure.RecordNeverWaitsForAHangingApiAndCountsWhatItDrops.)
  for (int i = 0; i < 50; ++i) rec.Record(cm, EventType::kNormal, "Tick", "tick " + std::to_string(i));
  auto st = rec.Stats();
  EXPECT_EQ(st.accepted, 5u);
  EXPECT_EQ(st.dropped_rate_limited, 45u);
  ASSERT_TRUE(rec.Flush(30s));
  EXPECT_EQ(EventsFor("burst").size(), 5u);

  // Other objects have their own budget.
  auto other = MakeConfigMap("other");
  rec.Record(other, EventType::kNormal, "Tick", "first");
  EXPECT_EQ(rec.Stats().accepted, 6u);
}

TEST_F(EventTest, FullQueueDropsAndCountsWhileTheApiIsSlow) {
  EventRecorderOptions o;
  o.queue_capacity = 3;
  EventRecorder rec(client_.get(), o);
  for (int i = 0; i < 200; ++i) {
    ObjectReference ref{"v1", "ConfigMap", ns_, "obj-" + std::to_string(i), "", ""};
    rec.Record(ref, EventType::kNormal, "Created", "created");
  }
  auto st = rec.Stats();
  EXPECT_EQ(st.accepted + st.dropped_queue_full, 200u);
  EXPECT_GT(st.dropped_queue_full, 150u) << "the writer cannot keep up with 200 records in a tight loop";
  ASSERT_TRUE(rec.Flush(60s));
  EXPECT_EQ(rec.Stats().created, st.accepted);
}

}  // namespace
}  // namespace flowrun::kube
