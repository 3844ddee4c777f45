// The metrics' pure parts and the refresher without a database:
// DB rows -> families, PhaseCounter, workqueue families, the exposition names
// of the health metrics, DbTotals' reconnect-and-re-read loop. ctest -L metrics-unit
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>

#include <prometheus/text_serializer.h>

#include "flowrun/kube/workqueue.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/db_snapshot.h"
#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/metrics_server.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/metrics/workqueue_collector.h"

namespace flowrun::metrics {
namespace {

using nlohmann::json;

std::string Text(const std::vector<prometheus::MetricFamily>& fams) {
  return prometheus::TextSerializer().Serialize(fams);
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(DbFamilies, CountersCarryNamespaceFlowModelAndTheirOwnLabel) {
  DbSnapshot s;
  s.rows = {{"cost_usd", "team-a", "research", "gpt-4o", "", 1.25},
            {"tokens", "team-a", "research", "gpt-4o", "input", 1000},
            {"saved_usd", "team-a", "research", "", "", 0.5},
            {"retries", "team-a", "research", "", "interrupted", 2},
            {"waits_open", "team-a", "research", "", "", 3},
            {"a_metric_from_a_newer_schema", "team-a", "research", "", "", 7}};
  std::string t = Text(DbFamilies(s));
  EXPECT_TRUE(Has(t, "flowrun_cost_usd_total{namespace=\"team-a\",flow=\"research\",model=\"gpt-4o\"} 1.25")) << t;
  EXPECT_TRUE(Has(t, "flowrun_tokens_total{namespace=\"team-a\",flow=\"research\",model=\"gpt-4o\",type=\"input\"} 1000"))
      << t;
  EXPECT_TRUE(Has(t, "flowrun_saved_usd_total{namespace=\"team-a\",flow=\"research\"} 0.5")) << t;
  EXPECT_TRUE(Has(t, "flowrun_retries_total{namespace=\"team-a\",flow=\"research\",reason=\"interrupted\"} 2")) << t;
  EXPECT_TRUE(Has(t, "flowrun_waits_open{namespace=\"team-a\",flow=\"research\"} 3")) << t;
  EXPECT_TRUE(Has(t, "# TYPE flowrun_cost_usd_total counter")) << t;
  EXPECT_TRUE(Has(t, "# TYPE flowrun_waits_open gauge")) << t;
  EXPECT_EQ(t.find("a_metric_from_a_newer_schema"), std::string::npos) << "unknown keys are not exported";
  EXPECT_EQ(t.find("run_uid"), std::string::npos);
}

TEST(DbFamilies, SeriesExistAtZeroBeforeTheirFirstIncrement) {
  // A run of a new flow has started (one attempt), nothing else happened yet:
  // the failure, budget and timeout counters already exist at 0.
  DbSnapshot s;
  s.rows = {{"attempts", "n", "f", "", "", 1}, {"llm_calls", "n", "f", "m", "", 1}};
  std::string t = Text(DbFamilies(s));
  EXPECT_TRUE(Has(t, "flowrun_runs_finished_total{namespace=\"n\",flow=\"f\",status=\"failed\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_budget_suspensions_total{namespace=\"n\",flow=\"f\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_retries_total{namespace=\"n\",flow=\"f\",reason=\"interrupted\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_tokens_total{namespace=\"n\",flow=\"f\",model=\"m\",type=\"cached\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_cost_usd_total{namespace=\"n\",flow=\"f\",model=\"m\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_waits_open{namespace=\"n\",flow=\"f\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_count{namespace=\"n\",flow=\"f\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_attempts_total{namespace=\"n\",flow=\"f\"} 1")) << t;
  // No model series for a model-less family, no guessed models.
  EXPECT_EQ(t.find("flowrun_saved_usd_total{namespace=\"n\",flow=\"f\",model"), std::string::npos) << t;
}

TEST(DbFamilies, EmptySnapshotStillDeclaresEveryFamily) {
  std::string t = Text(DbFamilies({}));
  for (const char* f : {"flowrun_cost_usd_total", "flowrun_saved_usd_total", "flowrun_wait_response_seconds",
                        "flowrun_runs_finished_total", "flowrun_wait_oldest_asked_timestamp_seconds"})
    EXPECT_NE(t.find(std::string("# TYPE ") + f), std::string::npos) << f;
}

TEST(DbFamilies, WaitResponseHistogramFillsBoundsBelowTheFirstObservation) {
  // Two answers: 100 s and 5000 s. The database has rows only for bounds with
  // a non-zero cumulative count.
  DbSnapshot s;
  for (const char* b : {"300", "900", "1800", "3600"}) s.rows.push_back({"wait_response_seconds_bucket", "n", "f", "", b, 1});
  for (const char* b : {"7200", "14400", "28800", "86400", "259200", "+Inf"})
    s.rows.push_back({"wait_response_seconds_bucket", "n", "f", "", b, 2});
  s.rows.push_back({"wait_response_seconds_sum", "n", "f", "", "", 5100});
  std::string t = Text(DbFamilies(s));
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_bucket{namespace=\"n\",flow=\"f\",le=\"10\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_bucket{namespace=\"n\",flow=\"f\",le=\"60\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_bucket{namespace=\"n\",flow=\"f\",le=\"300\"} 1")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_bucket{namespace=\"n\",flow=\"f\",le=\"7200\"} 2")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_bucket{namespace=\"n\",flow=\"f\",le=\"+Inf\"} 2")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_count{namespace=\"n\",flow=\"f\"} 2")) << t;
  EXPECT_TRUE(Has(t, "flowrun_wait_response_seconds_sum{namespace=\"n\",flow=\"f\"} 5100")) << t;
}

json FlowRun(const std::string& ns, const std::string& name, const std::string& flow, const std::string& phase) {
  json o = {{"metadata", {{"namespace", ns}, {"name", name}}}, {"spec", json::object()}};
  if (!flow.empty()) o["spec"]["flow"] = flow;
  if (!phase.empty()) o["status"]["phase"] = phase;
  return o;
}

TEST(PhaseCounter, CountsEachObjectOnceWhateverTheEventOrder) {
  PhaseCounter c;
  c.Observe(FlowRun("a", "r1", "research", ""));
  EXPECT_EQ(c.Count("a", "research", "Pending"), 1);
  c.Observe(FlowRun("a", "r1", "research", "Running"));
  c.Observe(FlowRun("a", "r1", "research", "Running"));  // a relist's update: no double count
  c.Observe(FlowRun("a", "r2", "", "Running"));          // no spec.flow: "default"
  EXPECT_EQ(c.Count("a", "research", "Pending"), 0);
  EXPECT_EQ(c.Count("a", "research", "Running"), 1);
  EXPECT_EQ(c.Count("a", "default", "Running"), 1);
  c.Forget(FlowRun("a", "r1", "research", "Running"));
  c.Forget(FlowRun("a", "r1", "research", "Running"));  // twice: nothing left to remove
  c.Forget(FlowRun("a", "never-seen", "x", "Failed"));
  EXPECT_EQ(c.Count("a", "research", "Running"), 0);
  std::string t = Text({c.Family()});
  EXPECT_TRUE(Has(t, "flowrun_runs{namespace=\"a\",flow=\"research\",phase=\"Running\"} 0")) << t;
  EXPECT_TRUE(Has(t, "flowrun_runs{namespace=\"a\",flow=\"default\",phase=\"Running\"} 1")) << t;
  EXPECT_EQ(t.find("r1"), std::string::npos) << "no run names in labels";
}

TEST(WorkQueueFamilies, ClientGoNamesAndValues) {
  kube::WorkQueue q(kube::WorkQueueOptions{.name = "flowruns"});
  q.Add("a");
  q.Add("b");
  auto k = q.Get();
  ASSERT_TRUE(k);
  q.AddRateLimited(*k);
  q.Done(*k);
  std::string t = Text(WorkQueueFamilies(q.Stats()));
  EXPECT_TRUE(Has(t, "workqueue_adds_total{name=\"flowruns\"} 2")) << t;
  EXPECT_TRUE(Has(t, "workqueue_retries_total{name=\"flowruns\"} 1")) << t;
  EXPECT_TRUE(Has(t, "workqueue_depth{name=\"flowruns\"} 1")) << t;
  EXPECT_TRUE(Has(t, "workqueue_work_duration_seconds_count{name=\"flowruns\"} 1")) << t;
  EXPECT_TRUE(Has(t, "workqueue_queue_duration_seconds_count{name=\"flowruns\"} 1")) << t;
  for (const char* f : {"workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds"})
    EXPECT_NE(t.find(std::string("# TYPE ") + f + " gauge"), std::string::npos) << f;
  q.ShutDown();
}

TEST(ControllerMetrics, ControllerRuntimeAndClientGoNames) {
  ControllerMetrics m("flowrun", "0.1.0", 4);
  m.ObserveReconcile(ReconcileResult::kSuccess, std::chrono::milliseconds(3));
  m.ObserveReconcile(ReconcileResult::kError, std::chrono::milliseconds(70));
  m.ObserveReconcile(ReconcileResult::kRequeueAfter, std::chrono::milliseconds(1));
  m.ObserveRequest("GET", 200, std::chrono::milliseconds(2));
  m.ObserveRequest("WATCH", 200, std::chrono::milliseconds(2));
  m.ObserveRequest("PATCH", 409, std::chrono::milliseconds(2));
  m.ObserveRequest("POST", 0, std::chrono::seconds(1));
  m.SetLeader("flowrun-controller", true);
  m.ObserveDbQuery("get_run", std::chrono::microseconds(800));
  std::string t = Text(m.registry()->Collect());
  EXPECT_TRUE(Has(t, "controller_runtime_reconcile_total{controller=\"flowrun\",result=\"success\"} 1")) << t;
  EXPECT_TRUE(Has(t, "controller_runtime_reconcile_total{controller=\"flowrun\",result=\"error\"} 1")) << t;
  EXPECT_TRUE(Has(t, "controller_runtime_reconcile_total{controller=\"flowrun\",result=\"requeue_after\"} 1")) << t;
  EXPECT_TRUE(Has(t, "controller_runtime_reconcile_errors_total{controller=\"flowrun\"} 1")) << t;
  EXPECT_TRUE(Has(t, "controller_runtime_reconcile_time_seconds_count{controller=\"flowrun\"} 3")) << t;
  EXPECT_TRUE(Has(t, "controller_runtime_max_concurrent_reconciles{controller=\"flowrun\"} 4")) << t;
  EXPECT_TRUE(Has(t, "rest_client_requests_total{code=\"200\",method=\"GET\"} 2")) << t;
  EXPECT_TRUE(Has(t, "rest_client_requests_total{code=\"409\",method=\"PATCH\"} 1")) << t;
  EXPECT_TRUE(Has(t, "rest_client_requests_total{code=\"<error>\",method=\"POST\"} 1")) << t;
  EXPECT_TRUE(Has(t, "rest_client_request_duration_seconds_count{verb=\"WATCH\"} 1")) << t;
  EXPECT_TRUE(Has(t, "leader_election_master_status{name=\"flowrun-controller\"} 1")) << t;
  EXPECT_TRUE(Has(t, "flowrun_db_query_duration_seconds_count{operation=\"get_run\"} 1")) << t;
  EXPECT_TRUE(Has(t, "flowrun_build_info{version=\"0.1.0\"} 1")) << t;
}

TEST(MetricsServer, BadAddressesAreClearErrorsAndPortZeroPicksAPort) {
  for (const char* bad : {"8080", "127.0.0.1:http", "127.0.0.1:70000", "not-an-ip:8080", "127.0.0.1:"}) {
    MetricsServer s;
    Status st = s.Start(bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad << ": " << st;
    EXPECT_NE(st.message().find("--metrics-addr"), std::string::npos) << st;
  }
  MetricsServer a;
  ASSERT_TRUE(a.Start("127.0.0.1:0").ok());
  EXPECT_GT(a.port(), 0);
  MetricsServer b;  // the same port again: busy
  Status busy = b.Start("127.0.0.1:" + std::to_string(a.port()));
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy;
}

// A scripted source: each Read() returns the next value of cost_usd; a read
// or a wait can be made to fail once, like a dropped connection.
class ScriptedSource : public MetricsSource {
 public:
  struct State {
    std::mutex mu;
    double cost = 1;
    int connects = 0;
    int reads = 0;
    bool fail_next_wait = false;
    bool notify = false;
    bool connected = false;
  };
  explicit ScriptedSource(std::shared_ptr<State> st) : st_(std::move(st)) {}
  Status Connect() override {
    std::lock_guard<std::mutex> l(st_->mu);
    ++st_->connects;
    st_->connected = true;
    return Status();
  }
  StatusOr<DbSnapshot> Read() override {
    std::lock_guard<std::mutex> l(st_->mu);
    if (!st_->connected) return Unavailable("read without Connect");
    ++st_->reads;
    DbSnapshot s;
    s.rows.push_back({"cost_usd", "n", "f", "m", "", st_->cost});
    return s;
  }
  StatusOr<bool> AwaitChange(std::chrono::milliseconds timeout) override {
    {
      std::lock_guard<std::mutex> l(st_->mu);
      if (st_->fail_next_wait) {
        st_->fail_next_wait = false;
        st_->connected = false;
        return Unavailable("connection lost");
      }
      if (st_->notify) {
        st_->notify = false;
        return true;
      }
    }
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
    return false;
  }

 private:
  std::shared_ptr<State> st_;
};

double CostIn(const DbTotals& t) {
  for (const auto& f : t.Collect())
    if (f.name == "flowrun_cost_usd_total" && !f.metric.empty()) return f.metric[0].counter.value;
  return -1;
}

TEST(DbTotals, NothingBeforeTheFirstReadThenFreshOnNotifyAndRereadAfterReconnect) {
  auto st = std::make_shared<ScriptedSource::State>();
  DbTotalsOptions o;
  o.min_interval = std::chrono::milliseconds(1);
  o.max_interval = std::chrono::hours(1);  // only notifications trigger reads here
  o.backoff_initial = std::chrono::milliseconds(1);
  std::atomic<int> errors{0};
  o.on_error = [&](const Status&) { ++errors; };
  DbTotals totals(std::make_unique<ScriptedSource>(st), o);
  EXPECT_EQ(CostIn(totals), -1) << "no DB-derived series before the first read";
  totals.Start();
  ASSERT_TRUE(totals.WaitForReads(1, std::chrono::seconds(10)));
  EXPECT_EQ(CostIn(totals), 1);

  uint64_t next = totals.reads_started() + 1;
  {
    std::lock_guard<std::mutex> l(st->mu);
    st->cost = 2;
    st->notify = true;
  }
  ASSERT_TRUE(totals.WaitForReads(next, std::chrono::seconds(10)));
  EXPECT_EQ(CostIn(totals), 2);

  // The connection drops; a change committed meanwhile is seen by the full
  // re-read after the reconnect, without any notification.
  next = totals.reads_started() + 1;
  {
    std::lock_guard<std::mutex> l(st->mu);
    st->cost = 3;
    st->fail_next_wait = true;
  }
  ASSERT_TRUE(totals.WaitForReads(next, std::chrono::seconds(10)));
  EXPECT_EQ(CostIn(totals), 3);
  EXPECT_GE(errors.load(), 1);
  {
    std::lock_guard<std::mutex> l(st->mu);
    EXPECT_GE(st->connects, 2);
  }
  std::string t = Text(totals.Collect());
  EXPECT_NE(t.find("flowrun_metrics_refresh_errors_total"), std::string::npos);
  totals.Stop();
}

}  // namespace
}  // namespace flowrun::metrics
