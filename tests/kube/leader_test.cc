// Leader election between real processes (kube_leader_contender) on a real
// control plane (label kube). Durations: lease 4 s, renew deadline 3 s, retry
// 0.5 s (same ratios as the 15/10/2 s defaults, faster test).
#include "flowrun/kube/leader_election.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flowrun/kube/client.h"
#include "kube/unimplemented_client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/errors.h"
#include "kube/kube_cluster.h"
#include "support/eventually.h"

extern char** environ;

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using flowrun::testing::KubeCluster;

constexpr int kLeaseMs = 4000, kRenewMs = 3000, kRetryMs = 500;

// The contender executable (tests/kube/CMakeLists.txt defines its path).
#ifndef FLOWRUN_LEADER_CONTENDER
#error "tests/kube/CMakeLists.txt must define FLOWRUN_LEADER_CONTENDER"
#endif
constexpr const char* kContender = FLOWRUN_LEADER_CONTENDER;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Line {
  std::string word, id;
  int64_t ms;
};

std::vector<Line> ReadLines(const std::string& path) {
  std::vector<Line> out;
  std::ifstream in(path);
  std::string s;
  while (std::getline(in, s)) {
    std::istringstream ls(s);
    Line l;
    if (ls >> l.word >> l.id >> l.ms) out.push_back(l);
  }
  return out;
}

class Contender {
 public:
  Contender(const std::string& ns, const std::string& lease, const std::string& id, const std::string& out)
      : id_(id) {
    std::vector<std::string> args = {kContender, KubeCluster::Get().admin_kubeconfig(), ns, lease, id,
                                     out, std::to_string(kLeaseMs), std::to_string(kRenewMs),
                                     std::to_string(kRetryMs)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ);
    EXPECT_EQ(rc, 0) << "spawn " << argv[0];
  }
  ~Contender() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }
  void Kill(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Waits for the exit; returns the exit code (128+signal if killed).
  int Wait() {
    int st = 0;
    if (pid_ <= 0) return exit_code_;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return exit_code_;
  }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::unique_ptr<KubeClient> AdminClient() {
  auto cfg = LoadKubeconfig(KubeCluster::Get().admin_kubeconfig());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  auto c = NewKubeClient(*cfg);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

// First LEADER line (of `id`, or of anyone if empty) at or after `since`; -1 if none.
int64_t LeaderAt(const std::string& path, const std::string& id, int64_t since, std::string* who = nullptr) {
  for (const auto& l : ReadLines(path)) {
    if (l.word == "LEADER" && l.ms >= since && (id.empty() || l.id == id)) {
      if (who) *who = l.id;
      return l.ms;
    }
  }
  return -1;
}

int64_t WaitLeader(const std::string& path, const std::string& id, int64_t since, std::chrono::milliseconds timeout,
                   std::string* who = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int64_t t = LeaderAt(path, id, since, who);
    if (t >= 0 || std::chrono::steady_clock::now() > deadline) return t;
    std::this_thread::sleep_for(20ms);
  }
}

std::string Holder(KubeClient* c, const std::string& ns, const std::string& lease) {
  auto l = c->Get(resources::Leases(), ns, lease);
  if (!l.ok()) return "<" + l.status().ToString() + ">";
  return (*l)["spec"].value("holderIdentity", "");
}

// The positive signal that time passed with `holder` leading: waits until the
// Lease's renewTime has changed `renewals` times, checking at every look (each
// 50 ms, a tenth of the retry period) that `holder` holds it. "" when seen,
// else what went wrong. The deadline is generous, not an expectation.
std::string WaitRenewals(KubeClient* c, const std::string& ns, const std::string& lease, const std::string& holder,
                         int renewals, std::chrono::milliseconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  int changes = -1;  // the first look sets the baseline
  for (;;) {
    auto l = c->Get(resources::Leases(), ns, lease);
    if (!l.ok()) return "reading the Lease: " + l.status().ToString();
    const nlohmann::json spec = l->value("spec", nlohmann::json::object());
    std::string h = spec.value("holderIdentity", "");
    if (h != holder) return "the Lease is held by '" + h + "', not '" + holder + "'";
    std::string renewed = spec.value("renewTime", "");
    if (renewed != last) {
      ++changes;
      last = renewed;
    }
    if (changes >= renewals) return "";
    if (std::chrono::steady_clock::now() > deadline)
      return "only " + std::to_string(changes) + " of " + std::to_string(renewals) + " renewals seen";
    std::this_thread::sleep_for(50ms);
  }
}

// Leadership intervals per process: [LEADER, last CLAIM]. No two overlap.
void ExpectNoOverlap(const std::string& path) {
  struct Interval {
    std::string id;
    int64_t from, to;
  };
  std::vector<Interval> iv;
  std::map<std::string, size_t> open;
  for (const auto& l : ReadLines(path)) {
    if (l.word == "LEADER") {
      open[l.id] = iv.size();
      iv.push_back({l.id, l.ms, l.ms});
    } else if (l.word == "CLAIM" && open.count(l.id)) {
      iv[open[l.id]].to = std::max(iv[open[l.id]].to, l.ms);
    } else if (l.word == "LOST" || l.word == "RELEASED") {
      open.erase(l.id);
    }
  }
  for (size_t i = 0; i < iv.size(); ++i)
    for (size_t k = i + 1; k < iv.size(); ++k)
      if (iv[i].id != iv[k].id) {
        EXPECT_TRUE(iv[i].to < iv[k].from || iv[k].to < iv[i].from)
            << iv[i].id << " [" << iv[i].from << "," << iv[i].to << "] overlaps " << iv[k].id << " [" << iv[k].from
            << "," << iv[k].to << "]";
      }
}

std::string TempFile(const std::string& name) {
  std::string dir = ::testing::TempDir();
  std::string p = dir + "/" + name + "-" + std::to_string(getpid()) + ".log";
  std::remove(p.c_str());
  return p;
}

TEST(LeaderElection, OneLeaderFailoverOnKillAndFastTakeoverOnRelease) {
  auto& cluster = KubeCluster::Get();
  std::string ns = cluster.CreateNamespace("leader-test");
  auto client = AdminClient();
  const std::string lease = "flowrun-controller";
  const std::string out = TempFile("leader");

  int64_t t0 = NowMs();
  Contender a(ns, lease, "alpha", out);
  Contender b(ns, lease, "beta", out);
  std::string first;
  ASSERT_GE(WaitLeader(out, "", t0, 60s, &first), 0) << "nobody became leader";
  std::string second = first == "alpha" ? "beta" : "alpha";
  Contender& leader = first == "alpha" ? a : b;
  Contender& standby = first == "alpha" ? b : a;

  // Steady state: exactly one leader, and the Lease names it through six
  // renewals (~3 s, longer than the renew deadline).
  EXPECT_EQ(WaitRenewals(client.get(), ns, lease, first, 6), "");
  EXPECT_EQ(LeaderAt(out, second, 0), -1) << second << " must not lead while " << first << " renews";

  // SIGKILL the leader: no release; the other waits out the lease.
  int64_t killed = NowMs();
  leader.Kill(SIGKILL);
  EXPECT_EQ(leader.Wait(), 128 + SIGKILL);
  int64_t took_over = WaitLeader(out, second, killed, 60s);
  ASSERT_GE(took_over, 0) << second << " did not take over";
  int64_t delay = took_over - killed;
  std::cout << "takeover after SIGKILL: " << delay << " ms\n";
  // No upper bound beyond WaitLeader's deadline: how soon the standby runs
  // after the lease expired depends on the machine's load, not on the code
  // (the pure FakeClock tests below pin the timing exactly). The lower bound
  // is safe under any load: waiting longer only makes the delay larger.
  EXPECT_GE(delay, kLeaseMs - kRetryMs * 12 / 10 - 1000) << "must respect the dead leader's lease";
  EXPECT_TRUE(flowrun::testing::Eventually([&] { return Holder(client.get(), ns, lease) == second; }, 30s))
      << Holder(client.get(), ns, lease);

  // A third contender joins; the current leader is undisturbed: once gamma
  // runs (STARTED; it tries at once, then every retry period), the leader
  // renews four more times and gamma never leads.
  const std::string third = "gamma";
  Contender c(ns, lease, third, out);
  ASSERT_TRUE(flowrun::testing::Eventually(
      [&] {
        for (const auto& l : ReadLines(out))
          if (l.word == "STARTED" && l.id == third) return true;
        return false;
      },
      30s));
  EXPECT_EQ(WaitRenewals(client.get(), ns, lease, second, 4), "");
  EXPECT_EQ(LeaderAt(out, third, 0), -1);
  EXPECT_EQ(Holder(client.get(), ns, lease), second);

  // Graceful stop: the leader releases; gamma takes over within ~ one retry period.
  int64_t released = NowMs();
  standby.Kill(SIGTERM);
  EXPECT_EQ(standby.Wait(), 0);
  int64_t took = WaitLeader(out, third, released, 60s);
  ASSERT_GE(took, 0) << "gamma did not take over after the release";
  std::cout << "takeover after release: " << took - released << " ms\n";
  // It took over because of the release, not because the lease ran out:
  // before the lease that the releasing leader last claimed would have
  // expired (the contenders' own timestamps, whatever the load).
  int64_t last_claim = -1;
  for (const auto& l : ReadLines(out))
    if (l.id == second && (l.word == "CLAIM" || l.word == "LEADER")) last_claim = std::max(last_claim, l.ms);
  ASSERT_GE(last_claim, 0);
  EXPECT_LT(took, last_claim + kLeaseMs) << "gamma waited out the lease instead of seeing the release";
  EXPECT_EQ(Holder(client.get(), ns, lease), third);

  bool saw_released = false;
  for (const auto& l : ReadLines(out)) saw_released |= l.word == "RELEASED" && l.id == second;
  EXPECT_TRUE(saw_released);
  c.Kill(SIGTERM);
  EXPECT_EQ(c.Wait(), 0);
  EXPECT_EQ(Holder(client.get(), ns, lease), "") << "released on shutdown";
  ExpectNoOverlap(out);
}

// In-process: acquire, renew, Conflict-safe contention and release via the API.
TEST(LeaderElection, InProcessAcquireRenewRelease) {
  auto& cluster = KubeCluster::Get();
  std::string ns = cluster.CreateNamespace("leader-inproc");
  auto client = AdminClient();
  auto make = [&](const std::string& id, std::atomic<int>* started, std::atomic<int>* stopped) {
    LeaderElectionConfig c;
    c.lease_namespace = ns;
    c.lease_name = "inproc";
    c.identity = id;
    c.lease_duration = 4s;
    c.renew_deadline = 3s;
    c.retry_period = 500ms;
    c.on_started_leading = [started] { ++*started; };
    c.on_stopped_leading = [stopped] { ++*stopped; };
    auto e = LeaderElector::Create(client.get(), c);
    EXPECT_TRUE(e.ok()) << e.status();
    return std::move(e).value();
  };
  std::atomic<int> s1{0}, x1{0}, s2{0}, x2{0};
  auto e1 = make("one", &s1, &x1);
  auto e2 = make("two", &s2, &x2);
  auto r1 = e1->TryAcquireOrRenew();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(*r1);  // created the Lease
  auto r2 = e2->TryAcquireOrRenew();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_FALSE(*r2) << "held by one";
  EXPECT_EQ(e2->CurrentLeader(), "one");

  e1->Start();
  e2->Start();
  auto until = [](const std::function<bool()>& f) { return flowrun::testing::Eventually(f, 10s); };
  ASSERT_TRUE(until([&] { return e1->IsLeader(); }));
  EXPECT_EQ(s1.load(), 1);
  // Renewals keep it: eight of them (~4 s, past the 3 s renew deadline and
  // the 4 s lease), "one" holding the Lease throughout.
  EXPECT_EQ(WaitRenewals(client.get(), ns, "inproc", "one", 8), "");
  EXPECT_TRUE(e1->IsLeader());
  EXPECT_FALSE(e2->IsLeader());
  e1->Stop();
  EXPECT_FALSE(e1->IsLeader());
  EXPECT_EQ(x1.load(), 1);
  ASSERT_TRUE(until([&] { return e2->IsLeader(); }));
  auto lease = client->Get(resources::Leases(), ns, "inproc");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "two");
  EXPECT_GE((*lease)["spec"]["leaseTransitions"].get<int>(), 1);
  e2->Stop();
  EXPECT_EQ(x2.load(), 1);
}

// ---------- pure: an in-memory Lease store and a fake clock ----------

class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::nanoseconds(t_.load()));
  }
  std::chrono::steady_clock::time_point MonotonicNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t_.load()));
  }
  void SleepFor(std::chrono::nanoseconds d) override { Advance(d); }
  void Advance(std::chrono::nanoseconds d) { t_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> t_{1'700'000'000'000'000'000};
};

// Get / Create / Update of one Lease with resourceVersion preconditions.
class LeaseStore final : public flowrun::kube::testing::UnimplementedClient {
 public:
  StatusOr<nlohmann::json> Get(const ResourceRef&, const std::string&, const std::string&) override {
    std::lock_guard<std::mutex> l(mu_);
    if (lease_.is_null()) return NotFound("leases not found");
    return lease_;
  }
  StatusOr<nlohmann::json> Create(const ResourceRef&, const std::string&, const nlohmann::json& o) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!lease_.is_null()) return AlreadyExists("exists");
    lease_ = o;
    lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
    return lease_;
  }
  StatusOr<nlohmann::json> Update(const ResourceRef&, const std::string&, const nlohmann::json& o) override {
    if (before_update) {
      auto f = std::move(before_update);
      before_update = nullptr;
      f();  // a concurrent writer, between our Get and our Update
    }
    std::lock_guard<std::mutex> l(mu_);
    if (lease_.is_null()) return NotFound("gone");
    if (o["metadata"].value("resourceVersion", "") != lease_["metadata"]["resourceVersion"]) {
      Status s = StatusFromResponse(409, R"({"kind":"Status","code":409,"reason":"Conflict"})", "");
      return s;
    }
    lease_ = o;
    lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
    ++updates_;
    return lease_;
  }
  // Another process writes the spec.
  void SetSpec(const nlohmann::json& spec) {
    std::lock_guard<std::mutex> l(mu_);
    if (lease_.is_null()) lease_ = {{"metadata", {{"name", "l"}, {"namespace", "ns"}}}};
    lease_["spec"] = spec;
    lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
  }
  std::function<void()> before_update;

  nlohmann::json Spec() {
    std::lock_guard<std::mutex> l(mu_);
    return lease_.is_null() ? nlohmann::json() : lease_["spec"];
  }


 private:
  std::mutex mu_;
  nlohmann::json lease_;
  int rv_ = 0;
  int updates_ = 0;
};

std::unique_ptr<LeaderElector> FakeElector(KubeClient* c, Clock* clock, const std::string& id) {
  LeaderElectionConfig cfg;
  cfg.lease_namespace = "ns";
  cfg.lease_name = "l";
  cfg.identity = id;
  cfg.clock = clock;  // defaults 15 s / 10 s / 2 s
  auto e = LeaderElector::Create(c, cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(e).value();
}

TEST(LeaderElectionPure, WaitsAFullLeaseFromItsOwnObservationNotTheRecordsTimestamps) {
  FakeClock clock;
  LeaseStore store;
  // Another holder whose renewTime is ancient by our clock: irrelevant.
  store.SetSpec({{"holderIdentity", "other"}, {"leaseDurationSeconds", 15},
                 {"renewTime", "1971-01-01T00:00:00.000000Z"}, {"leaseTransitions", 3}});
  auto e = FakeElector(&store, &clock, "me");
  EXPECT_FALSE(*e->TryAcquireOrRenew()) << "first sight starts the local timer";
  EXPECT_EQ(e->CurrentLeader(), "other");
  clock.Advance(14s);
  EXPECT_FALSE(*e->TryAcquireOrRenew());
  clock.Advance(1100ms);
  EXPECT_TRUE(*e->TryAcquireOrRenew()) << "expired by our monotonic clock";
  auto spec = store.Spec();
  EXPECT_EQ(spec["holderIdentity"], "me");
  EXPECT_EQ(spec["leaseTransitions"], 4);
  EXPECT_EQ(spec["leaseDurationSeconds"], 15);
  std::string acquired = spec["acquireTime"];
  // Renewing keeps acquireTime and the transition count.
  clock.Advance(2s);
  EXPECT_TRUE(*e->TryAcquireOrRenew());
  EXPECT_EQ(store.Spec()["acquireTime"], acquired);
  EXPECT_EQ(store.Spec()["leaseTransitions"], 4);
  EXPECT_NE(store.Spec()["renewTime"], acquired);
}

TEST(LeaderElectionPure, AHolderThatKeepsRenewingIsNeverDisplaced) {
  FakeClock clock;
  LeaseStore store;
  auto e = FakeElector(&store, &clock, "me");
  for (int i = 0; i < 20; ++i) {
    // The record changes every 10 s (a renewal) even though its timestamps never move forward.
    store.SetSpec({{"holderIdentity", "other"}, {"leaseDurationSeconds", 15},
                   {"renewTime", "1971-01-01T00:00:0" + std::to_string(i % 10) + ".000000Z"}});
    EXPECT_FALSE(*e->TryAcquireOrRenew());
    clock.Advance(10s);
  }
}

TEST(LeaderElectionPure, ReleasedLeaseIsTakenAtOnce) {
  FakeClock clock;
  LeaseStore store;
  auto a = FakeElector(&store, &clock, "a");
  auto b = FakeElector(&store, &clock, "b");
  EXPECT_TRUE(*a->TryAcquireOrRenew());
  EXPECT_FALSE(*b->TryAcquireOrRenew());
  a->Stop();  // not started: Stop() without leading releases nothing
  EXPECT_EQ(store.Spec()["holderIdentity"], "a");
  // What Stop() writes when it leads: no holder, 1 s.
  store.SetSpec({{"leaseDurationSeconds", 1}, {"leaseTransitions", 0}});
  EXPECT_TRUE(*b->TryAcquireOrRenew()) << "an empty holder is free at once";
  EXPECT_EQ(store.Spec()["holderIdentity"], "b");
  EXPECT_EQ(store.Spec()["leaseTransitions"], 1);
}

TEST(LeaderElectionPure, AConcurrentWriteMakesTheUpdateLoseWithConflict) {
  FakeClock clock;
  LeaseStore store;
  store.SetSpec({{"leaseDurationSeconds", 1}});  // free
  auto e = FakeElector(&store, &clock, "me");
  store.before_update = [&] { store.SetSpec({{"holderIdentity", "fast"}, {"leaseDurationSeconds", 15}}); };
  auto r = e->TryAcquireOrRenew();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r) << "409 Conflict: somebody else won this round";
  EXPECT_EQ(store.Spec()["holderIdentity"], "fast");
  EXPECT_FALSE(*e->TryAcquireOrRenew());
  EXPECT_EQ(e->CurrentLeader(), "fast");
}

TEST(LeaderElectionPure, StepsDownWhenAnotherHolderAppears) {
  FakeClock clock;
  LeaseStore store;
  std::atomic<int> started{0};
  LeaderElectionConfig cfg;
  cfg.lease_namespace = "ns";
  cfg.lease_name = "l";
  cfg.identity = "me";
  cfg.clock = &clock;
  cfg.retry_period = 20ms;
  cfg.renew_deadline = 10s;
  cfg.lease_duration = 15s;
  cfg.on_started_leading = [&] { ++started; };
  auto e = LeaderElector::Create(&store, cfg);
  ASSERT_TRUE(e.ok());
  (*e)->Start();
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return (*e)->IsLeader(); }));
  EXPECT_EQ(started.load(), 1);
  // Someone else takes the lease: the next renewal sees it and steps down.
  store.SetSpec({{"holderIdentity", "thief"}, {"leaseDurationSeconds", 15}});
  EXPECT_TRUE(flowrun::testing::Eventually([&] { return !(*e)->IsLeader(); }));
  (*e)->Stop();
  EXPECT_EQ(store.Spec()["holderIdentity"], "thief") << "Stop() must not release a lease it does not hold";
}

TEST(LeaderElectionPure, IsLeaderIsFalseOnceTheRenewDeadlinePassed) {
  FakeClock clock;
  LeaseStore store;
  // TryAcquireOrRenew alone does not mark leading (the Run loop does), so
  // use the thread with a long retry period.
  LeaderElectionConfig cfg;
  cfg.lease_namespace = "ns";
  cfg.lease_name = "l2";
  cfg.identity = "me";
  cfg.clock = &clock;
  cfg.retry_period = 1s;
  cfg.renew_deadline = 10s;
  cfg.lease_duration = 15s;
  auto el = LeaderElector::Create(&store, cfg);
  ASSERT_TRUE(el.ok());
  (*el)->Start();
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return (*el)->IsLeader(); }));
  clock.Advance(10s);  // no renewal happened on our (fake) clock for the renew deadline
  EXPECT_FALSE((*el)->IsLeader());
  (*el)->Stop();
}

TEST(LeaderElection, RejectsBadConfig) {
  LeaderElectionConfig c;
  c.lease_name = "x";
  c.identity = "y";
  c.renew_deadline = c.lease_duration;
  auto client = AdminClient();
  EXPECT_FALSE(LeaderElector::Create(client.get(), c).ok());
  c.renew_deadline = 1s;
  c.retry_period = 1s;
  EXPECT_FALSE(LeaderElector::Create(client.get(), c).ok());
  c.retry_period = 100ms;
  EXPECT_TRUE(LeaderElector::Create(client.get(), c).ok());
  c.identity = "";
  EXPECT_FALSE(LeaderElector::Create(client.get(), c).ok());
}

}  // namespace
}  // namespace flowrun::kube
