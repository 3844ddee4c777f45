// flowrun-controller: wires the parts together. Flags (controller/app/flags.h),
// the Kubernetes client, the database, the controller loop
// (controller/app/flowrun_controller.h) and the Manager that runs it with
// leader election and the metrics and health servers (manager.h); then waits
// for SIGTERM/SIGINT and shuts down in order. See docs/controller.md.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "flowrun/controller/app/database_sessions.h"
#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/flowrun_controller.h"
#include "flowrun/controller/app/log.h"
#include "flowrun/controller/app/manager.h"
#include "flowrun/controller/app/yaml_config_format.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/metrics/postgres_metrics_source.h"
#include "flowrun/query/query_server.h"

namespace {

using namespace flowrun;
using namespace flowrun::controller;

}  // namespace

int main(int argc, char** argv) {
  app::Flags f;
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
  (void)app::MigrateAtStart(db_url, logger);  // logged; the workers' first sessions retry it

  ControllerConfig config = app::ToControllerConfig(f);

  logger.Log("info", "flowrun-controller starting",
      {{"namespace", f.ns.empty() ? "(all)" : f.ns}, {"workers", f.workers}, {"leaderElect", f.leader_elect}});

  std::unique_ptr<kube::KubeClient> kube_client = std::move(*client);
  app::FlowRunControllerDeps deps;
  deps.client = kube_client.get();
  deps.open_admin = app::PostgresSessionFactory(db_url);
  deps.log = &logger;
  deps.metrics = ctl_metrics.get();
  deps.phases = &phases;
  app::FlowRunController controller(f, config, std::move(deps));

  // Leader election, the metrics and health servers, and the loop while leading.
  app::ManagerDeps md;
  md.client = kube_client.get();
  md.controller = &controller;
  md.metrics = ctl_metrics.get();
  md.phases = &phases;
  md.open_totals_source = [url = std::string(db_url)] { return metrics::NewPostgresMetricsSource(url); };
  md.log = &logger;
  // Losing the lease ends the process through the usual drain below.
  md.on_lost_leadership = [] { kill(getpid(), SIGTERM); };
  app::Manager manager(f, std::move(md));
  if (!manager.Start().ok()) return 2;  // logged by the Manager

  // The read API: every replica serves it, leading or not (docs/read-api.md).
  std::unique_ptr<query::QueryServer> query_server;
  if (!f.query_addr.empty()) {
    query::QueryServerOptions qo;
    qo.addr = f.query_addr;
    qo.cert_file = f.query_tls_cert_file;
    qo.key_file = f.query_tls_key_file;
    qo.requestheader_client_ca_file = f.query_requestheader_client_ca_file;
    qo.requestheader_allowed_names = f.query_requestheader_allowed_names;
    qo.authz_cache_ttl = std::chrono::milliseconds(f.query_authz_cache_ttl_ms);
    qo.max_output_bytes = f.query_max_output_bytes;
    qo.max_artifact_bytes = f.query_max_artifact_bytes;
    qo.database_url = db_url;
    qo.db_connections = f.query_db_connections;
    query::QueryServerDeps qd;
    qd.client = kube_client.get();
    qd.log = [&logger](const std::string& level, const std::string& msg, const std::string& detail) {
      logger.Log(level, msg, detail.empty() ? nlohmann::json::object() : nlohmann::json{{"detail", detail}});
    };
    query_server = std::make_unique<query::QueryServer>(std::move(qo), std::move(qd));
    Status qs = query_server->Start();
    if (!qs.ok()) {
      logger.Log("error", "read API server failed", {{"error", qs.ToString()}});
      manager.Shutdown();
      return 2;
    }
    logger.Log("info", "read API listening", {{"port", query_server->port()}});
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  logger.Log("info", "signal received; shutting down", {{"signal", sig}});
  if (query_server) query_server->Stop();
  manager.Shutdown();
  return 0;
}
