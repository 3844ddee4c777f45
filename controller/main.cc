// flowrun-controller: wires the parts together. Flags (controller/app/flags.h),
// the Kubernetes client, the database, metrics, leader election, the health
// server, and the controller loop (controller/app/flowrun_controller.h);
// then waits for SIGTERM/SIGINT and shuts down in order. See docs/controller.md.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/flowrun_controller.h"
#include "flowrun/controller/app/health_server.h"
#include "flowrun/controller/app/log.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/leader_election.h"
#include "flowrun/kube/workqueue.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/function_collector.h"
#include "flowrun/metrics/metrics_server.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/metrics/postgres_metrics_source.h"
#include "flowrun/metrics/workqueue_collector.h"
#include "flowrun/controller/app/yaml_config_format.h"
#include "flowrun/postgres.h"

namespace {

using nlohmann::json;
using namespace flowrun;
using namespace flowrun::controller;
using app::Flags;
using app::HealthServer;

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App cli{"flowrun-controller: runs FlowRuns as Kubernetes Jobs"};
  app::AddFlags(cli, f);
  flowrun::controller::AddYamlConfigOption(cli);
  CLI11_PARSE(cli, argc, argv);
  const app::Logger logger(f.log_level);

  // Block the shutdown signals in every thread; main waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // Kubernetes configuration.
  StatusOr<kube::ClusterConfig> cfg = Status(StatusCode::kNotFound, "unset");
  if (!f.kubeconfig.empty()) {
    cfg = kube::LoadKubeconfig(f.kubeconfig);
  } else {
    cfg = kube::InClusterConfig();
    if (!cfg.ok()) cfg = kube::LoadKubeconfig();
  }
  if (!cfg.ok()) {
    logger.Log("error", "no Kubernetes configuration", {{"error", cfg.status().ToString()}});
    return 2;
  }
  // Health metrics exist even without --metrics-addr (cheap atomics); the
  // kube client reports every request to them.
  auto ctl_metrics = std::make_shared<metrics::ControllerMetrics>("flowrun", FLOWRUN_VERSION, f.workers);
  metrics::PhaseCounter phases;
  kube::ClientOptions co;
  co.user_agent = "flowrun-controller";
  co.observer = ctl_metrics;
  auto client = kube::NewKubeClient(*cfg, co);
  if (!client.ok()) {
    logger.Log("error", "cannot create the Kubernetes client", {{"error", client.status().ToString()}});
    return 2;
  }

  const char* db_url = std::getenv(f.database_url_env.c_str());
  if (!db_url || !*db_url) {
    logger.Log("error", "database URL not set", {{"env", f.database_url_env}});
    return 2;
  }
  {
    PostgresOptions po;
    po.conninfo = db_url;
    po.application_name = "flowrun-controller";
    Status m = Migrate(po);
    if (!m.ok()) logger.Log("warn", "database migration failed; the workers' first sessions migrate", {{"error", m.ToString()}});
  }

  ControllerConfig config = app::ToControllerConfig(f);

  logger.Log("info", "flowrun-controller starting",
      {{"namespace", f.ns.empty() ? "(all)" : f.ns}, {"workers", f.workers}, {"leaderElect", f.leader_elect}});

  std::unique_ptr<kube::KubeClient> kube_client = std::move(*client);
  app::FlowRunControllerDeps deps;
  deps.client = kube_client.get();
  deps.open_admin = [url = std::string(db_url)] {
    PostgresOptions po;
    po.conninfo = url;
    po.application_name = "flowrun-controller";
    po.connect_attempts = 2;
    auto admin = OpenPostgresRunAdmin(po);
    // The controller owns the schema: when the migration at start did not
    // happen (the database was down then), a worker's first session does it.
    if (!admin.ok() && admin.status().code() == StatusCode::kFailedPrecondition) {
      if (Status m = Migrate(po); !m.ok()) return StatusOr<std::unique_ptr<RunAdmin>>(m);
      admin = OpenPostgresRunAdmin(po);
    }
    return admin;
  };
  deps.log = &logger;
  deps.metrics = ctl_metrics.get();
  deps.phases = &phases;
  app::FlowRunController controller(f, config, std::move(deps));

  // Leader election: reconcile only while leading; losing the lease ends the process.
  std::unique_ptr<kube::LeaderElector> elector;
  std::mutex lead_mu;
  std::condition_variable lead_cv;
  bool leading = !f.leader_elect;
  if (f.leader_elect) {
    kube::LeaderElectionConfig lc;
    std::string ns = f.leader_election_namespace;
    if (ns.empty()) {
      if (FILE* nf = std::fopen("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "r")) {
        char buf[256] = {0};
        size_t n = std::fread(buf, 1, sizeof buf - 1, nf);
        std::fclose(nf);
        ns.assign(buf, n);
      }
      if (ns.empty()) ns = "default";
    }
    lc.lease_namespace = ns;
    lc.lease_name = f.leader_election_name;
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    std::random_device rd;
    lc.identity = std::string(host) + "_" + std::to_string(rd());
    lc.on_started_leading = [&] {
      logger.Log("info", "became leader", {{"lease", ns + "/" + f.leader_election_name}});
      ctl_metrics->SetLeader(f.leader_election_name, true);
      std::lock_guard<std::mutex> l(lead_mu);
      leading = true;
      lead_cv.notify_all();
    };
    lc.on_stopped_leading = [&] {
      ctl_metrics->SetLeader(f.leader_election_name, false);
      logger.Log("warn", "lost leadership; shutting down");
      kill(getpid(), SIGTERM);
    };
    auto e = kube::LeaderElector::Create(kube_client.get(), lc);
    if (!e.ok()) {
      logger.Log("error", "leader election misconfigured", {{"error", e.status().ToString()}});
      return 2;
    }
    elector = std::move(*e);
    ctl_metrics->SetLeader(f.leader_election_name, false);
    elector->Start();
  } else {
    // Without election this process is the only one reconciling.
    ctl_metrics->SetLeader(f.leader_election_name, true);
  }

  // Metrics: every replica serves the same absolute totals from PostgreSQL
  // (queries take `max without (instance, pod)`), so a leader change neither
  // drops nor doubles them; runs by phase come from the leader's cache.
  metrics::MetricsServer metrics_server;
  std::shared_ptr<metrics::DbTotals> db_totals;
  std::shared_ptr<prometheus::Collectable> queue_metrics, phase_metrics;
  if (!f.metrics_addr.empty()) {
    metrics::DbTotalsOptions dto;
    dto.min_interval = std::chrono::milliseconds(f.metrics_min_refresh_ms);
    dto.on_read = [m = ctl_metrics.get()](std::chrono::nanoseconds took, bool) { m->ObserveDbQuery("metrics_read", took); };
    dto.on_error = [&logger](const Status& st) { logger.Log("warn", "metrics: reading totals failed; retrying", {{"error", st.ToString()}}); };
    db_totals = std::make_shared<metrics::DbTotals>(metrics::NewPostgresMetricsSource(db_url), std::move(dto));
    queue_metrics = std::make_shared<metrics::WorkQueueCollector>(controller.queue());
    phase_metrics = std::make_shared<metrics::FunctionCollector>(
        [&phases] { return std::vector<prometheus::MetricFamily>{phases.Family()}; });
    Status ms = metrics_server.Start(f.metrics_addr);
    if (!ms.ok()) {
      logger.Log("error", "metrics server failed", {{"error", ms.ToString()}});
      return 2;
    }
    metrics_server.Register(ctl_metrics->registry());
    metrics_server.Register(db_totals);
    metrics_server.Register(queue_metrics);
    metrics_server.Register(phase_metrics);
    db_totals->Start();
    logger.Log("info", "metrics server listening", {{"port", metrics_server.port()}});
  }

  HealthServer health([&] {
    std::lock_guard<std::mutex> l(lead_mu);
    return leading && controller.synced();
  });
  if (!f.health_addr.empty()) {
    Status hs = health.Start(f.health_addr);
    if (!hs.ok()) {
      logger.Log("error", "health server failed", {{"error", hs.ToString()}});
      return 2;
    }
    logger.Log("info", "health server listening", {{"port", health.port()}});
  }

  // Start once leading (or right away); the signal waiter runs meanwhile.
  std::atomic<bool> stop{false};
  std::thread starter([&] {
    {
      std::unique_lock<std::mutex> l(lead_mu);
      lead_cv.wait(l, [&] { return leading || stop.load(); });
    }
    if (stop.load()) return;
    if (controller.StartInformers() && !stop.load()) controller.StartWorkers();
  });

  int sig = 0;
  sigwait(&sigs, &sig);
  logger.Log("info", "signal received; shutting down", {{"signal", sig}});
  {
    std::lock_guard<std::mutex> l(lead_mu);
    stop = true;
    lead_cv.notify_all();
  }
  controller.RequestStop();
  starter.join();
  controller.Shutdown();
  metrics_server.Stop();
  if (db_totals) db_totals->Stop();
  health.Stop();
  if (elector) elector->Stop();
  return 0;
}
