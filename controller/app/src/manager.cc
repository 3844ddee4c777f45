// The flowrun-controller process's parts around the loop (manager.h).
#include "flowrun/controller/app/manager.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "flowrun/controller/app/health_server.h"
#include "flowrun/kube/leader_election.h"
#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/function_collector.h"
#include "flowrun/metrics/metrics_server.h"
#include "flowrun/metrics/workqueue_collector.h"

namespace flowrun::controller::app {

std::string LeaseNamespace(const std::string& flag, const std::string& namespace_file) {
  if (!flag.empty()) return flag;
  std::string ns;
  if (FILE* f = std::fopen(namespace_file.c_str(), "r")) {
    char buf[256] = {0};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    ns.assign(buf, n);
  }
  while (!ns.empty() && (ns.back() == '\n' || ns.back() == ' ' || ns.back() == '\r')) ns.pop_back();
  return ns.empty() ? "default" : ns;
}

std::string LeaderIdentity(const std::string& host, uint64_t random) { return host + "_" + std::to_string(random); }

struct Manager::Impl {
  Impl(Flags f, ManagerDeps d) : flags(std::move(f)), deps(std::move(d)), health([this] { return ready(); }) {}

  Status Start() {
    const Logger& log = *deps.log;
    if (flags.leader_elect) {
      kube::LeaderElectionConfig lc;
      const std::string ns = LeaseNamespace(flags.leader_election_namespace, deps.service_account_namespace_file);
      lc.lease_namespace = ns;
      lc.lease_name = flags.leader_election_name;
      lc.identity = deps.identity;
      if (lc.identity.empty()) {
        char host[256] = {0};
        gethostname(host, sizeof host - 1);
        std::random_device rd;
        lc.identity = LeaderIdentity(host, rd());
      }
      lc.clock = deps.clock;
      lc.on_started_leading = [this, ns] {
        deps.log->Log("info", "became leader", {{"lease", ns + "/" + flags.leader_election_name}});
        deps.metrics->SetLeader(flags.leader_election_name, true);
        std::lock_guard<std::mutex> l(mu);
        is_leading = true;
        cv.notify_all();
      };
      lc.on_stopped_leading = [this] {
        deps.metrics->SetLeader(flags.leader_election_name, false);
        {
          std::lock_guard<std::mutex> l(mu);
          is_leading = false;
        }
        // Stop() releasing the lease at shutdown is not a loss.
        if (stopping.load()) return;
        deps.log->Log("warn", "lost leadership; shutting down");
        if (deps.on_lost_leadership) deps.on_lost_leadership();
      };
      auto e = kube::LeaderElector::Create(deps.client, lc);
      if (!e.ok()) {
        log.Log("error", "leader election misconfigured", {{"error", e.status().ToString()}});
        return e.status();
      }
      elector = std::move(*e);
      deps.metrics->SetLeader(flags.leader_election_name, false);
      elector->Start();
    } else {
      // Without election this process is the only one reconciling.
      is_leading = true;
      deps.metrics->SetLeader(flags.leader_election_name, true);
    }

    // Metrics: every replica serves the same absolute totals from PostgreSQL
    // (queries take `max without (instance, pod)`), so a leader change
    // neither drops nor doubles them; runs by phase come from the leader's
    // cache.
    if (!flags.metrics_addr.empty()) {
      metrics::DbTotalsOptions dto;
      dto.min_interval = std::chrono::milliseconds(flags.metrics_min_refresh_ms);
      dto.clock = deps.clock;
      dto.on_read = [m = deps.metrics](std::chrono::nanoseconds took, bool) { m->ObserveDbQuery("metrics_read", took); };
      dto.on_error = [l = deps.log](const Status& st) {
        l->Log("warn", "metrics: reading totals failed; retrying", {{"error", st.ToString()}});
      };
      db_totals = std::make_shared<metrics::DbTotals>(deps.open_totals_source(), std::move(dto));
      queue_metrics = std::make_shared<metrics::WorkQueueCollector>(deps.controller->queue());
      phase_metrics = std::make_shared<metrics::FunctionCollector>(
          [p = deps.phases] { return std::vector<prometheus::MetricFamily>{p->Family()}; });
      Status ms = metrics_server.Start(flags.metrics_addr);
      if (!ms.ok()) {
        log.Log("error", "metrics server failed", {{"error", ms.ToString()}});
        return ms;
      }
      metrics_server.Register(deps.metrics->registry());
      metrics_server.Register(db_totals);
      metrics_server.Register(queue_metrics);
      metrics_server.Register(phase_metrics);
      db_totals->Start();
      log.Log("info", "metrics server listening", {{"port", metrics_server.port()}});
    }

    if (!flags.health_addr.empty()) {
      Status hs = health.Start(flags.health_addr);
      if (!hs.ok()) {
        log.Log("error", "health server failed", {{"error", hs.ToString()}});
        return hs;
      }
      log.Log("info", "health server listening", {{"port", health.port()}});
    }

    // Start once leading (or right away); main waits for a signal meanwhile.
    starter = std::thread([this] {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return is_leading || stopping.load(); });
      }
      if (stopping.load()) return;
      if (deps.controller->StartInformers() && !stopping.load()) deps.controller->StartWorkers();
    });
    return Status();
  }

  void Shutdown() {
    if (shut_down) return;
    shut_down = true;
    {
      std::lock_guard<std::mutex> l(mu);
      stopping = true;
      cv.notify_all();
    }
    deps.controller->RequestStop();
    if (starter.joinable()) starter.join();
    deps.controller->Shutdown();
    metrics_server.Stop();
    if (db_totals) db_totals->Stop();
    health.Stop();
    if (elector) elector->Stop();
  }

  bool leading() const {
    std::lock_guard<std::mutex> l(mu);
    return is_leading;
  }
  bool ready() const { return leading() && deps.controller->synced(); }

  Flags flags;
  ManagerDeps deps;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool is_leading = false;  // guarded by mu
  std::atomic<bool> stopping{false};
  bool shut_down = false;
  std::unique_ptr<kube::LeaderElector> elector;
  metrics::MetricsServer metrics_server;
  std::shared_ptr<metrics::DbTotals> db_totals;
  std::shared_ptr<prometheus::Collectable> queue_metrics, phase_metrics;
  HealthServer health;
  std::thread starter;
};

Manager::Manager(Flags flags, ManagerDeps deps) : impl_(std::make_unique<Impl>(std::move(flags), std::move(deps))) {}
Manager::~Manager() { Shutdown(); }
Status Manager::Start() { return impl_->Start(); }
void Manager::Shutdown() { impl_->Shutdown(); }
bool Manager::leading() const { return impl_->leading(); }
bool Manager::ready() const { return impl_->ready(); }
int Manager::health_port() const { return impl_->health.port(); }
int Manager::metrics_port() const { return impl_->metrics_server.port(); }

}  // namespace flowrun::controller::app
