// kube_bench: the Kubernetes client against a local kube-apiserver it starts
// itself (tests/cluster via KubeCluster). Prints figures beside targets:
//   single GET latency p50/p99 over N requests, TCP_NODELAY on and off
//     (targets: p50 <= 5 ms, p99 <= 2 x p50; "off" shows Nagle stalls, if any)
//   time to list 10,000 ConfigMaps, page size 500
//
//   build-kube/bench/kube_bench [gets=2000] [objects=10000]
#include <algorithm>
#include <csignal>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "flowrun/kube/client.h"
#include "kube/kube_cluster.h"

using flowrun::kube::ClientOptions;
using flowrun::kube::KubeClient;
using flowrun::kube::ListOptions;
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

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  int gets = argc > 1 ? std::atoi(argv[1]) : 2000;
  int objects = argc > 2 ? std::atoi(argv[2]) : 10000;
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
  flowrun::testing::KubeCluster::StopIfStarted();
  return 0;
}
