// controller_bench: the real flowrun-controller (a child process) against the
// real control plane (tests/cluster via KubeCluster: etcd, kube-apiserver,
// kube-controller-manager, nodesim), a private PostgreSQL and the fake LLM.
// In one run it prints, beside targets and baselines measured in the same run:
//
//   answer patched -> Job of the next attempt created, p50/p99
//     (target p50 <= 100 ms, p99 <= 500 ms). Clock: this process's
//     system_clock at the patch request's send and return, and at the receipt
//     of the Job's ADDED event on a watch (creationTimestamp has only second
//     resolution). Baselines: create a ConfigMap -> its watch event (the
//     apiserver's own propagation), and the answer patch -> the FlowRun's
//     MODIFIED event on the bench's watch (what the controller's informer
//     sees first).
//   agent exit -> FlowRun shows Waiting, p50/p99 (target p99 <= 2 s). The
//     agent runs under a wrapper that writes `date +%s%N` right after the
//     agent exits (same host, same clock; the wrapper's own exit follows
//     within a millisecond), the end is the receipt of the FlowRun's event
//     with phase Waiting. Baseline/breakdown: exit -> the pod's terminated
//     status on a watch (nodesim's part, a kubelet's PLEG would add ~1 s).
//   controller memory (VmRSS/VmHWM from /proc/<pid>/status): idle with no
//     FlowRuns (target <= 64 MiB) and with --runs FlowRuns and their Jobs in
//     its caches (target <= 200 MiB for 10,000).
//   cache sync at start: process start -> /readyz 200 (informers synced),
//     polled every 5 ms (target <= 10 s for 10,000 FlowRuns).
//
// The --runs FlowRuns are made without running anything: each FlowRun is
// created with the controller's finalizer, then the controller's own pure
// core (flowrun::controller::Reconcile) decides what the controller would do
// - create Job <name>-a1 and patch the status - and this bench does it, with
// the Job suspended and spec.managedBy set so kube-controller-manager's Job
// controller leaves it alone (no pod, no process). A second Reconcile with the
// Job must return no action but RequeueAfter: the bench counts any that do,
// so the controller finds live attempts and has nothing to do.
//
//   build-bench/bench/controller_bench [--samples=200] [--runs=10000]
//       [--interval-ms=250] [--threads=16] [--sync-rounds=2] [--quick]
//   --quick: --samples=20 --runs=500 (about 2 min)
//   Environment: FLOWRUN_BENCH_SAMPLES, FLOWRUN_BENCH_RUNS set the defaults.
//
// Exit code: 0 when every phase ran (figures are printed, never asserted),
// 1 when a phase could not run (e.g. a FlowRun never reached Waiting) or the
// set-up was not what it claims (an object the controller would act on).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/reconcile.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/errors.h"
#include "e2e/e2e_world.h"
#include "kube/kube_cluster.h"
#include "support/child_process.h"
#include "support/fake_llm.h"
#include "support/postgres_server.h"

namespace {

using flowrun::kube::KubeClient;
using flowrun::testing::ChildProcess;
using flowrun::testing::HttpGetStatus;
using flowrun::testing::WriteFile;
using flowrun::testing::KubeCluster;
using nlohmann::json;
namespace resources = flowrun::kube::resources;
namespace ctl = flowrun::controller;
using SysClock = std::chrono::system_clock;

// Nanoseconds since the epoch on the system clock: the one clock the wrapper's
// `date +%s%N`, this process and its watches share.
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SysClock::now().time_since_epoch()).count();
}
double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// "2026-11-26T13:04:05.123Z" (the controller's log "ts") -> ns since the epoch; 0 if malformed.
int64_t ParseLogTs(const std::string& ts) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (static_cast<int64_t>(timegm(&tm)) * 1000 + ms) * 1000000;
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

const char* Verdict(bool met) { return met ? "met" : "NOT met"; }

struct Options {
  int samples = 200;
  int runs = 10000;
  int interval_ms = 250;
  int threads = 16;
  int sync_rounds = 2;
};

// Ends the run from any thread. _Exit: no destructor races the other threads;
// what it started stops anyway (the cluster's watchdog, and PostgreSQL, the
// fake LLM and the controller die with this process).
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "controller_bench: %s\n", what.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

std::unique_ptr<KubeClient> Client(const std::string& kubeconfig) {
  auto cfg = flowrun::kube::LoadKubeconfig(kubeconfig);
  if (!cfg.ok()) Die("kubeconfig: " + cfg.status().ToString());
  auto c = flowrun::kube::NewKubeClient(*cfg, {});
  if (!c.ok()) Die("client: " + c.status().ToString());
  return std::move(c).value();
}

// ---- a watch on its own thread ----------------------------------------------

// Runs Watch requests back to back (resuming from the last resourceVersion)
// and calls on_event with each event and the time it was received, until
// Stop(). The callback runs on the watch thread.
class Watcher {
 public:
  using Handler = std::function<void(const flowrun::kube::WatchEvent&, int64_t received_ns)>;
  Watcher(const std::string& kubeconfig, flowrun::kube::ResourceRef r, std::string ns, std::string selector,
          Handler h)
      : client_(Client(kubeconfig)), r_(std::move(r)), ns_(std::move(ns)), selector_(std::move(selector)),
        h_(std::move(h)) {
    // Start from the current list's resourceVersion: only what happens next.
    flowrun::kube::ListOptions lo;
    lo.label_selector = selector_;
    lo.limit = 1;
    auto l = client_->List(r_, ns_, lo);
    if (!l.ok()) Die("list before watch: " + l.status().ToString());
    rv_ = l->resource_version;
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() { Stop(); }
  void Stop() {
    stop_ = true;
    cancel_.Cancel();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    while (!stop_) {
      flowrun::kube::WatchOptions o;
      o.label_selector = selector_;
      o.resource_version = rv_;
      auto r = client_->Watch(r_, ns_, o,
                              [&](const flowrun::kube::WatchEvent& e) {
                                int64_t t = NowNs();
                                if (e.type != "BOOKMARK") h_(e, t);
                                return !stop_.load();
                              },
                              &cancel_);
      if (r.ok()) {
        rv_ = *r;
      } else if (!stop_) {
        std::fprintf(stderr, "watch %s: %s (retrying)\n", r_.resource.c_str(), r.status().ToString().c_str());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  }
  std::unique_ptr<KubeClient> client_;
  flowrun::kube::ResourceRef r_;
  std::string ns_, selector_, rv_;
  Handler h_;
  flowrun::kube::CancelToken cancel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- the controller process ---------------------------------------------------

struct ProcMem {
  double rss_mib = 0, hwm_mib = 0;
};

ProcMem ReadMem(pid_t pid) {
  ProcMem m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    auto kib = [&](const char* key) { return std::atof(line.c_str() + std::strlen(key)) / 1024.0; };
    if (line.rfind("VmRSS:", 0) == 0) m.rss_mib = kib("VmRSS:");
    if (line.rfind("VmHWM:", 0) == 0) m.hwm_mib = kib("VmHWM:");
  }
  return m;
}

// utime + stime of a process, in clock ticks.
long CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> f; ++i) {
    if (i == 14) utime = std::atol(f.c_str());
    if (i == 15) stime = std::atol(f.c_str());
  }
  return utime + stime;
}

class Controller {
 public:
  Controller(const std::string& kubeconfig, const std::string& db_url) {
    ChildProcess::Options o;
    o.die_with_parent = true;
    o.parent_death_signal = SIGTERM;
    start_ns_ = NowNs();
    proc_ = ChildProcess::Spawn({FLOWRUN_CONTROLLER_BIN, "--kubeconfig", kubeconfig, "--database-url-env",
                                 "FLOWRUN_BENCH_DATABASE_URL", "--workers", "2", "--health-addr", "127.0.0.1:0"},
                                {{"FLOWRUN_BENCH_DATABASE_URL", db_url}}, o);
  }
  ~Controller() { Stop(); }

  pid_t pid() const { return proc_->pid(); }

  // Milliseconds from the spawn to /readyz 200 (health port from the log).
  double WaitReady(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      std::istringstream in(proc_->Output());
      for (std::string line; std::getline(in, line);)
        if (line.find("health server listening") != std::string::npos)
          port_ = json::parse(line, nullptr, false).value("port", 0);
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (port_ == 0) Die("controller: no health port in its log:\n" + proc_->Output());
    // Polled every 5 ms: the figure is precise to about 5 ms.
    while (std::chrono::steady_clock::now() < deadline) {
      if (Ready()) return Ms(NowNs() - start_ns_);
      if (!proc_->Running()) Die("controller exited:\n" + proc_->Output());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Die("controller not ready after " + std::to_string(timeout.count()) + " s:\n" + Tail(4000));
  }

  // Waits until the controller's CPU time grows by less than 2 ticks in a
  // second (its start-up reconciles are done); returns the seconds waited.
  double WaitQuiet(std::chrono::seconds timeout) {
    auto t0 = std::chrono::steady_clock::now();
    long last = CpuTicks(pid());
    while (std::chrono::steady_clock::now() - t0 < timeout) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      long now = CpuTicks(pid());
      if (now - last < 2) break;
      last = now;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::string Output() const { return proc_->Output(); }
  std::string Tail(size_t n) const { return flowrun::testing::Tail(proc_->Output(), n); }
  // Log lines of reconciles that acted on a key in `ns` (the controller logs
  // "reconcile" only with actions; RequeueAfter alone is not an act).
  size_t ReconcilesWithActions(const std::string& ns) const {
    std::istringstream in(proc_->Output());
    size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.find("\"reconcile\"") == std::string::npos || line.find("\"" + ns + "/") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      for (const auto& a : j.value("actions", json::array()))
        if (a.is_string() && a.get<std::string>().rfind("RequeueAfter", 0) != 0) {
          ++n;
          break;
        }
    }
    return n;
  }

  void Stop() {
    if (!proc_ || !proc_->Running()) return;
    proc_->Kill(SIGTERM);
    if (!proc_->Wait(std::chrono::seconds(30))) proc_->Kill(SIGKILL);
  }

 private:
  bool Ready() const { return HttpGetStatus(port_, "/readyz") == 200; }
  std::unique_ptr<ChildProcess> proc_;
  int64_t start_ns_ = 0;
  int port_ = 0;
};

void PrintMem(const char* what, const ProcMem& m, double target_mib) {
  std::printf("  controller memory, %-44s VmRSS %6.1f MiB  VmHWM %6.1f MiB   target <= %.0f MiB (%s)\n", what,
              m.rss_mib, m.hwm_mib, target_mib, Verdict(m.rss_mib <= target_mib));
}

// ---- objects --------------------------------------------------------------------

// The research agent as a FlowRun (examples/research-agent/flowrun.yaml),
// run through `command` (a wrapper around the agent binary for the latency
// runs; the image's own for the cached ones).
json ResearchFlowRun(const std::string& name, const std::string& command, const std::string& llm_url) {
  json env = json::array({{{"name", "OPENAI_API_KEY"}, {"valueFrom", {{"secretKeyRef", {{"name", "openai"}, {"key", "api-key"}}}}}},
                          {{"name", "FLOWRUN_LLM_MODEL"}, {"value", "gpt-4o-mini"}}});
  if (!llm_url.empty()) env.push_back({{"name", "OPENAI_BASE_URL"}, {"value", llm_url}});
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"template",
             {{"image", "flowrun/research-agent:0.1.0"},
              {"command", json::array({command})},
              {"env", env},
              {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}, {"limits", {{"memory", "512Mi"}}}}}}},
            {"parameters", {{"topic", "durable execution for AI agents (" + name + ")"}}},
            {"flow", "research"},
            {"budgetUSD", 1.0},
            {"retry", {{"maxAttempts", 3}}},
            {"attemptDeadlineSeconds", 1800},
            {"waitTimeoutSeconds", 86400},
            {"ttlSecondsAfterFinished", 604800}}}};
}

void MustCreate(KubeClient& c, const flowrun::kube::ResourceRef& r, const std::string& ns, const json& obj) {
  auto res = c.Create(r, ns, obj);
  if (!res.ok() && !flowrun::kube::IsAlreadyExists(res.status()))
    Die("create " + r.resource + ": " + res.status().ToString());
}

void Namespace(KubeClient& c, const std::string& ns, const std::string& db_url, const std::string& api_key) {
  MustCreate(c, resources::Namespaces(), "", {{"metadata", {{"name", ns}}}});
  MustCreate(c, resources::Secrets(), ns,
             {{"metadata", {{"name", "flowrun-database"}}}, {"stringData", {{"url", db_url}}}});
  MustCreate(c, resources::Secrets(), ns, {{"metadata", {{"name", "openai"}}}, {"stringData", {{"api-key", api_key}}}});
}

// ---- baseline: the apiserver's own create -> watch event ------------------------

// Creates n objects made by make(i) one at a time; for each, the time from the
// request's send and from its return to the ADDED event on a watch.
void WatchBaseline(const std::string& kc, const flowrun::kube::ResourceRef& r, const std::string& ns, int n,
                   const std::function<json(int)>& make) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int64_t> seen;
  Watcher w(kc, r, ns, "bench=watch", [&](const flowrun::kube::WatchEvent& e, int64_t t) {
    if (e.type != "ADDED") return;
    std::lock_guard<std::mutex> l(mu);
    seen[e.object["metadata"].value("name", "")] = t;
    cv.notify_all();
  });
  auto c = Client(kc);
  std::vector<double> from_send, from_return;
  for (int i = 0; i < n; ++i) {
    json obj = make(i);
    obj["metadata"]["labels"]["bench"] = "watch";
    const std::string name = obj["metadata"]["name"];
    int64_t s = NowNs();
    auto res = c->Create(r, ns, obj);
    int64_t ret = NowNs();
    if (!res.ok()) Die("baseline create " + r.resource + ": " + res.status().ToString());
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, std::chrono::seconds(30), [&] { return seen.count(name) > 0; })) Die("baseline: no watch event");
    from_send.push_back(Ms(seen[name] - s));
    from_return.push_back(Ms(seen[name] - ret));
  }
  std::printf("  baseline: create %-10s -> watch ADDED (x%d)  from send p50 %6.2f ms  p99 %6.2f ms;"
              "  from return p50 %6.2f ms  p99 %6.2f ms\n",
              r.kind.c_str(), n, Pct(from_send, 50), Pct(from_send, 99), Pct(from_return, 50), Pct(from_return, 99));
}

// A Job shaped like the controller's (BuildJob of a research FlowRun), never
// run: suspended and managed by nobody in this cluster.
json InertJob(const json& job, const std::string& name) {
  json j = job;
  j["metadata"]["name"] = name;
  j["metadata"].erase("ownerReferences");
  j["spec"]["suspend"] = true;
  j["spec"]["managedBy"] = "flowrun.dev/bench";  // kube-controller-manager's Job controller skips it
  return j;
}

// ---- latency: waits and answers --------------------------------------------------

struct RunTimes {
  int64_t waiting = 0;     // FlowRun event with phase Waiting received
  int64_t pod_exit = 0;    // pod of attempt 1 terminated, event received
  int64_t answer_seen = 0; // FlowRun event with status.answers.proceed received
  int64_t job2 = 0;        // Job <name>-a2 ADDED received
  int64_t succeeded = 0;
};

bool Latency(const Options& opt, const std::string& kc, const std::string& ns, const std::string& dir,
             const std::string& llm_url, Controller& controller) {
  const std::string exits = dir + "/exits";
  const std::string wrapper = dir + "/agent-wrapper.sh";
  std::filesystem::create_directories(exits);
  // The agent, then its exit time; the agent's exit code is the pod's.
  WriteFile(wrapper, "#!/bin/sh\n\"" FLOWRUN_RESEARCH_AGENT_BIN "\"\nrc=$?\ndate +%s%N > \"" + exits +
                         "/$FLOWRUN_RUN_NAME.a$FLOWRUN_ATTEMPT\"\nexit $rc\n");
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                            std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                            std::filesystem::perms::others_exec);

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, RunTimes> t;
  Watcher frw(kc, resources::FlowRuns(), ns, "", [&](const flowrun::kube::WatchEvent& e, int64_t at) {
    const json& st = e.object.value("status", json::object());
    std::string name = e.object["metadata"].value("name", "");
    std::lock_guard<std::mutex> l(mu);
    RunTimes& r = t[name];
    std::string phase = st.value("phase", "");
    if (phase == "Waiting" && !r.waiting) r.waiting = at;
    if (phase == "Succeeded" && !r.succeeded) r.succeeded = at;
    if (!r.answer_seen && st.contains("answers") && st["answers"].contains("proceed")) r.answer_seen = at;
    cv.notify_all();
  });
  Watcher jw(kc, resources::Jobs(), ns, "flowrun.dev/attempt=2", [&](const flowrun::kube::WatchEvent& e, int64_t at) {
    if (e.type != "ADDED") return;
    std::string run = e.object["metadata"]["labels"].value("flowrun.dev/run", "");
    std::lock_guard<std::mutex> l(mu);
    if (!t[run].job2) t[run].job2 = at;
    cv.notify_all();
  });
  Watcher pw(kc, resources::Pods(), ns, "flowrun.dev/attempt=1", [&](const flowrun::kube::WatchEvent& e, int64_t at) {
    const json& cs = e.object.value("status", json::object()).value("containerStatuses", json::array());
    if (cs.empty() || !cs[0].value("state", json::object()).contains("terminated")) return;
    std::string run = e.object["metadata"]["labels"].value("flowrun.dev/run", "");
    std::lock_guard<std::mutex> l(mu);
    if (!t[run].pod_exit) t[run].pod_exit = at;
  });

  auto c = Client(kc);
  std::vector<std::string> names;
  for (int i = 0; i < opt.samples; ++i) {
    char b[32];
    std::snprintf(b, sizeof b, "lat-%04d", i);
    names.push_back(b);
  }
  // 1. Start every run, spaced so that a handful of agents run at a time.
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& n : names) {
    MustCreate(*c, resources::FlowRuns(), ns, ResearchFlowRun(n, wrapper, llm_url));
    std::this_thread::sleep_for(std::chrono::milliseconds(opt.interval_ms));
  }
  {
    std::unique_lock<std::mutex> l(mu);
    bool all = cv.wait_for(l, std::chrono::seconds(120 + opt.samples), [&] {
      for (const auto& n : names)
        if (!t[n].waiting) return false;
      return true;
    });
    if (!all) {
      int n = 0;
      for (const auto& name : names) n += t[name].waiting ? 1 : 0;
      std::printf("only %d of %zu FlowRuns reached Waiting\ncontroller log tail:\n%s\n", n, names.size(),
                  controller.Tail(3000).c_str());
      return false;
    }
  }
  double phase1_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // 2. Answer them one at a time; each answer waits for its Job's event.
  std::vector<double> job_from_send, job_from_return, answer_propagation;
  for (const auto& n : names) {
    int64_t s = NowNs();
    auto r = c->MergePatch(resources::FlowRuns(), ns, n, {{"status", {{"answers", {{"proceed", true}}}}}}, true);
    int64_t ret = NowNs();
    if (!r.ok()) Die("answer " + n + ": " + r.status().ToString());
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, std::chrono::seconds(60), [&] { return t[n].job2 != 0; })) {
      std::printf("no Job for attempt 2 of %s within 60 s\ncontroller log tail:\n%s\n", n.c_str(),
                  controller.Tail(3000).c_str());
      return false;
    }
    job_from_send.push_back(Ms(t[n].job2 - s));
    job_from_return.push_back(Ms(t[n].job2 - ret));
    if (t[n].answer_seen) answer_propagation.push_back(Ms(t[n].answer_seen - ret));
    l.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(opt.interval_ms / 2));
  }
  // 3. Let the resumed runs finish (the system is quiet for what follows).
  int succeeded = 0;
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, std::chrono::seconds(120 + opt.samples), [&] {
      succeeded = 0;
      for (const auto& n : names) succeeded += t[n].succeeded ? 1 : 0;
      return succeeded == static_cast<int>(names.size());
    });
  }
  frw.Stop();
  jw.Stop();
  pw.Stop();

  // Where the time goes, from the controller's log (ts in ms): the reconcile
  // that decided CreateJob(<name>-a2) logs after reading the FlowRun live and
  // the run's state from PostgreSQL, before recording the answer and posting
  // the Job.
  std::vector<double> to_decision, decision_to_job;
  std::set<std::string> decided;
  {
    std::istringstream in(controller.Output());
    for (std::string line; std::getline(in, line);) {
      if (line.find("\"reconcile\"") == std::string::npos || line.find("-a2)") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      std::string key = j.value("key", "");
      auto slash = key.find('/');
      if (slash == std::string::npos || key.substr(0, slash) != ns) continue;
      const std::string name = key.substr(slash + 1);
      bool creates = false;
      for (const auto& a : j.value("actions", json::array()))
        creates = creates || (a.is_string() && a.get<std::string>() == "CreateJob(" + name + "-a2)");
      if (!creates || !decided.insert(name).second) continue;  // the first such reconcile
      const RunTimes& r = t[name];
      int64_t at = ParseLogTs(j.value("ts", ""));
      if (!at || !r.answer_seen || !r.job2) continue;
      to_decision.push_back(Ms(at - r.answer_seen));
      decision_to_job.push_back(Ms(r.job2 - at));
    }
  }

  // Exit times the wrapper recorded.
  std::vector<double> exit_to_waiting, exit_to_pod;
  int missing = 0;
  for (const auto& n : names) {
    std::ifstream in(exits + "/" + n + ".a1");
    int64_t exit_ns = 0;
    if (!(in >> exit_ns)) {
      ++missing;
      continue;
    }
    exit_to_waiting.push_back(Ms(t[n].waiting - exit_ns));
    if (t[n].pod_exit) exit_to_pod.push_back(Ms(t[n].pod_exit - exit_ns));
  }
  std::printf("  %d research-agent runs started %d ms apart, all Waiting after %.1f s; answered one at a time; "
              "%d/%zu Succeeded\n",
              opt.samples, opt.interval_ms, phase1_s, succeeded, names.size());
  std::printf("  answer patched -> Job created (x%zu)  from return  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms"
              "   target p50 <= 100 ms (%s), p99 <= 500 ms (%s)\n",
              job_from_return.size(), Pct(job_from_return, 50), Pct(job_from_return, 99),
              Pct(job_from_return, 100), Verdict(Pct(job_from_return, 50) <= 100),
              Verdict(Pct(job_from_return, 99) <= 500));
  std::printf("  answer patched -> Job created (x%zu)  from send    p50 %6.1f ms  p99 %6.1f ms\n",
              job_from_send.size(), Pct(job_from_send, 50), Pct(job_from_send, 99));
  std::printf("    of which the answer's own watch event (patch return -> MODIFIED on a watch): p50 %6.2f ms  p99 "
              "%6.2f ms\n",
              Pct(answer_propagation, 50), Pct(answer_propagation, 99));
  std::printf("    then, from the controller's log (ms resolution, x%zu): answer event -> reconcile decided (live GET, "
              "run state read) p50 %6.1f ms  p99 %6.1f ms; decided -> Job event (answer recorded, Job posted) p50 %6.1f ms"
              "  p99 %6.1f ms\n",
              to_decision.size(), Pct(to_decision, 50), Pct(to_decision, 99), Pct(decision_to_job, 50),
              Pct(decision_to_job, 99));
  std::printf("    for comparison: Argo Workflows and Prefect notice a resumed workflow on ~10 s polls\n");
  std::printf("  agent exit -> FlowRun Waiting (x%zu)  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms   target p99 <= 2 s (%s)%s\n",
              exit_to_waiting.size(), Pct(exit_to_waiting, 50), Pct(exit_to_waiting, 99), Pct(exit_to_waiting, 100),
              Verdict(Pct(exit_to_waiting, 99) <= 2000),
              missing ? (" [" + std::to_string(missing) + " exit stamps missing]").c_str() : "");
  std::printf("    of which agent exit -> pod terminated on a watch (nodesim reports): p50 %6.1f ms  p99 %6.1f ms\n",
              Pct(exit_to_pod, 50), Pct(exit_to_pod, 99));
  return true;
}

// ---- many FlowRuns, each with a live (suspended) attempt ----------------------------

struct Populated {
  int created = 0, failed = 0, not_quiet = 0;
  double seconds = 0;
  std::string first_error, not_quiet_example;
};

// Creates FlowRun i, then does what the controller's core says: create Job a1
// (suspended, managed by nobody in the cluster) and patch the status; then
// checks that the core would do nothing more.
flowrun::Status PopulateOne(KubeClient& c, const std::string& ns, int i, const ctl::ControllerConfig& cfg,
                            Populated& out, std::mutex& mu) {
  char name[32];
  std::snprintf(name, sizeof name, "run-%05d", i);
  json fr = ResearchFlowRun(name, "/usr/local/bin/research-agent", "");
  fr["metadata"]["finalizers"] = json::array({ctl::kFinalizer});
  auto created = c.Create(resources::FlowRuns(), ns, fr);
  if (!created.ok()) return created.status();
  ctl::ReconcileInput in;
  in.flowrun = *created;
  in.now = SysClock::now();
  in.config = cfg;
  ctl::ReconcileResult first = ctl::Reconcile(in);
  const auto* cj = first.Find<ctl::CreateJob>();
  const auto* ps = first.Find<ctl::PatchStatus>();
  if (!cj || !ps) return flowrun::Internal("the core did not create a Job: " + first.Describe());
  json job = InertJob(cj->job, cj->name);
  job["metadata"]["ownerReferences"] = cj->job["metadata"]["ownerReferences"];
  auto job_created = c.Create(resources::Jobs(), ns, job);
  if (!job_created.ok()) return job_created.status();
  auto patched = c.MergePatch(resources::FlowRuns(), ns, name, ps->patch, true);
  if (!patched.ok()) return patched.status();
  in.flowrun = *patched;
  in.jobs = json::array({*job_created});
  in.now = SysClock::now();
  ctl::ReconcileResult second = ctl::Reconcile(in);
  for (const auto& a : second.actions)
    if (!std::holds_alternative<ctl::RequeueAfter>(a)) {
      std::lock_guard<std::mutex> l(mu);
      if (out.not_quiet++ == 0) out.not_quiet_example = std::string(name) + ": " + second.Describe();
      break;
    }
  return flowrun::Status();
}

Populated Populate(const Options& opt, const std::string& kc, const std::string& ns) {
  auto c = Client(kc);
  ctl::ControllerConfig cfg;  // the controller's defaults (the bench starts it without config flags)
  Populated out;
  std::mutex mu;
  std::atomic<int> next{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int k = 0; k < opt.threads; ++k)
    ts.emplace_back([&] {
      for (int i = next++; i < opt.runs; i = next++) {
        flowrun::Status s = PopulateOne(*c, ns, i, cfg, out, mu);
        std::lock_guard<std::mutex> l(mu);
        if (s.ok()) {
          ++out.created;
        } else {
          if (out.failed++ == 0) out.first_error = s.ToString();
        }
        if (out.created % 1000 == 0 && s.ok())
          std::fprintf(stderr, "  ... %d FlowRuns with their Jobs\n", out.created);
      }
    });
  for (auto& th : ts) th.join();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

int ParseInt(const char* v, const char* flag) {
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (!*v || *end || n < 0 || n > 1000000) Die(std::string("bad value for ") + flag + ": '" + v + "'");
  return static_cast<int>(n);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when redirected to a file
  Options opt;
  if (const char* v = std::getenv("FLOWRUN_BENCH_SAMPLES")) opt.samples = ParseInt(v, "FLOWRUN_BENCH_SAMPLES");
  if (const char* v = std::getenv("FLOWRUN_BENCH_RUNS")) opt.runs = ParseInt(v, "FLOWRUN_BENCH_RUNS");
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (a == "--quick") {
      opt.samples = 20;
      opt.runs = 500;
    } else if (const char* v = val("--samples=")) {
      opt.samples = ParseInt(v, "--samples");
    } else if (const char* v = val("--runs=")) {
      opt.runs = ParseInt(v, "--runs");
    } else if (const char* v = val("--interval-ms=")) {
      opt.interval_ms = ParseInt(v, "--interval-ms");
    } else if (const char* v = val("--threads=")) {
      opt.threads = std::max(1, ParseInt(v, "--threads"));
    } else if (const char* v = val("--sync-rounds=")) {
      opt.sync_rounds = std::max(1, ParseInt(v, "--sync-rounds"));
    } else {
      std::fprintf(stderr,
                   "usage: controller_bench [--samples=200] [--runs=10000] [--interval-ms=250] [--threads=16] "
                   "[--sync-rounds=2] [--quick]\n");
      return 2;
    }
  }
  if (opt.samples < 1) Die("--samples must be at least 1");

  // The agent's image runs the research agent (the latency runs replace the
  // command with a wrapper around it).
  char tmpl[] = "/tmp/flowrun-controller-bench-XXXXXX";
  if (!mkdtemp(tmpl)) Die("mkdtemp failed");
  const std::string dir = tmpl;
  chmod(dir.c_str(), 0755);
  WriteFile(dir + "/image-map.yaml",
            "images:\n  \"flowrun/research-agent*\":\n    command: [\"" FLOWRUN_RESEARCH_AGENT_BIN "\"]\n");
  setenv("FLOWRUN_NODESIM_ARGS", ("--image-map=" + dir + "/image-map.yaml").c_str(), 1);

  auto wall0 = std::chrono::steady_clock::now();
  auto pg = flowrun::testing::PostgresServer::Start();
  auto llm = flowrun::testing::FakeLlm::Start("sk-bench");
  auto& cluster = KubeCluster::Get();
  const std::string kc = cluster.admin_kubeconfig();
  std::printf("controller_bench: kube-apiserver %s, %u cores, samples %d, runs %d\n", cluster.apiserver_url().c_str(),
              std::thread::hardware_concurrency(), opt.samples, opt.runs);
  cluster.Kubectl({"apply", "-f", FLOWRUN_SOURCE_DIR "/crds/"});
  cluster.Kubectl({"wait", "--for=condition=Established", "--timeout=60s", "crd/flowruns.flowrun.dev"});
  const std::string db = pg->ConnectionString();
  {
    auto c = Client(kc);
    Namespace(*c, "bench-lat", db, llm->api_key());
    Namespace(*c, "bench-scale", db, llm->api_key());
    // The CRD is served a moment after Established.
    for (int i = 0; i < 100 && !c->List(resources::FlowRuns(), "bench-lat", {}).ok(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::printf("\n== baselines (the apiserver alone)\n");
  const int n_base = std::max(20, opt.samples);
  WatchBaseline(kc, resources::ConfigMaps(), "bench-lat", n_base,
                [](int i) { return json{{"metadata", {{"name", "watch-" + std::to_string(i)}}}}; });
  {
    // The Job the controller would create for attempt 1 of a research run.
    json fr = ResearchFlowRun("shape", "/usr/local/bin/research-agent", "");
    fr["metadata"]["namespace"] = "bench-lat";
    fr["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000";
    auto job = ctl::BuildJob(fr, 1, ctl::ControllerConfig{});
    if (!job.ok()) Die("BuildJob: " + job.status().ToString());
    WatchBaseline(kc, resources::Jobs(), "bench-lat", n_base,
                  [&](int i) { return InertJob(*job, "watch-" + std::to_string(i)); });
  }
  {
    std::vector<double> ms;
    for (int i = 0; i < 10; ++i) {
      int64_t s = NowNs();
      auto r = cluster.KubectlResult({"get", "flowruns", "-n", "bench-lat"});
      ms.push_back(Ms(NowNs() - s));
      if (!r.ok()) Die("kubectl get: " + r.output);
    }
    std::printf("  baseline: `kubectl get flowruns` round trip (x10, process start included) p50 %6.0f ms\n",
                Pct(ms, 50));
  }

  int rc = 0;
  std::printf("\n== controller idle, then %d waits and answers\n", opt.samples);
  {
    Controller c1(kc, db);
    double ready_ms = c1.WaitReady(std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::printf("  start -> /readyz 200 with no FlowRuns: %.0f ms\n", ready_ms);
    PrintMem("idle, no FlowRuns:", ReadMem(c1.pid()), 64);
    if (!Latency(opt, kc, "bench-lat", dir, llm->base_url(), c1)) rc = 1;
    c1.WaitQuiet(std::chrono::seconds(30));
    PrintMem(("after the latency runs (" + std::to_string(opt.samples) + " FlowRuns):").c_str(), ReadMem(c1.pid()),
             64);
    std::printf("  fake LLM requests: %lld (2 per run)\n", static_cast<long long>(llm->Total()));
    c1.Stop();
  }

  std::printf("\n== %d FlowRuns with a live attempt each (controller stopped meanwhile)\n", opt.runs);
  Populated p = Populate(opt, kc, "bench-scale");
  std::printf("  created %d FlowRuns + %d suspended Jobs + %d status patches in %.1f s (%.0f FlowRuns/s, %d "
              "threads, %d failed%s%s)\n",
              p.created, p.created, p.created, p.seconds, p.created / std::max(p.seconds, 0.001), opt.threads,
              p.failed, p.first_error.empty() ? "" : ": ", p.first_error.c_str());
  std::printf("  the core's second reconcile of each: %d would act%s%s\n", p.not_quiet,
              p.not_quiet ? "; e.g. " : " (as intended: the controller has nothing to do)",
              p.not_quiet_example.c_str());
  // Either would make the figures below measure something else than a
  // controller at rest with 10,000 live attempts: the run is invalid.
  if (p.failed || p.not_quiet) rc = 1;
  {
    auto c = Client(kc);
    for (const auto& [r, name] : {std::pair{resources::FlowRuns(), "run-00000"}, std::pair{resources::Jobs(), "run-00000-a1"}}) {
      auto o = c->Get(r, "bench-scale", name);
      if (!o.ok()) continue;
      const json& md = o->at("metadata");
      size_t mf = md.contains("managedFields") ? md["managedFields"].dump().size() : 0;
      std::printf("  one %s as served: %zu bytes of JSON, of which managedFields %zu\n", r.kind.c_str(),
                  o->dump().size(), mf);
    }
  }
  const int total = p.created + opt.samples;
  for (int round = 1; round <= opt.sync_rounds; ++round) {
    Controller c2(kc, db);
    double ready_ms = c2.WaitReady(std::chrono::seconds(300));
    ProcMem at_ready = ReadMem(c2.pid());
    double quiet_s = c2.WaitQuiet(std::chrono::seconds(300));
    ProcMem m = ReadMem(c2.pid());
    const bool full = total >= 10000;  // the targets are for 10,000
    const size_t acted = c2.ReconcilesWithActions("bench-scale");
    std::printf("  round %d: start -> /readyz 200 (%d FlowRuns, %d Jobs, %d pods cached): %.0f ms   target <= 10 s "
                "for 10,000%s\n",
                round, total, total * 2 - p.created, opt.samples * 2, ready_ms,
                full ? (ready_ms <= 10000 ? " (met)" : " (NOT met)") : " (not judged below 10,000)");
    std::printf("    at /readyz: VmRSS %.1f MiB; the start-up reconcile of every key done %.1f s later; "
                "reconciles of bench-scale that acted: %zu\n",
                at_ready.rss_mib, quiet_s, acted);
    if (acted) rc = 1;
    if (full)
      PrintMem(("with " + std::to_string(total) + " FlowRuns + Jobs cached:").c_str(), m, 200);
    else
      std::printf("  controller memory, with %d FlowRuns + Jobs cached: VmRSS %.1f MiB  VmHWM %.1f MiB   (target "
                  "<= 200 MiB is for 10,000)\n",
                  total, m.rss_mib, m.hwm_mib);
    c2.Stop();
  }
  std::printf("\ncontroller_bench: done in %.0f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count());
  std::fflush(stdout);
  KubeCluster::StopIfStarted();
  std::filesystem::remove_all(dir);
  return rc;
}
