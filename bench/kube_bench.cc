// kube_bench: the Kubernetes client against a local kube-apiserver it starts
// itself (tests/cluster via KubeCluster). Prints figures beside targets:
//   single GET latency p50/p99 over N requests, TCP_NODELAY on and off
//     (targets: p50 <= 5 ms, p99 <= 2 x p50; "off" shows Nagle stalls, if any)
//   time to list 10,000 ConfigMaps, page size 500
//   time to list and sync 10,000 FlowRuns through the Informer (target <= 10 s)
//     - the real CRD (crds/flowrun.dev_flowruns.yaml), objects shaped like
//     examples/research-agent/flowrun.yaml with the status of a waiting run
//   Informer memory per cached FlowRun (target <= 10 KiB; managedFields
//     dropped): process RSS and malloc'd bytes before/after the sync, divided
//     by the object count; the average serialized size of a cached object; and,
//     for comparison, the same objects held as listed (managedFields kept)
//
//   build-kube/bench/kube_bench [--gets=2000] [--objects=10000] [--flowruns=N]
//                               [--create-budget=SECONDS]
//   --objects:  ConfigMaps to list and FlowRuns to sync (default 10000)
//   --flowruns: FlowRuns only (default: --objects)
//   --create-budget: stop creating FlowRuns after this many seconds (0: no
//     limit) and measure with what was created (figures are per object)
//   The old positional form `kube_bench [gets] [objects]` still works.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flowrun/kube/client.h"
#include "flowrun/kube/informer.h"
#include "kube/kube_cluster.h"

using flowrun::kube::ClientOptions;
using flowrun::kube::Informer;
using flowrun::kube::InformerOptions;
using flowrun::kube::KubeClient;
using flowrun::kube::ListOptions;
using flowrun::kube::ObjectPtr;
using nlohmann::json;
namespace resources = flowrun::kube::resources;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

std::unique_ptr<KubeClient> Client(const std::string& kubeconfig, bool no_delay) {
  auto cfg = flowrun::kube::LoadKubeconfig(kubeconfig);
  if (!cfg.ok()) {
    std::fprintf(stderr, "kubeconfig: %s\n", cfg.status().ToString().c_str());
    std::exit(1);
  }
  ClientOptions o;
  o.tcp_no_delay = no_delay;
  auto c = flowrun::kube::NewKubeClient(*cfg, o);
  if (!c.ok()) {
    std::fprintf(stderr, "client: %s\n", c.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

void GetLatency(const std::string& kubeconfig, bool no_delay, int n) {
  auto c = Client(kubeconfig, no_delay);
  for (int i = 0; i < 50; ++i) (void)c->Get(resources::ConfigMaps(), "bench", "probe");  // warm the connection
  std::vector<double> ms;
  ms.reserve(n);
  int errors = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto s = Clock::now();
    auto r = c->Get(resources::ConfigMaps(), "bench", "probe");
    ms.push_back(Ms(Clock::now() - s));
    if (!r.ok()) ++errors;
  }
  double total = Ms(Clock::now() - t0);
  double p50 = Pct(ms, 50), p99 = Pct(ms, 99), mx = *std::max_element(ms.begin(), ms.end());
  int over40 = static_cast<int>(std::count_if(ms.begin(), ms.end(), [](double v) { return v >= 40.0; }));
  std::printf("GET x%d  TCP_NODELAY %-3s  p50 %6.2f ms  p99 %6.2f ms  max %6.1f ms  >=40ms: %d  (%.0f req/s, %d errors)"
              "   target p50 <= 5 ms, p99 <= 2x p50 (%s)\n",
              n, no_delay ? "on" : "off", p50, p99, mx, over40, n / (total / 1000.0), errors,
              (p50 <= 5.0 && p99 <= 2 * p50) ? "met" : "NOT met");
}

// Requests with a body: cpprestsdk writes the headers and the body in two
// writes, the pattern Nagle + delayed ACK stalls for ~40 ms.
void PatchLatency(const std::string& kubeconfig, bool no_delay, int n) {
  auto c = Client(kubeconfig, no_delay);
  for (int i = 0; i < 20; ++i)
    (void)c->MergePatch(resources::ConfigMaps(), "bench", "probe", {{"data", {{"n", std::to_string(i)}}}});
  std::vector<double> ms;
  int errors = 0;
  for (int i = 0; i < n; ++i) {
    auto s = Clock::now();
    auto r = c->MergePatch(resources::ConfigMaps(), "bench", "probe", {{"data", {{"n", std::to_string(i)}}}});
    ms.push_back(Ms(Clock::now() - s));
    if (!r.ok()) ++errors;
  }
  int over40 = static_cast<int>(std::count_if(ms.begin(), ms.end(), [](double v) { return v >= 40.0; }));
  std::printf("PATCH x%d TCP_NODELAY %-3s  p50 %6.2f ms  p99 %6.2f ms  >=40ms: %d  (%d errors)\n", n,
              no_delay ? "on" : "off", Pct(ms, 50), Pct(ms, 99), over40, errors);
}

// ---- FlowRuns through the Informer ----

// Memory of the process after returning free heap to the kernel.
struct Mem {
  double rss_kib = 0;     // resident set (/proc/self/statm)
  double heap_kib = 0;    // bytes handed out by malloc, all arenas + mmapped chunks (mallinfo2)
};

Mem MeasureMem() {
  malloc_trim(0);
  Mem m;
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  m.rss_kib = static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1024.0;
  struct mallinfo2 mi = mallinfo2();
  m.heap_kib = static_cast<double>(mi.uordblks + mi.hblkhd) / 1024.0;
  return m;
}

std::string Ts(int day, int hour, int min) {
  char b[32];
  std::snprintf(b, sizeof b, "2025-06-%02dT%02d:%02d:%02dZ", day, hour, min, (day * 7 + min) % 60);
  return b;
}

// examples/research-agent/flowrun.yaml, numbered.
json FlowRunObject(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "research-%05d", i);
  return json::parse(R"({
    "apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun",
    "metadata": {"name": ")" + std::string(name) + R"("},
    "spec": {
      "template": {
        "image": "flowrun/research-agent:0.1.0",
        "command": ["/usr/local/bin/research-agent"],
        "env": [
          {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}},
          {"name": "FLOWRUN_LLM_MODEL", "value": "gpt-4o-mini"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}},
      "parameters": {"topic": "durable execution for AI agents )" + std::to_string(i) + R"("},
      "flow": "research",
      "budgetUSD": 1.0,
      "retry": {"maxAttempts": 3},
      "attemptDeadlineSeconds": 1800,
      "waitTimeoutSeconds": 86400,
      "ttlSecondsAfterFinished": 604800,
      "database": {"secretRef": {"name": "flowrun-db"}}}})");
}

// The status of a run waiting for a person after its first attempt: what the
// controller writes (docs/flowrun-api.md).
json WaitingStatus(const std::string& name, int i) {
  int d = 1 + i % 28, h = i % 24, m = i % 60;
  std::string topic = "durable execution for AI agents " + std::to_string(i);
  std::string job = name + "-1";
  json st = {
      {"phase", "Waiting"},
      {"attempt", 1},
      {"attempts", json::array({{{"attempt", 1},
                                  {"job", job},
                                  {"startTime", Ts(d, h, m)},
                                  {"endTime", Ts(d, h, (m + 3) % 60)},
                                  {"outcome", "waiting"},
                                  {"reason", "Completed"},
                                  {"message", "wait(\"proceed\") asked a question; the pod exited"}}})},
      {"wait",
       {{"name", "proceed"},
        {"question", "Research on '" + topic +
                         "' is complete: 14 sources read, 6 key findings (checkpointing, idempotent tools, "
                         "replay, human-in-the-loop waits, cost accounting, retries with cached steps). "
                         "Estimated cost of the analysis step: $0.35 of the remaining $0.96 budget. "
                         "Proceed to the analysis?"},
        {"schema",
         {{"type", "object"},
          {"properties",
           {{"proceed", {{"type", "boolean"}}},
            {"notes", {{"type", "string"}, {"maxLength", 500}}}}},
          {"required", json::array({"proceed"})}}},
        {"askedAt", Ts(d, h, (m + 3) % 60)},
        {"deadline", Ts(d % 28 + 1, h, (m + 3) % 60)},
        {"onTimeout", "fail"}}},
      {"checkpoints", {{"live", 7}, {"cached", 0}, {"completed", 7}}},
      {"cost",
       {{"usd", 0.0421 + i % 100 * 0.0001},
        {"inputTokens", 18234 + i % 1000},
        {"outputTokens", 3120 + i % 500},
        {"cachedTokens", 4096},
        {"llmCalls", 7},
        {"savedUSD", 0},
        {"savedTokens", 0}}},
      {"message", "Waiting for an answer to \"proceed\" (asked " + Ts(d, h, (m + 3) % 60) + ")"},
      {"conditions",
       json::array({{{"type", "Ready"},
                     {"status", "False"},
                     {"observedGeneration", 1},
                     {"lastTransitionTime", Ts(d, h, (m + 3) % 60)},
                     {"reason", "Waiting"},
                     {"message", "The run waits for an answer to \"proceed\""}},
                    {{"type", "Waiting"},
                     {"status", "True"},
                     {"observedGeneration", 1},
                     {"lastTransitionTime", Ts(d, h, (m + 3) % 60)},
                     {"reason", "QuestionAsked"},
                     {"message", "status.wait holds the question; answer in status.answers.proceed"}},
                    {{"type", "JobComplete"},
                     {"status", "True"},
                     {"observedGeneration", 1},
                     {"lastTransitionTime", Ts(d, h, (m + 3) % 60)},
                     {"reason", "Completed"},
                     {"message", "Job " + job + " completed: the agent exited 0 with outcome waiting"}}})},
      {"observedGeneration", 1}};
  return {{"status", st}};
}

// What a nlohmann::json tree is made of, and what libstdc++/glibc malloc
// charge for it on x86-64 (chunk = request + 8 rounded up to 16, min 32):
//   object member: one std::map node (32 B links + std::string key 32 B +
//     json 16 B = 80 B -> 96 B chunk), plus the key's characters if > 15;
//   object / array: the std::map (48 B -> 64) / std::vector (24 B -> 32) it
//     points to, plus a vector's element buffer (16 B each, capacity slack);
//   string value: a std::string (32 B -> 48 B) plus its characters if > 15.
struct JsonCensus {
  size_t objects = 0, members = 0, arrays = 0, elements = 0, strings = 0, numbers = 0, long_strings = 0;
  size_t model_bytes = 0;  // what malloc hands out, by the rules above
};

size_t Chunk(size_t request) { return std::max<size_t>(32, (request + 8 + 15) / 16 * 16); }

void Census(const json& j, JsonCensus& c) {
  switch (j.type()) {
    case json::value_t::object:
      ++c.objects;
      c.model_bytes += Chunk(48);
      for (const auto& [k, v] : j.items()) {
        ++c.members;
        c.model_bytes += Chunk(80);
        if (k.size() > 15) c.model_bytes += Chunk(k.size() + 1);
        Census(v, c);
      }
      break;
    case json::value_t::array:
      ++c.arrays;
      c.model_bytes += Chunk(24) + (j.empty() ? 0 : Chunk(16 * j.size()));
      for (const auto& v : j) {
        ++c.elements;
        Census(v, c);
      }
      break;
    case json::value_t::string: {
      ++c.strings;
      const auto& str = j.get_ref<const std::string&>();
      c.model_bytes += Chunk(32);
      if (str.size() > 15) {
        ++c.long_strings;
        c.model_bytes += Chunk(str.size() + 1);
      }
      break;
    }
    default:
      ++c.numbers;  // numbers, booleans, null: inside the 16-byte json value
  }
}

void FlowRunInformer(flowrun::testing::KubeCluster& cluster, const std::string& kc, int objects,
                     double create_budget_s) {
  const auto frs = resources::FlowRuns();
  const std::string ns = "bench-fr";
  auto c = Client(kc, true);
  // The real CRD, with the cluster's kubectl.
  const std::string crd = cluster.scripts_dir() + "/../../crds/flowrun.dev_flowruns.yaml";
  auto a = cluster.KubectlResult({"apply", "--server-side", "-f", crd});
  if (!a.ok()) {
    std::printf("FlowRun CRD: kubectl apply failed: %s\n", a.output.c_str());
    return;
  }
  auto w = cluster.KubectlResult(
      {"wait", "--for=condition=Established", "crd/flowruns.flowrun.dev", "--timeout=60s"});
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    served = c->List(frs, ns, {}).ok();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!w.ok() || !served) {
    std::printf("FlowRun CRD never Established/served: %s\n", w.output.c_str());
    return;
  }
  (void)c->Create(resources::Namespaces(), "", {{"metadata", {{"name", ns}}}});

  // Create + status patch, 16 threads, within the time budget.
  const int threads = 16;
  std::atomic<int> next{0}, failed{0}, done{0};
  std::atomic<bool> out_of_time{false};
  std::vector<double> create_ms, patch_ms;
  std::string first_error;
  std::mutex err_mu;
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = next++; i < objects; i = next++) {
        if (create_budget_s > 0 && Ms(Clock::now() - t0) / 1000.0 > create_budget_s) {
          out_of_time = true;
          return;
        }
        json obj = FlowRunObject(i);
        std::string name = obj["metadata"]["name"];
        auto s0 = Clock::now();
        auto r = c->Create(frs, ns, obj);
        auto s1 = Clock::now();
        flowrun::Status bad;
        if (!r.ok() && !flowrun::kube::IsAlreadyExists(r.status())) bad = r.status();
        if (bad.ok()) {
          auto p = c->MergePatch(frs, ns, name, WaitingStatus(name, i), /*status=*/true);
          if (!p.ok()) bad = p.status();
        }
        auto s2 = Clock::now();
        std::lock_guard<std::mutex> l(err_mu);
        create_ms.push_back(Ms(s1 - s0));
        patch_ms.push_back(Ms(s2 - s1));
        if (!bad.ok()) {
          ++failed;
          if (first_error.empty()) first_error = bad.ToString();
        } else {
          ++done;
        }
      }
    });
  for (auto& t : ts) t.join();
  double create_s = Ms(Clock::now() - t0) / 1000.0;
  std::printf("created %d FlowRuns (create + status patch, %d threads) in %.1f s (%.0f/s, %d failed%s%s)%s\n",
              done.load(), threads, create_s, done / create_s, failed.load(), first_error.empty() ? "" : ": ",
              first_error.c_str(), out_of_time ? "  [stopped by --create-budget]" : "");
  ts.clear();
  if (!create_ms.empty())
    std::printf("  latency under 16-way concurrency: create p50 %.0f ms, status patch p50 %.0f ms\n",
                Pct(create_ms, 50), Pct(patch_ms, 50));
  if (done == 0) return;

  // How big one is, as the API serves it (managedFields included) and as cached.
  {
    auto one = c->Get(frs, ns, "research-00000");
    if (one.ok()) {
      size_t mf = one->at("metadata").contains("managedFields") ? one->at("metadata")["managedFields"].dump().size() : 0;
      std::printf("one FlowRun as served: %zu bytes of JSON, of which managedFields %zu\n", one->dump().size(), mf);
    }
  }

  // Informer start -> WaitForSync, twice (a fresh informer each time); the
  // first round also measures memory.
  size_t cached = 0;
  for (int round = 0; round < 2; ++round) {
    auto ic = Client(kc, true);
    InformerOptions o;
    o.resource = frs;
    o.ns = ns;
    o.page_size = 500;
    std::atomic<size_t> adds{0};
    auto inf = std::make_unique<Informer>(ic.get(), o);
    // What a controller does: enqueue a key per object (here: count).
    flowrun::kube::InformerHandlers h;
    h.on_add = [&](const ObjectPtr&) { ++adds; };
    inf->AddEventHandler(std::move(h));
    Mem before = MeasureMem();
    auto s = Clock::now();
    inf->Start();
    bool synced = inf->WaitForSync(std::chrono::minutes(5));
    double sync_ms = Ms(Clock::now() - s);
    Mem after = MeasureMem();
    cached = inf->Size();
    const double per_obj = static_cast<double>(std::max<size_t>(cached, 1));
    std::printf("informer sync %zu FlowRuns (list in pages of 500 -> WaitForSync), round %d: %s%.0f ms  "
                "(%.0f objects/s, %zu on_add)   target <= 10 s for 10,000%s\n",
                cached, round + 1, synced ? "" : "NOT SYNCED ", sync_ms, cached / (sync_ms / 1000.0), adds.load(),
                cached >= 10000 ? (sync_ms <= 10000 ? " (met)" : " (NOT met)")
                                : (sync_ms * 10000.0 / std::max<size_t>(cached, 1) <= 10000 ? " (extrapolated: met)"
                                                                                            : " (extrapolated: NOT met)"));
    if (cached > 0 && cached < 10000)
      std::printf("  extrapolated to 10,000 (linear): %.0f ms\n", sync_ms * 10000.0 / static_cast<double>(cached));
    double rss_per = (after.rss_kib - before.rss_kib) / per_obj;
    double heap_per = (after.heap_kib - before.heap_kib) / per_obj;
    std::printf("informer memory, managedFields dropped, round %d: RSS +%.1f MiB = %.2f KiB/object; "
                "malloc'd +%.1f MiB = %.2f KiB/object   target <= 10 KiB (%s)\n",
                round + 1, (after.rss_kib - before.rss_kib) / 1024.0, rss_per,
                (after.heap_kib - before.heap_kib) / 1024.0, heap_per, rss_per <= 10.0 ? "met" : "NOT met");
    if (round == 0) {
      size_t bytes = 0;
      auto all = inf->List();
      JsonCensus census;
      for (const auto& p : all) {
        bytes += p->dump().size();
        Census(*p, census);
      }
      const double n = static_cast<double>(std::max<size_t>(all.size(), 1));
      std::printf("cached object: %.0f bytes of serialized JSON on average (managedFields dropped); "
                  "malloc'd %.1fx that\n",
                  static_cast<double>(bytes) / n, heap_per * 1024.0 / (static_cast<double>(bytes) / n));
      std::printf("  per object: %.0f objects with %.0f members, %.0f arrays with %.0f elements, %.0f strings "
                  "(%.0f longer than 15), %.0f numbers/bools; nlohmann::json tree by the malloc model: %.2f KiB\n",
                  census.objects / n, census.members / n, census.arrays / n, census.elements / n, census.strings / n,
                  census.long_strings / n, census.numbers / n, static_cast<double>(census.model_bytes) / n / 1024.0);
    }
    inf->Stop();
    inf.reset();
  }

  // For comparison (not through the informer: it always drops managedFields
  // and has no option to keep them): the same objects as listed, each held as
  // a shared_ptr<const json> like the cache holds them, managedFields kept.
  {
    auto lc = Client(kc, true);
    Mem before = MeasureMem();
    std::vector<ObjectPtr> held;
    size_t bytes = 0;
    {
      ListOptions o;
      o.limit = 500;
      auto all = lc->ListAll(frs, ns, o);
      if (!all.ok()) {
        std::printf("list FlowRuns failed: %s\n", all.status().ToString().c_str());
        return;
      }
      held.reserve(all->items.size());
      for (auto& it : all->items) {
        bytes += it.dump().size();
        held.push_back(std::make_shared<const json>(std::move(it)));
      }
    }
    Mem after = MeasureMem();
    double n = static_cast<double>(std::max<size_t>(held.size(), 1));
    std::printf("for comparison, %zu FlowRuns as listed, managedFields kept (shared_ptr<const json>, no informer): "
                "%.0f bytes of JSON each; RSS %.2f KiB/object, malloc'd %.2f KiB/object\n",
                held.size(), static_cast<double>(bytes) / n, (after.rss_kib - before.rss_kib) / n,
                (after.heap_kib - before.heap_kib) / n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  int gets = 2000;
  int objects = 10000;
  int flowruns = -1;
  double create_budget_s = 0;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char* v = val("--gets=")) {
      gets = std::atoi(v);
    } else if (const char* v = val("--objects=")) {
      objects = std::atoi(v);
    } else if (const char* v = val("--flowruns=")) {
      flowruns = std::atoi(v);
    } else if (const char* v = val("--create-budget=")) {
      create_budget_s = std::atof(v);
    } else if (a.rfind("--", 0) != 0 && positional < 2) {
      (positional++ == 0 ? gets : objects) = std::atoi(a.c_str());
    } else {
      std::fprintf(stderr,
                   "usage: kube_bench [--gets=2000] [--objects=10000] [--flowruns=N] [--create-budget=SECONDS]\n");
      return 2;
    }
  }
  if (flowruns < 0) flowruns = objects;
  auto& cluster = flowrun::testing::KubeCluster::Get();
  const std::string kc = cluster.admin_kubeconfig();
  std::printf("kube_bench: kube-apiserver %s (cluster dir %s), %u cores\n", cluster.apiserver_url().c_str(),
              cluster.dir().c_str(), std::thread::hardware_concurrency());
  {
    auto c = Client(kc, true);
    (void)c->Create(resources::Namespaces(), "", {{"metadata", {{"name", "bench"}}}});
    auto r = c->Create(resources::ConfigMaps(), "bench",
                       {{"metadata", {{"name", "probe"}}}, {"data", {{"k", std::string(200, 'v')}}}});
    if (!r.ok()) std::fprintf(stderr, "create probe: %s\n", r.status().ToString().c_str());
  }
  GetLatency(kc, true, gets);
  GetLatency(kc, false, gets);
  GetLatency(kc, true, gets);
  PatchLatency(kc, true, gets / 4);
  PatchLatency(kc, false, gets / 4);

  // Create `objects` ConfigMaps in parallel, then list them in pages of 500.
  {
    auto c = Client(kc, true);
    (void)c->Create(resources::Namespaces(), "", {{"metadata", {{"name", "bench-list"}}}});
    const int threads = 16;
    std::atomic<int> next{0}, failed{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&] {
        for (int i = next++; i < objects; i = next++) {
          auto r = c->Create(resources::ConfigMaps(), "bench-list",
                             {{"metadata", {{"name", "cm-" + std::to_string(i)}, {"labels", {{"bench", "yes"}}}}},
                              {"data", {{"i", std::to_string(i)}, {"pad", std::string(100, 'x')}}}});
          if (!r.ok() && !flowrun::kube::IsAlreadyExists(r.status())) ++failed;
        }
      });
    for (auto& t : ts) t.join();
    double create_s = Ms(Clock::now() - t0) / 1000.0;
    std::printf("created %d ConfigMaps with %d threads in %.1f s (%.0f/s, %d failed)\n", objects, threads, create_s,
                objects / create_s, failed.load());
    for (int round = 0; round < 3; ++round) {
      ListOptions o;
      o.limit = 500;
      auto s = Clock::now();
      auto all = c->ListAll(resources::ConfigMaps(), "bench-list", o);
      double ms = Ms(Clock::now() - s);
      if (!all.ok()) {
        std::printf("list failed: %s\n", all.status().ToString().c_str());
        break;
      }
      std::printf("list %zu ConfigMaps (pages of 500): %.0f ms  (%.0f objects/s)\n", all->items.size(), ms,
                  all->items.size() / (ms / 1000.0));
    }
  }
  FlowRunInformer(cluster, kc, flowruns, create_budget_s);
  flowrun::testing::KubeCluster::StopIfStarted();
  return 0;
}
