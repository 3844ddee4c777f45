// The FlowRun controller loop (flowrun_controller.h): informers → workqueue →
// workers → Sync → the pure core → the adapters.
#include "flowrun/controller/app/flowrun_controller.h"

#include "flowrun/controller/replay.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/adapters.h"
#include "flowrun/controller/app/retry_policy.h"
#include "flowrun/controller/app/update_predicate.h"
#include "flowrun/controller/reconcile.h"
#include "flowrun/kube/errors.h"
#include "flowrun/kube/event_recorder.h"
#include "flowrun/kube/informer.h"
#include "flowrun/kube/workqueue.h"

namespace flowrun::controller::app {
namespace {

using nlohmann::json;

std::string OwnerFlowRunKeyOfJob(const json& job) {
  const json& md = job.value("metadata", json::object());
  if (md.contains("ownerReferences") && md["ownerReferences"].is_array())
    for (const auto& ref : md["ownerReferences"])
      if (ref.value("kind", "") == kKind && ref.value("apiVersion", "").rfind("flowrun.dev/", 0) == 0)
        return kube::ObjectKey(md.value("namespace", ""), ref.value("name", ""));
  return "";
}

class ControllerImpl {
 public:
  ControllerImpl(Flags flags, ControllerConfig config, FlowRunControllerDeps deps)
      : log_(deps.log),
        flags_(std::move(flags)),
        config_(std::move(config)),
        client_(deps.client),
        open_admin_(std::move(deps.open_admin)),
        clock_(deps.clock ? deps.clock : DefaultClock()),
        metrics_(deps.metrics),
        phases_(deps.phases) {
    kube::InformerOptions fo;
    fo.resource = kube::resources::FlowRuns();
    fo.ns = flags_.ns;
    fo.name = "flowruns";
    fo.clock = clock_;
    // The core names who answered from these entries (answeredBy), so they
    // are cached rather than fetched live (B2).
    fo.keep_managed_field = app::ManagedFieldTouchesAnswers;
    flowruns_ = std::make_unique<kube::Informer>(client_, fo);
    flowruns_->AddIndex("uid", [](const json& o) -> std::vector<std::string> {
      std::string uid = o.value("metadata", json::object()).value("uid", "");
      if (uid.empty()) return {};
      return {uid};
    });

    // Replays by their source ("<namespace>/<spec.replay.from.run>"): a source
    // that appears or changes wakes the replays still waiting for it, instead
    // of leaving them to their backoff.
    flowruns_->AddIndex("replay-source", [](const json& o) -> std::vector<std::string> {
      const json& from = o.value("spec", json::object()).value("replay", json::object()).value("from", json::object());
      std::string run = from.is_object() ? from.value("run", "") : "";
      if (run.empty()) return {};
      return {o.value("metadata", json::object()).value("namespace", "") + "/" + run};
    });

    jobs_ = RunOwnedInformer(kube::resources::Jobs(), "jobs");
    pods_ = RunOwnedInformer(kube::resources::Pods(), "pods");

    kube::WorkQueueOptions qo;
    qo.name = "flowruns";
    // Delays (RequeueAfter, backoff) run on the injected clock too.
    qo.clock = clock_;
    queue_ = std::make_unique<kube::WorkQueue>(std::move(qo));

    kube::EventRecorderOptions eo;
    eo.clock = clock_;
    events_ = std::make_unique<kube::EventRecorder>(client_, std::move(eo));
    executor_ = std::make_unique<ActionExecutor>(
        client_, events_.get(), config_, [this] { return clock_->Now(); },
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
    auto wake_replays = [this](const kube::ObjectPtr& source) {
      if (!source) return;
      for (const auto& replay : flowruns_->ByIndex("replay-source", kube::ObjectKey(*source)))
        if (!ReplayPrepared(*replay)) queue_->Add(kube::ObjectKey(*replay));
    };
    flowruns_->AddEventHandler({wake_replays, [wake_replays](const kube::ObjectPtr&, const kube::ObjectPtr& n) { wake_replays(n); },
                                [](const kube::ObjectPtr&, bool) {}});
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
      auto start = clock_->MonotonicNow();
      if (!admin) {
        auto a = open_admin_();
        if (a.ok()) {
          admin = std::move(*a);
        } else {
          log_->Log("error", "database unavailable", {{"worker", id}, {"error", a.status().ToString()}});
        }
      }
      metrics_->WorkerActive(1);
      bool requeue_after = false;
      Status s = SyncNoThrow(*key, admin.get(), &requeue_after);
      auto took = clock_->MonotonicNow() - start;
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

  // Sync, with an exception that escapes it (the adapters, the database
  // client, a bug here) turned into kInternal and surfaced on the FlowRun
  // like the core's own kInternal: counted as an error and retried with
  // backoff, never a crash of the whole controller (controller-runtime
  // recovers panics the same way).
  Status SyncNoThrow(const std::string& key, RunAdmin* admin, bool* requeue_after) {
    try {
      return Sync(key, admin, requeue_after);
    } catch (const std::exception& e) {
      Status s = Internal(std::string("reconcile threw: ") + e.what());
      log_->Log("error", "FlowRun cannot be reconciled", {{"key", key}, {"error", s.ToString()}});
      if (kube::ObjectPtr fr = flowruns_->Get(key)) SurfaceReconcileError(*fr, s);
      return s;
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
    in.now = clock_->Now();
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
      auto t0 = clock_->MonotonicNow();
      auto run = admin->GetRun(uid);
      metrics_->ObserveDbQuery("get_run", clock_->MonotonicNow() - t0);
      log_->Log("debug", "get_run", {{"key", key}});
      if (run.ok())
        in.run = std::move(*run);
      else if (run.status().code() != StatusCode::kNotFound)
        return run.status();
    }
    ReconcileResult result = Reconcile(in);
    if (!result.error.ok()) {
      // kInvalidArgument (unusable object) is permanent: marked so, the
      // Worker does not retry it until the object changes; kInternal (the
      // core threw) is retried with backoff (retry_policy.h). Both are told
      // to the FlowRun's readers, not only to the log.
      log_->Log("error", "FlowRun cannot be reconciled", {{"key", key}, {"error", result.error.ToString()}});
      SurfaceReconcileError(*fr, result.error);
      if (result.error.code() == StatusCode::kInvalidArgument)
        return app::Permanent(result.error.WithContext("the FlowRun is unusable"));
      return result.error;
    }
    if (!result.actions.empty()) {
      json actions = json::array();
      for (const auto& a : result.actions) actions.push_back(Describe(a));
      log_->Log("info", "reconcile", {{"key", key}, {"actions", actions}});
    }
    ExecuteOutcome out = executor_->Execute(in.flowrun, result, admin);
    if (!out.status.ok()) {
      // Deleted while this pass ran: its writes answer 404 and the informer
      // has meanwhile dropped the object (its delete event re-enqueued the
      // key, whose next pass finds nothing). Nothing is left to retry.
      if (kube::IsNotFound(out.status) && !SameObject(flowruns_->Get(key), uid)) {
        log_->Log("debug", "FlowRun deleted while it was reconciled", {{"key", key}});
        queue_->Forget(key);
        return Status();
      }
      return out.status;
    }
    // An earlier ReconcileError ends in the core's own status patch
    // (FinishStatus sets it False), not here.
    queue_->Forget(key);
    if (out.requeue_after) {
      queue_->AddAfter(key, *out.requeue_after);
      *requeue_after = true;
    }
    return Status();
  }

  // The FlowRun's Replay condition is True (prepared: its source no longer matters).
  static bool ReplayPrepared(const json& flowrun) {
    const json& conds = flowrun.value("status", json::object()).value("conditions", json::array());
    if (conds.is_array())
      for (const auto& c : conds)
        if (c.is_object() && c.value("type", "") == kCondReplay) return c.value("status", "") == "True";
    return false;
  }

  static bool SameObject(const kube::ObjectPtr& o, const std::string& uid) {
    return o && o->value("metadata", json::object()).value("uid", "") == uid;
  }

  // A condition ReconcileError=True naming the reason, and a Warning Event.
  // Once per distinct error: a retry that fails the same way finds the
  // condition already there (the cache has the patch) and writes nothing;
  // lastTransitionTime stays that of the first failure. Best effort: a
  // FlowRun without a name cannot be patched, and a failed patch is logged
  // (the error itself is counted and retried by the Worker).
  void SurfaceReconcileError(const json& fr, const Status& error) {
    const json& md = fr.is_object() ? fr.value("metadata", json::object()) : json::object();
    std::string ns = md.is_object() ? md.value("namespace", "") : "";
    std::string name = md.is_object() ? md.value("name", "") : "";
    if (name.empty()) return;
    const std::string reason = error.code() == StatusCode::kInvalidArgument ? kReasonInvalidObject : kReasonInternalError;
    const std::string message = TruncateUtf8(error.message(), config_.max_condition_message_bytes);
    json conditions = json::array();
    std::string since = FormatTime(clock_->Now());
    const json& st = fr.is_object() ? fr.value("status", json::object()) : json::object();
    if (st.is_object() && st.contains("conditions") && st["conditions"].is_array())
      for (const auto& c : st["conditions"]) {
        if (!c.is_object() || c.value("type", "") != kCondReconcileError) {
          conditions.push_back(c);
          continue;
        }
        if (c.value("status", "") != "True") continue;
        if (c.value("reason", "") == reason && c.value("message", "") == message) return;  // already told
        if (c.contains("lastTransitionTime") && c["lastTransitionTime"].is_string()) since = c["lastTransitionTime"];
      }
    conditions.push_back({{"type", kCondReconcileError}, {"status", "True"}, {"reason", reason},
                          {"message", message}, {"lastTransitionTime", since}});
    auto patched = client_->MergePatch(kube::resources::FlowRuns(), ns, name, {{"status", {{"conditions", conditions}}}},
                                       /*status=*/true);
    if (!patched.ok())
      log_->Log("warn", "cannot set the ReconcileError condition", {{"key", ns + "/" + name}, {"error", patched.status().ToString()}});
    events_->Record(fr, kube::EventType::kWarning, reason, error.message());
  }

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
    auto informer = std::make_unique<kube::Informer>(client_, o);
    informer->AddIndex("owner", kube::IndexByOwnerUid());
    return informer;
  }

  ControllerConfig config_;
  kube::KubeClient* client_;  // not owned
  std::function<StatusOr<std::unique_ptr<RunAdmin>>()> open_admin_;
  Clock* clock_;  // not owned
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

struct FlowRunController::Impl : ControllerImpl {
  using ControllerImpl::ControllerImpl;
};

FlowRunController::FlowRunController(Flags flags, ControllerConfig config, FlowRunControllerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(flags), std::move(config), std::move(deps))) {}
FlowRunController::~FlowRunController() = default;
bool FlowRunController::StartInformers() { return impl_->StartInformers(); }
void FlowRunController::StartWorkers() { impl_->StartWorkers(); }
void FlowRunController::Shutdown() { impl_->Shutdown(); }
bool FlowRunController::synced() const { return impl_->synced(); }
kube::WorkQueue* FlowRunController::queue() { return impl_->queue(); }
void FlowRunController::RequestStop() { impl_->RequestStop(); }

}  // namespace flowrun::controller::app
