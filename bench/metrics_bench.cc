// metrics_bench: the cost of flowrun's metrics (docs/metrics.md, "Benchmarks").
//
//   1. /metrics scrape time and size with 10,000 runs recorded in PostgreSQL
//      (5 namespaces x 20 flows x 3 models, 4 LLM calls, 1 attempt and 1
//      answered wait per run) and 10,000 FlowRuns in the phase counter;
//      baseline: a scrape of the health metrics alone. Targets <= 50 ms, <= 1 MB.
//   2. One full read of the totals from PostgreSQL (what a NOTIFY triggers).
//   3. Metrics work per checkpoint: in the agent none (the totals are
//      computed in PostgreSQL); in PostgreSQL the NOTIFY statement trigger on
//      each LLM-call insert (autocommit, like a checkpoint's write), measured
//      as the difference to the same inserts with the trigger disabled; in the
//      controller the per-event hooks (phase counter, reconcile, API request).
//      Target <= 1 us of in-process work.
//
// Usage: metrics_bench [--runs=N] [--scrapes=N] [--inserts=N]
// Prints figures; asserts nothing.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "flowrun/kube/workqueue.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/function_collector.h"
#include "flowrun/metrics/metrics_server.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/metrics/postgres_metrics_source.h"
#include "flowrun/metrics/workqueue_collector.h"
#include "flowrun/postgres.h"
#include "support/local_http.h"
#include "support/postgres_server.h"

using namespace flowrun;
using Steady = std::chrono::steady_clock;
using flowrun::testing::HttpGetBody;

namespace {

double Ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  double p50, p99, max;
};
Stats Percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  return {at(0.5), at(0.99), v.back()};
}

Stats ScrapeStats(int port, int n, size_t* size) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    auto t0 = Steady::now();
    std::string body = HttpGetBody(port, "/metrics");
    t.push_back(Ms(Steady::now() - t0));
    *size = body.size();
  }
  return Percentiles(t);
}

template <typename F>
double NsPerCall(int n, F f) {
  auto t0 = Steady::now();
  for (int i = 0; i < n; ++i) f(i);
  return std::chrono::duration<double, std::nano>(Steady::now() - t0).count() / n;
}

int Arg(int argc, char** argv, const char* name, int def) {
  std::string p = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], p.c_str(), p.size()) == 0) return std::atoi(argv[i] + p.size());
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = Arg(argc, argv, "runs", 10000);
  const int scrapes = Arg(argc, argv, "scrapes", 50);
  const int inserts = Arg(argc, argv, "inserts", 2000);
  auto pg = flowrun::testing::PostgresServer::Start(flowrun::testing::PostgresServer::Options{.durable = true});
  const std::string conn = pg->ConnectionString();
  if (Status m = Migrate(PostgresOptions{.conninfo = conn}); !m.ok()) {
    std::fprintf(stderr, "migrate: %s\n", m.ToString().c_str());
    return 1;
  }
  // Seed: runs spread over 5 namespaces x 20 flows; 4 calls over 3 models each.
  {
    pqxx::connection c(conn);
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO flowrun.runs (run_uid, namespace, name, flow, status)"
        " SELECT 'u' || i, 'ns-' || (i % 5), 'run-' || i, 'flow-' || (i % 20),"
        "  (ARRAY['succeeded', 'failed', 'waiting', 'running'])[1 + i % 4] FROM generate_series(1, $1) i",
        runs);
    tx.exec("INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, live_checkpoints, cached_checkpoints,"
            " saved_llm_calls, saved_input_tokens, saved_usd)"
            " SELECT run_uid, 1, 1, status, 4, 2, 2, 2000, 0.02 FROM flowrun.runs");
    tx.exec("INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, attempt, model, input_tokens, output_tokens,"
            " cached_tokens, latency_ms, cost_usd, price_source)"
            " SELECT run_uid, 1, s, 1, (ARRAY['gpt-4o', 'gpt-4o-mini', 'o3'])[1 + s % 3], 1000, 500, 100, 900, 0.0125,"
            " 'table' FROM flowrun.runs, generate_series(1, 4) s");
    tx.exec("INSERT INTO flowrun.waits (run_uid, name, occurrence, question, asked_at, answer, answered_at, answered_by)"
            " SELECT run_uid, 'approve', 1, 'ok?', now() - interval '1 hour', 'true', now() - interval '10 minutes',"
            " 'alice' FROM flowrun.runs");
    tx.commit();
  }

  // 2. One full read.
  std::vector<double> reads;
  size_t rows = 0;
  {
    auto src = metrics::NewPostgresMetricsSource(conn);
    if (!src->Connect().ok()) return 1;
    for (int i = 0; i < 10; ++i) {
      auto t0 = Steady::now();
      auto s = src->Read();
      reads.push_back(Ms(Steady::now() - t0));
      if (s.ok()) rows = s->rows.size();
    }
  }

  // 1. Scrapes: baseline (health metrics only), then everything.
  auto health = std::make_shared<metrics::ControllerMetrics>("flowrun", "bench", 4);
  health->SetLeader("flowrun-controller", true);
  for (const char* verb : {"GET", "PATCH", "POST", "DELETE", "WATCH"}) health->ObserveRequest(verb, 200, std::chrono::milliseconds(3));
  health->ObserveDbQuery("get_run", std::chrono::microseconds(500));
  health->ObserveReconcile(metrics::ReconcileResult::kSuccess, std::chrono::milliseconds(4));
  metrics::MetricsServer base;
  if (!base.Start("127.0.0.1:0").ok()) return 1;
  base.Register(health->registry());
  size_t base_size = 0;
  Stats base_t = ScrapeStats(base.port(), scrapes, &base_size);

  metrics::PhaseCounter phases;
  const char* kPhases[] = {"Succeeded", "Failed", "Waiting", "Running", "Pending", "BudgetExceeded"};
  for (int i = 0; i < runs; ++i)
    phases.Observe({{"metadata", {{"namespace", "ns-" + std::to_string(i % 5)}, {"name", "run-" + std::to_string(i)}}},
                    {"spec", {{"flow", "flow-" + std::to_string(i % 20)}}},
                    {"status", {{"phase", kPhases[i % 6]}}}});
  kube::WorkQueue queue(kube::WorkQueueOptions{.name = "flowruns"});
  auto totals = std::make_shared<metrics::DbTotals>(metrics::NewPostgresMetricsSource(conn), metrics::DbTotalsOptions{});
  totals->Start();
  totals->WaitForReads(1, std::chrono::seconds(60));
  auto queue_metrics = std::make_shared<metrics::WorkQueueCollector>(&queue);
  auto phase_metrics = std::make_shared<metrics::FunctionCollector>(
      [&phases] { return std::vector<prometheus::MetricFamily>{phases.Family()}; });
  metrics::MetricsServer full;
  if (!full.Start("127.0.0.1:0").ok()) return 1;
  full.Register(health->registry());
  full.Register(totals);
  full.Register(queue_metrics);
  full.Register(phase_metrics);
  size_t full_size = 0;
  Stats full_t = ScrapeStats(full.port(), scrapes, &full_size);

  // 3. Per checkpoint: the NOTIFY trigger in PostgreSQL, then in-process hooks.
  auto insert_us = [&](bool trigger) {
    pqxx::connection c(conn);
    {
      pqxx::nontransaction tx(c);
      tx.exec(trigger ? "ALTER TABLE flowrun.llm_calls ENABLE TRIGGER llm_calls_notify_metrics"
                      : "ALTER TABLE flowrun.llm_calls DISABLE TRIGGER llm_calls_notify_metrics");
    }
    c.prepare("ins",
              "INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, attempt, model, input_tokens, output_tokens,"
              " cached_tokens, latency_ms, cost_usd, price_source) VALUES ('u1', $1, $2, 1, 'gpt-4o', 1, 1, 0, 1, 0.01, 't')");
    static int epoch = 100;
    ++epoch;
    auto t0 = Steady::now();
    for (int i = 0; i < inserts; ++i) {
      pqxx::work tx(c);
      tx.exec_prepared("ins", epoch, i);
      tx.commit();
    }
    return std::chrono::duration<double, std::micro>(Steady::now() - t0).count() / inserts;
  };
  totals->Stop();  // its reads would compete with the inserts; measured separately below
  insert_us(false);  // warm up
  double without = insert_us(false), with = insert_us(true);
  double without2 = insert_us(false), with2 = insert_us(true);
  // With a listener refreshing (the controller's DbTotals with its defaults).
  auto listening = std::make_shared<metrics::DbTotals>(metrics::NewPostgresMetricsSource(conn), metrics::DbTotalsOptions{});
  listening->Start();
  listening->WaitForReads(1, std::chrono::seconds(60));
  double with_listener = insert_us(true);
  uint64_t refreshes = listening->reads();
  listening->Stop();
  double observe_ns = NsPerCall(1000000, [&](int i) {
    phases.Observe({{"metadata", {{"namespace", "ns-1"}, {"name", "run-" + std::to_string(i % 1000)}}},
                    {"spec", {{"flow", "flow-1"}}},
                    {"status", {{"phase", kPhases[i % 6]}}}});
  });
  nlohmann::json fr = {{"metadata", {{"namespace", "ns-1"}, {"name", "run-1"}}}, {"spec", {{"flow", "flow-1"}}},
                       {"status", {{"phase", "Running"}}}};
  double observe_only_ns = NsPerCall(1000000, [&](int) { phases.Observe(fr); });
  double reconcile_ns = NsPerCall(1000000, [&](int) {
    health->ObserveReconcile(metrics::ReconcileResult::kSuccess, std::chrono::milliseconds(3));
  });
  double request_ns = NsPerCall(1000000, [&](int) { health->ObserveRequest("GET", 200, std::chrono::milliseconds(2)); });

  std::printf("metrics_bench: %d runs (%d LLM calls) in PostgreSQL 15, %d FlowRuns in the phase counter\n", runs,
              runs * 4, runs);
  std::printf("  /metrics scrape, everything:  p50 %.2f ms  p99 %.2f ms  size %zu bytes  (target <= 50 ms, <= 1 MB)\n",
              full_t.p50, full_t.p99, full_size);
  std::printf("  /metrics scrape, health only: p50 %.2f ms  p99 %.2f ms  size %zu bytes  (baseline)\n", base_t.p50,
              base_t.p99, base_size);
  Stats rt = Percentiles(reads);
  std::printf("  full read of the totals:      p50 %.1f ms  max %.1f ms  (%zu rows; once per change burst, not per scrape)\n",
              rt.p50, rt.max, rows);
  std::printf("  LLM-call insert + commit:     %.1f / %.1f us with the NOTIFY trigger, %.1f / %.1f us without (baseline)\n",
              with, with2, without, without2);
  std::printf("  LLM-call insert + commit with the controller listening and refreshing: %.1f us (%llu full reads during %d inserts)\n",
              with_listener, static_cast<unsigned long long>(refreshes - 1), inserts);
  std::printf("  in-process per checkpoint in the agent: 0 (no metrics code on the agent's path)\n");
  std::printf("  controller hooks: phase counter %.0f ns (%.0f ns incl. building the event's JSON), reconcile %.0f ns,"
              " API request %.0f ns  (target <= 1000 ns)\n",
              observe_only_ns, observe_ns, reconcile_ns, request_ns);
  full.Stop();
  base.Stop();
  return 0;
}
