// Manager: runs the parts of the flowrun-controller process around the
// controller loop (controller-runtime's manager is the model): leader
// election on a Lease (--leader-elect), the metrics server (--metrics-addr:
// the controller's own metrics, the workqueue's, runs by phase and the
// PostgreSQL totals), the health server (--health-addr), and the controller
// loop, started once this process leads (at once without election) and
// drained at Shutdown. main.cc only builds the dependencies and waits for a
// signal (docs/controller.md).
//
// Readiness (/readyz) is "leading and the informers synced". Losing the
// lease calls deps.on_lost_leadership (main raises SIGTERM, so the usual
// drain runs and the process exits: the simplest correct answer, since
// writes must stop at once).
//
// The log lines ("became leader", "metrics server listening" with its port,
// "health server listening", ...) are read by tests and operators: keep them.
//
// Ownership: every pointer in ManagerDeps is not owned and must outlive the
// Manager; the Manager owns the servers, the elector and its threads.
// Thread safety: Start and Shutdown from one thread; the accessors from any.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "flowrun/clock.h"
#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/flowrun_controller.h"
#include "flowrun/controller/app/log.h"
#include "flowrun/kube/client.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/metrics_source.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/status.h"

namespace flowrun::controller::app {

inline constexpr char kServiceAccountNamespaceFile[] = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

struct ManagerDeps {
  kube::KubeClient* client = nullptr;       // the Lease
  FlowRunController* controller = nullptr;  // run while leading
  metrics::ControllerMetrics* metrics = nullptr;
  metrics::PhaseCounter* phases = nullptr;
  // The source of the PostgreSQL totals on /metrics; called once by Start()
  // when --metrics-addr is set.
  std::function<std::unique_ptr<metrics::MetricsSource>()> open_totals_source;
  const Logger* log = nullptr;
  Clock* clock = nullptr;  // leader election and the totals' pauses; nullptr: DefaultClock()
  // Runs on the elector's thread when the lease is lost; must not block on
  // the Manager (main raises SIGTERM).
  std::function<void()> on_lost_leadership;
  // "" : LeaderIdentity(host name, a random number).
  std::string identity;
  // Where the pod's namespace is, for --leader-election-namespace "".
  std::string service_account_namespace_file = kServiceAccountNamespaceFile;
};

class Manager {
 public:
  Manager(Flags flags, ManagerDeps deps);
  ~Manager();  // Shutdown()
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Starts, in this order: leader election, the metrics server, the health
  // server, and a thread that starts the controller (informers, then
  // workers) once leading. Errors, logged before they are returned (main
  // exits 2): kInvalidArgument when leader election is misconfigured; a
  // server's error when it cannot listen. What started before an error is
  // stopped by Shutdown().
  Status Start();
  // Stops the controller (no new keys, the queue drained, workers joined),
  // then the metrics server, the totals, the health server, and last leader
  // election (releasing the Lease, so a standby takes over at once).
  // Idempotent.
  void Shutdown();

  bool leading() const;
  bool ready() const;      // leading and the informers synced: /readyz
  int health_port() const;   // 0 without a health server
  int metrics_port() const;  // 0 without a metrics server

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The Lease's namespace: the flag, else the pod's own namespace (the service
// account's namespace file, trimmed), else "default".
std::string LeaseNamespace(const std::string& flag, const std::string& namespace_file);
// "<host>_<random>": unique per process, and names the pod in the Lease.
std::string LeaderIdentity(const std::string& host, uint64_t random);

}  // namespace flowrun::controller::app
