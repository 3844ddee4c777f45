// flowrun-controller: watches FlowRuns and their Jobs and Pods, and drives
// each run through the pure reconcile core (flowrun/controller/reconcile.h),
// executing its actions with the adapters (flowrun/controller/adapters.h).
// See docs/controller.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "flowrun/controller/adapters.h"
#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/health_server.h"
#include "flowrun/controller/app/log.h"
#include "flowrun/controller/app/retry_policy.h"
#include "flowrun/controller/app/update_predicate.h"
#include "flowrun/controller/reconcile.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/errors.h"
#include "flowrun/kube/event_recorder.h"
#include "flowrun/kube/informer.h"
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

std::string OwnerFlowRunKeyOfJob(const json& job) {
  const json& md = job.value("metadata", json::object());
  if (md.contains("ownerReferences") && md["ownerReferences"].is_array())
    for (const auto& ref : md["ownerReferences"])
      if (ref.value("kind", "") == kKind && ref.value("apiVersion", "").rfind("flowrun.dev/", 0) == 0)
        return kube::ObjectKey(md.value("namespace", ""), ref.value("name", ""));
  return "";
}

class Controller {
 public:
  Controller(Flags flags, ControllerConfig config, std::unique_ptr<kube::KubeClient> client, std::string db_url,
             metrics::ControllerMetrics* metrics, metrics::PhaseCounter* phases, const app::Logger* log)
      : log_(log),
        flags_(std::move(flags)),
        config_(std::move(config)),
        client_(std::move(client)),
        db_url_(std::move(db_url)),
        metrics_(metrics),
        phases_(phases) {
    kube::InformerOptions fo;
    fo.resource = kube::resources::FlowRuns();
    fo.ns = flags_.ns;
    fo.name = "flowruns";
    // The core names who answered from these entries (answeredBy), so they
    // are cached rather than fetched live (B2).
    fo.keep_managed_field = app::ManagedFieldTouchesAnswers;
    flowruns_ = std::make_unique<kube::Informer>(client_.get(), fo);
    flowruns_->AddIndex("uid", [](const json& o) -> std::vector<std::string> {
      std::string uid = o.value("metadata", json::object()).value("uid", "");
      if (uid.empty()) return {};
      return {uid};
    });

    jobs_ = RunOwnedInformer(kube::resources::Jobs(), "jobs");
    pods_ = RunOwnedInformer(kube::resources::Pods(), "pods");

    kube::WorkQueueOptions qo;
    qo.name = "flowruns";
    queue_ = std::make_unique<kube::WorkQueue>(std::move(qo));

    events_ = std::make_unique<kube::EventRecorder>(client_.get());
    executor_ = std::make_unique<ActionExecutor>(
        client_.get(), events_.get(),
        [this](const std::string& level, const std::string& msg, const json& fields) { log_->Log(level, msg, fields); });

    auto enqueue = [this](const kube::ObjectPtr& o) {
      if (o) queue_->Add(kube::ObjectKey(*o));
    };
    // Updates enqueue only when they change something the core reads; the
    // controller's own status patches do not (update_predicate.h).
    flowruns_->AddEventHandler({enqueue, [this](const kube::ObjectPtr& o, const kube::ObjectPtr& n) {
                                  if (n && (!o || app::FlowRunUpdateMatters(*o, *n))) queue_->Add(kube::ObjectKey(*n));
                                },
                                [this](const kube::ObjectPtr& o, bool) {
                                  if (o) queue_->Add(kube::ObjectKey(*o));
                                }});
    auto job_enqueue = [this](const kube::ObjectPtr& o) {
      if (!o) return;
      std::string key = OwnerFlowRunKeyOfJob(*o);
      if (!key.empty()) queue_->Add(key);
    };
    jobs_->AddEventHandler({job_enqueue,
                            [job_enqueue](const kube::ObjectPtr& o, const kube::ObjectPtr& n) {
                              if (n && (!o || app::JobUpdateMatters(*o, *n))) job_enqueue(n);
                            },
                            [job_enqueue](const kube::ObjectPtr& o, bool) { job_enqueue(o); }});
    // A Pod names its FlowRun by the run-uid label the Job's pod template
    // carries (job_builder.cc): one mapping, no detour through the Job.
    auto pod_enqueue = [this](const kube::ObjectPtr& o) {
      if (!o) return;
      const json& md = o->value("metadata", json::object());
      std::string uid = md.value("labels", json::object()).value(kLabelRunUid, "");
      if (!uid.empty())
        for (const auto& fr : flowruns_->ByIndex("uid", uid)) queue_->Add(kube::ObjectKey(*fr));
    };
    pods_->AddEventHandler({pod_enqueue,
                            [pod_enqueue](const kube::ObjectPtr& o, const kube::ObjectPtr& n) {
                              if (n && (!o || app::PodUpdateMatters(*o, *n))) pod_enqueue(n);
                            },
                            [pod_enqueue](const kube::ObjectPtr& o, bool) { pod_enqueue(o); }});
    // flowrun_runs{phase}: what this cache holds, i.e. `kubectl get flowruns`.
    flowruns_->AddEventHandler({[this](const kube::ObjectPtr& o) { if (o) phases_->Observe(*o); },
                                [this](const kube::ObjectPtr&, const kube::ObjectPtr& n) { if (n) phases_->Observe(*n); },
                                [this](const kube::ObjectPtr& o, bool) { if (o) phases_->Forget(*o); }});
  }

  // Starts informers; waits for their sync (false: stopped first).
  bool StartInformers() {
    jobs_->Start();
    pods_->Start();
    flowruns_->Start();
    while (!stopping_.load()) {
      if (jobs_->WaitForSync(std::chrono::milliseconds(500)) && pods_->WaitForSync(std::chrono::milliseconds(500)) &&
          flowruns_->WaitForSync(std::chrono::milliseconds(500))) {
        log_->Log("info", "informers synced", {{"flowruns", flowruns_->Size()}, {"jobs", jobs_->Size()}, {"pods", pods_->Size()}});
        synced_ = true;
        return true;
      }
    }
    return false;
  }

  void StartWorkers() {
    for (int i = 0; i < flags_.workers; ++i) workers_.emplace_back([this, i] { Worker(i); });
    log_->Log("info", "workers started", {{"workers", flags_.workers}});
  }

  // Stop informers (no new keys), then drain the queue and join workers.
  void Shutdown() {
    stopping_ = true;
    flowruns_->Stop();
    jobs_->Stop();
    pods_->Stop();
    queue_->ShutDownWithDrain();
    for (auto& t : workers_) t.join();
    workers_.clear();
    events_->Shutdown();
    log_->Log("info", "controller stopped");
  }

  bool synced() const { return synced_.load(); }
  kube::WorkQueue* queue() { return queue_.get(); }
  // Ends StartInformers' wait; Shutdown() does the rest.
  void RequestStop() { stopping_ = true; }

 private:
  void Worker(int id) {
    std::unique_ptr<RunAdmin> admin;
    while (auto key = queue_->Get()) {
      auto start = std::chrono::steady_clock::now();
      if (!admin) {
        PostgresOptions po;
        po.conninfo = db_url_;
        po.application_name = "flowrun-controller";
        po.connect_attempts = 2;
        auto a = OpenPostgresRunAdmin(po);
        if (a.ok()) {
          admin = std::move(*a);
        } else {
          log_->Log("error", "database unavailable", {{"worker", id}, {"error", a.status().ToString()}});
        }
      }
      metrics_->WorkerActive(1);
      bool requeue_after = false;
      Status s = Sync(*key, admin.get(), &requeue_after);
      auto took = std::chrono::steady_clock::now() - start;
      metrics_->WorkerActive(-1);
      metrics_->ObserveReconcile(!s.ok()        ? metrics::ReconcileResult::kError
                                 : requeue_after ? metrics::ReconcileResult::kRequeueAfter
                                                 : metrics::ReconcileResult::kSuccess,
                                 took);
      double ms = std::chrono::duration<double, std::milli>(took).count();
      // One line per reconcile at debug level: counts reconciles per FlowRun
      // (docs/benchmarks-controller.md) and says how each ended.
      log_->Log("debug", "reconciled", {{"key", *key}, {"worker", id}, {"ok", s.ok()}, {"ms", ms}});
      // Every failure is classified by its code, in one place (retry_policy.h).
      switch (app::RetryFor(s)) {
        case app::Retry::kNone:
          break;
        case app::Retry::kWaitForChange:
          metrics_->ObserveTerminalError();
          log_->Log("error", "reconcile failed; not retried until the FlowRun changes",
              {{"key", *key}, {"worker", id}, {"error", s.ToString()}, {"ms", ms}});
          queue_->Forget(*key);
          break;
        case app::Retry::kResetSessionAndBackoff:
          admin.reset();  // a broken connection is reopened on the next key
          [[fallthrough]];
        case app::Retry::kBackoff:
          log_->Log("warn", "reconcile failed; requeued with backoff",
              {{"key", *key}, {"worker", id}, {"error", s.ToString()}, {"ms", ms}});
          queue_->AddRateLimited(*key);
          break;
      }
      queue_->Done(*key);
    }
  }

  // Returns an error to requeue with backoff; schedules RequeueAfter itself.
  // *requeue_after: the reconcile scheduled a later look (RequeueAfter).
  Status Sync(const std::string& key, RunAdmin* admin, bool* requeue_after) {
    kube::ObjectPtr fr = flowruns_->Get(key);
    if (!fr) {
      queue_->Forget(key);
      return Status();
    }
    ReconcileInput in;
    // The cache keeps the managedFields entries that name who answered.
    in.flowrun = *fr;
    in.config = config_;
    in.now = std::chrono::system_clock::now();
    const json& md = fr->value("metadata", json::object());
    std::string uid = md.value("uid", "");
    for (const auto& job : jobs_->ByIndex("owner", uid)) {
      in.jobs.push_back(*job);
      std::string juid = job->value("metadata", json::object()).value("uid", "");
      if (!juid.empty())
        for (const auto& pod : pods_->ByIndex("owner", juid)) in.pods.push_back(*pod);
    }
    if (!uid.empty()) {
      if (!admin) return Unavailable("no database connection");
      auto t0 = std::chrono::steady_clock::now();
      auto run = admin->GetRun(uid);
      metrics_->ObserveDbQuery("get_run", std::chrono::steady_clock::now() - t0);
      log_->Log("debug", "get_run", {{"key", key}});
      if (run.ok())
        in.run = std::move(*run);
      else if (run.status().code() != StatusCode::kNotFound)
        return run.status();
    }
    ReconcileResult result = Reconcile(in);
    if (!result.error.ok()) {
      // kInvalidArgument (unusable object) is terminal, reported to the
      // Worker as kFailedPrecondition; kInternal (the core threw) is
      // retried with backoff. The Worker decides by code (retry_policy.h). Both are told to the
      // FlowRun's readers, not only to the log.
      log_->Log("error", "FlowRun cannot be reconciled", {{"key", key}, {"error", result.error.ToString()}});
      SurfaceReconcileError(*fr, result.error);
      if (result.error.code() == StatusCode::kInvalidArgument)
        return Status(StatusCode::kFailedPrecondition, "the FlowRun is unusable: " + result.error.message());
      return result.error;
    }
    if (!result.actions.empty()) {
      json actions = json::array();
      for (const auto& a : result.actions) actions.push_back(Describe(a));
      log_->Log("info", "reconcile", {{"key", key}, {"actions", actions}});
    }
    ExecuteOutcome out = executor_->Execute(in.flowrun, result, admin);
    if (!out.status.ok()) return out.status;
    // A reconcile that succeeds again ends an earlier ReconcileError. Only
    // when the core wrote no status this pass: its patch carries conditions
    // too, and this one (from the cache) must not overwrite it.
    if (!result.Find<PatchStatus>()) ClearReconcileError(*fr);
    queue_->Forget(key);
    if (out.requeue_after) {
      queue_->AddAfter(key, *out.requeue_after);
      *requeue_after = true;
    }
    return Status();
  }

  // A condition ReconcileError=True naming the reason, and a Warning Event.
  // Best effort: a FlowRun without a name cannot be patched, and a failed
  // patch is logged (the error itself is counted and retried by the Worker).
  void SurfaceReconcileError(const json& fr, const Status& error) {
    const json& md = fr.is_object() ? fr.value("metadata", json::object()) : json::object();
    std::string ns = md.is_object() ? md.value("namespace", "") : "";
    std::string name = md.is_object() ? md.value("name", "") : "";
    if (name.empty()) return;
    const std::string reason = error.code() == StatusCode::kInvalidArgument ? "InvalidObject" : "InternalError";
    json conditions = json::array();
    const json& st = fr.value("status", json::object());
    if (st.is_object() && st.contains("conditions") && st["conditions"].is_array())
      for (const auto& c : st["conditions"])
        if (!c.is_object() || c.value("type", "") != kReconcileErrorCondition) conditions.push_back(c);
    json cond = {{"type", kReconcileErrorCondition}, {"status", "True"}, {"reason", reason},
                 {"message", error.message()}, {"lastTransitionTime", FormatTime(std::chrono::system_clock::now())}};
    conditions.push_back(std::move(cond));
    auto patched = client_->MergePatch(kube::resources::FlowRuns(), ns, name, {{"status", {{"conditions", conditions}}}},
                                       /*status=*/true);
    if (!patched.ok())
      log_->Log("warn", "cannot set the ReconcileError condition", {{"key", ns + "/" + name}, {"error", patched.status().ToString()}});
    events_->Record(fr, kube::EventType::kWarning, reason, error.message());
  }
  void ClearReconcileError(const json& fr) {
    const json& st = fr.value("status", json::object());
    if (!st.is_object() || !st.contains("conditions") || !st["conditions"].is_array()) return;
    json kept = json::array();
    for (const auto& c : st["conditions"])
      if (!c.is_object() || c.value("type", "") != kReconcileErrorCondition) kept.push_back(c);
    if (kept.size() == st["conditions"].size()) return;
    const json& md = fr.value("metadata", json::object());
    auto patched = client_->MergePatch(kube::resources::FlowRuns(), md.value("namespace", ""), md.value("name", ""),
                                       {{"status", {{"conditions", kept}}}}, /*status=*/true);
    if (!patched.ok())
      log_->Log("warn", "cannot clear the ReconcileError condition", {{"error", patched.status().ToString()}});
  }
  static constexpr const char* kReconcileErrorCondition = "ReconcileError";

  const app::Logger* log_;  // not owned; outlives the controller
  Flags flags_;
  // An informer on the objects the runs own (label flowrun.dev/run), indexed
  // by their owner's uid: a FlowRun's Jobs, a Job's Pods.
  std::unique_ptr<kube::Informer> RunOwnedInformer(kube::ResourceRef resource, const std::string& name) {
    kube::InformerOptions o;
    o.resource = std::move(resource);
    o.ns = flags_.ns;
    o.label_selector = kLabelRun;
    o.name = name;
    auto informer = std::make_unique<kube::Informer>(client_.get(), o);
    informer->AddIndex("owner", kube::IndexByOwnerUid());
    return informer;
  }

  ControllerConfig config_;
  std::unique_ptr<kube::KubeClient> client_;
  std::string db_url_;
  metrics::ControllerMetrics* metrics_;  // not owned; outlives the controller
  metrics::PhaseCounter* phases_;        // not owned
  std::unique_ptr<kube::Informer> flowruns_, jobs_, pods_;
  std::unique_ptr<kube::WorkQueue> queue_;
  std::unique_ptr<kube::EventRecorder> events_;
  std::unique_ptr<ActionExecutor> executor_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> synced_{false};
};


}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"flowrun-controller: runs FlowRuns as Kubernetes Jobs"};
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig file (default: in-cluster, then $KUBECONFIG/~/.kube/config)");
  app.add_option("--database-url-env", f.database_url_env, "environment variable holding the PostgreSQL URL")
      ->capture_default_str();
  app.add_option("--namespace", f.ns, "watch only this namespace (default: all)");
  app.add_option("--workers", f.workers, "concurrent reconciles")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_flag("--leader-elect", f.leader_elect, "elect a leader with a Lease before reconciling");
  app.add_option("--leader-election-namespace", f.leader_election_namespace,
                 "namespace of the Lease (default: the pod's namespace, else default)");
  app.add_option("--leader-election-name", f.leader_election_name, "name of the Lease")->capture_default_str();
  app.add_option("--health-addr", f.health_addr, "serve /healthz and /readyz on host:port (default: off)");
  app.add_option("--metrics-addr", f.metrics_addr,
                 "serve Prometheus /metrics on host:port (port 0: pick a free one; default: off)");
  app.add_option("--metrics-min-refresh-ms", f.metrics_min_refresh_ms,
                 "least time between two reads of the totals from PostgreSQL")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  app.add_option("--log-level", f.log_level, "debug|info|warn")->capture_default_str();
  app.add_option("--database-secret", f.database_secret, "Secret (name[/key]) passed to agents as FLOWRUN_DATABASE_URL")
      ->capture_default_str();
  app.add_option("--openai-base-url", f.openai_base_url, "OPENAI_BASE_URL for agents whose template sets none");
  app.add_option("--openai-api-key-secret", f.openai_api_key_secret, "Secret name[/key] with OPENAI_API_KEY");
  app.add_option("--price-table-path", f.price_table_path, "FLOWRUN_PRICE_TABLE passed to agents");
  app.add_option("--price-table-configmap", f.price_table_config_map, "ConfigMap mounted at the price table's directory");
  app.add_option("--image-pull-policy", f.image_pull_policy, "default imagePullPolicy")->capture_default_str();
  app.add_option("--run-as-user", f.run_as_user, "runAsUser for agent containers (-1: unset)")->capture_default_str();
  app.add_option("--retention", f.retention, "delete|keep: a deleted FlowRun's database rows")
      ->check(CLI::IsMember({"delete", "keep"}))
      ->capture_default_str();
  app.add_option("--pod-start-grace-seconds", f.pod_start_grace_seconds, "image pull / container create grace")
      ->capture_default_str();
  flowrun::controller::AddYamlConfigOption(app);
  CLI11_PARSE(app, argc, argv);
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
    if (!m.ok()) logger.Log("warn", "database migration failed; workers will retry", {{"error", m.ToString()}});
  }

  ControllerConfig config = app::ToControllerConfig(f);

  logger.Log("info", "flowrun-controller starting",
      {{"namespace", f.ns.empty() ? "(all)" : f.ns}, {"workers", f.workers}, {"leaderElect", f.leader_elect}});

  kube::KubeClient* raw_client = client->get();
  Controller controller(f, config, std::move(*client), db_url, ctl_metrics.get(), &phases, &logger);

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
    auto e = kube::LeaderElector::Create(raw_client, lc);
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
