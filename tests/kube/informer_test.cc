// Informer against a real control plane (label kube). The cluster runs with
// kube-apiserver --watch-cache=false and a 2 s etcd compaction interval, so a
// watch resumed from an old resourceVersion gets a real 410 Gone quickly.
#include "flowrun/kube/informer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "flowrun/kube/client.h"
#include "kube/unimplemented_client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/errors.h"
#include "kube/kube_cluster.h"

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using flowrun::testing::KubeCluster;

std::unique_ptr<KubeClient> AdminClient() {
  auto cfg = LoadKubeconfig(KubeCluster::Get().admin_kubeconfig());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  ClientOptions o;
  o.request_timeout = 10s;
  auto c = NewKubeClient(*cfg, o);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

bool Eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

nlohmann::json ConfigMap(const std::string& ns, const std::string& name, nlohmann::json data = {{"k", "v"}},
                         nlohmann::json labels = nlohmann::json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"data", data}};
}

// Handler calls as strings: "add ns/a", "update ns/a", "delete ns/a", "delete? ns/a" (synthesized).
class Journal {
 public:
  InformerHandlers Handlers() {
    InformerHandlers h;
    h.on_add = [this](const ObjectPtr& o) { Push("add " + ObjectKey(*o)); };
    h.on_update = [this](const ObjectPtr&, const ObjectPtr& n) { Push("update " + ObjectKey(*n)); };
    h.on_delete = [this](const ObjectPtr& o, bool unknown) { Push((unknown ? "delete? " : "delete ") + ObjectKey(*o)); };
    return h;
  }
  bool Has(const std::string& e) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& x : log_)
      if (x == e) return true;
    return false;
  }
  int Count(const std::string& e) const {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (const auto& x : log_) n += x == e;
    return n;
  }
  std::string Dump() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string s;
    for (const auto& x : log_) s += x + "\n";
    return s;
  }

 private:
  void Push(std::string e) {
    std::lock_guard<std::mutex> l(mu_);
    log_.push_back(std::move(e));
  }
  mutable std::mutex mu_;
  std::vector<std::string> log_;
};

// A KubeClient that forwards to a real one, and can cut the informer off:
// while partitioned every List and Watch fails at once and running watches
// are cancelled. Records every List's options; an optional hook runs before
// a List is forwarded (on the informer's thread).
class PartitionableClient final : public flowrun::kube::testing::UnimplementedClient {
 public:
  explicit PartitionableClient(KubeClient* real) : real_(real) {}

  void Partition() {
    std::lock_guard<std::mutex> l(mu_);
    partitioned_ = true;
    for (auto* t : running_) t->Cancel();
  }
  void Heal() {
    std::lock_guard<std::mutex> l(mu_);
    partitioned_ = false;
  }
  std::vector<std::string> WatchResourceVersions() const {
    std::lock_guard<std::mutex> l(mu_);
    return watch_rvs_;
  }
  std::vector<ListOptions> ListCalls() const {
    std::lock_guard<std::mutex> l(mu_);
    return list_calls_;
  }
  // Before Start().
  void BeforeList(std::function<void(const ListOptions&)> hook) { before_list_ = std::move(hook); }

  StatusOr<nlohmann::json> Get(const ResourceRef& r, const std::string& ns, const std::string& n) override {
    return real_->Get(r, ns, n);
  }
  StatusOr<ObjectList> List(const ResourceRef& r, const std::string& ns, const ListOptions& o) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (partitioned_) return Unavailable("partitioned (test)");
      list_calls_.push_back(o);
    }
    if (before_list_) before_list_(o);
    return real_->List(r, ns, o);
  }
  StatusOr<nlohmann::json> Create(const ResourceRef& r, const std::string& ns, const nlohmann::json& o) override {
    return real_->Create(r, ns, o);
  }
  StatusOr<nlohmann::json> Update(const ResourceRef& r, const std::string& ns, const nlohmann::json& o) override {
    return real_->Update(r, ns, o);
  }
  StatusOr<nlohmann::json> UpdateStatus(const ResourceRef& r, const std::string& ns,
                                        const nlohmann::json& o) override {
    return real_->UpdateStatus(r, ns, o);
  }
  StatusOr<nlohmann::json> MergePatch(const ResourceRef& r, const std::string& ns, const std::string& n,
                                      const nlohmann::json& p, bool status) override {
    return real_->MergePatch(r, ns, n, p, status);
  }
  StatusOr<nlohmann::json> Apply(const ResourceRef& r, const std::string& ns, const std::string& n,
                                 const nlohmann::json& o, const std::string& fm, bool force, bool status) override {
    return real_->Apply(r, ns, n, o, fm, force, status);
  }
  Status Delete(const ResourceRef& r, const std::string& ns, const std::string& n, const DeleteOptions& o) override {
    return real_->Delete(r, ns, n, o);
  }
  StatusOr<nlohmann::json> Raw(const std::string& m, const std::string& p, const nlohmann::json& b,
                               const std::string& ct) override {
    return real_->Raw(m, p, b, ct);
  }
  StatusOr<std::string> Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& o,
                              const std::function<bool(const WatchEvent&)>& on_event, CancelToken* cancel) override {
    CancelToken inner;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (partitioned_) return Unavailable("partitioned (test)");
      watch_rvs_.push_back(o.resource_version);
      running_.insert(&inner);
    }
    if (cancel != nullptr) {
      cancel->SetOnCancel([&inner] { inner.Cancel(); });
      if (cancel->cancelled()) inner.Cancel();
    }
    auto res = real_->Watch(r, ns, o, on_event, &inner);
    if (cancel != nullptr) cancel->SetOnCancel(nullptr);
    bool cut;
    {
      std::lock_guard<std::mutex> l(mu_);
      running_.erase(&inner);
      cut = inner.cancelled() && !(cancel != nullptr && cancel->cancelled());
    }
    if (cut) return Unavailable("partitioned (test)");
    return res;
  }

 private:
  KubeClient* real_;
  mutable std::mutex mu_;
  bool partitioned_ = false;
  std::set<CancelToken*> running_;
  std::vector<std::string> watch_rvs_;
  std::vector<ListOptions> list_calls_;
  std::function<void(const ListOptions&)> before_list_;
};

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = AdminClient();
    ASSERT_NE(client_, nullptr);
  }
  std::string Namespace(const std::string& base) {
    std::string ns = base + "-" + std::to_string(counter_++);
    KubeCluster::Get().CreateNamespace(ns);
    return ns;
  }
  nlohmann::json Create(const nlohmann::json& obj) {
    auto r = client_->Create(resources::ConfigMaps(), obj["metadata"]["namespace"], obj);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nlohmann::json();
  }
  void Delete(const std::string& ns, const std::string& name) {
    DeleteOptions o;
    auto s = client_->Delete(resources::ConfigMaps(), ns, name, o);
    EXPECT_TRUE(s.ok()) << s;
  }
  void Patch(const std::string& ns, const std::string& name, const nlohmann::json& patch) {
    auto r = client_->MergePatch(resources::ConfigMaps(), ns, name, patch);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  InformerOptions Options(const std::string& ns) {
    InformerOptions o;
    o.resource = resources::ConfigMaps();
    o.ns = ns;
    o.backoff_initial = 200ms;
    o.backoff_max = 2s;
    return o;
  }

  std::unique_ptr<KubeClient> client_;
  static inline int counter_ = 0;
};

// ---------- against a scripted fake client (no cluster) ----------

// A KubeClient whose List answers from a queue of lists, in pages of the
// request's limit (continue token: the next offset), and whose Watch plays a
// queue of scripted watches; with none left, Watch blocks until cancelled.
class ScriptedClient final : public flowrun::kube::testing::UnimplementedClient {
 public:
  struct ScriptedWatch {
    std::vector<WatchEvent> events;
    StatusOr<std::string> end = std::string();  // result after the events
  };
  struct Call {
    std::string rv;
    std::chrono::seconds timeout;
    std::chrono::steady_clock::time_point at;
  };

  void PushList(std::vector<nlohmann::json> items, const std::string& rv) {
    std::lock_guard<std::mutex> l(mu_);
    lists_.push_back(ObjectList{std::move(items), rv, ""});
  }
  void PushWatch(ScriptedWatch w) {
    std::lock_guard<std::mutex> l(mu_);
    watches_.push_back(std::move(w));
    cv_.notify_all();
  }
  // Every further Watch returns `s` at once.
  void FailWatchesWith(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    fail_ = std::move(s);
    cv_.notify_all();
  }
  std::vector<Call> WatchCalls() const {
    std::lock_guard<std::mutex> l(mu_);
    return calls_;
  }
  int ListCalls() const {
    std::lock_guard<std::mutex> l(mu_);
    return list_calls_;
  }
  std::vector<ListOptions> ListOptionsSeen() const {
    std::lock_guard<std::mutex> l(mu_);
    return list_options_;
  }
  // The next `n` requests with a continue token get the apiserver's 410 Expired.
  void ExpireContinues(int n) {
    std::lock_guard<std::mutex> l(mu_);
    expire_continues_ = n;
  }

  // A request without a continue token starts the next scripted list (the
  // last one is repeated); one with a token pages through the current one.
  StatusOr<ObjectList> List(const ResourceRef&, const std::string&, const ListOptions& o) override {
    std::lock_guard<std::mutex> l(mu_);
    ++list_calls_;
    list_options_.push_back(o);
    size_t from = 0;
    if (o.continue_token.empty()) {
      if (lists_.empty()) return Unavailable("no list scripted");
      current_ = lists_.front();
      if (lists_.size() > 1) lists_.pop_front();
    } else {
      if (expire_continues_ > 0) {
        --expire_continues_;
        return StatusFromResponse(
            410, R"({"kind":"Status","code":410,"reason":"Expired","message":"continue parameter is too old"})", "");
      }
      from = std::stoul(o.continue_token);
    }
    const size_t total = current_.items.size();
    const size_t to = o.limit > 0 ? std::min(total, from + static_cast<size_t>(o.limit)) : total;
    ObjectList page;
    page.resource_version = current_.resource_version;
    for (size_t i = from; i < to; ++i) page.items.push_back(current_.items[i]);
    if (to < total) page.continue_token = std::to_string(to);
    return page;
  }
  StatusOr<std::string> Watch(const ResourceRef&, const std::string&, const WatchOptions& o,
                              const std::function<bool(const WatchEvent&)>& on_event, CancelToken* cancel) override {
    ScriptedWatch w;
    // Installed before taking mu_: Cancel() holds the token's lock while it
    // runs the callback, which takes mu_.
    cancel->SetOnCancel([this] {
      std::lock_guard<std::mutex> l2(mu_);
      cv_.notify_all();
    });
    {
      std::unique_lock<std::mutex> l(mu_);
      calls_.push_back(Call{o.resource_version, o.timeout, std::chrono::steady_clock::now()});
      cv_.wait(l, [&] { return cancel->cancelled() || !watches_.empty() || !fail_.ok(); });
      if (cancel->cancelled()) {
        l.unlock();
        cancel->SetOnCancel(nullptr);
        return Aborted("cancelled");
      }
      if (!fail_.ok()) {
        l.unlock();
        cancel->SetOnCancel(nullptr);
        return fail_;
      }
      w = std::move(watches_.front());
      watches_.pop_front();
    }
    cancel->SetOnCancel(nullptr);
    for (const auto& e : w.events)
      if (!on_event(e)) break;
    return w.end;
  }


 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ObjectList> lists_;
  ObjectList current_;  // the list being paged through
  std::deque<ScriptedWatch> watches_;
  std::vector<Call> calls_;
  int list_calls_ = 0;
  std::vector<ListOptions> list_options_;
  int expire_continues_ = 0;
  Status fail_;
};

nlohmann::json Obj(const std::string& name, const std::string& rv, const std::string& v = "x") {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"resourceVersion", rv},
                        {"managedFields", nlohmann::json::array({{{"manager", "kubectl"}}})}}},
          {"data", {{"v", v}}}};
}

WatchEvent Ev(const std::string& type, nlohmann::json obj) { return WatchEvent{type, std::move(obj)}; }

WatchEvent Bookmark(const std::string& rv) {
  return Ev("BOOKMARK", {{"kind", "ConfigMap"}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", rv}}}});
}

InformerOptions FakeOptions() {
  InformerOptions o;
  o.resource = resources::ConfigMaps();
  o.ns = "ns";
  o.backoff_initial = 50ms;
  o.backoff_max = 400ms;
  return o;
}

TEST(InformerScripted, ResumesFromBookmarksAndEventsWithoutRelisting) {
  ScriptedClient fc;
  fc.PushList({Obj("a", "10")}, "10");
  ScriptedClient::ScriptedWatch w1;
  w1.events = {Ev("ADDED", Obj("b", "11")), Bookmark("15")};
  w1.end = std::string("15");
  fc.PushWatch(w1);
  ScriptedClient::ScriptedWatch w2;
  w2.events = {Ev("MODIFIED", Obj("a", "16", "y")), Ev("DELETED", Obj("b", "17"))};
  w2.end = std::string("17");
  fc.PushWatch(w2);
  Journal j;
  Informer inf(&fc, FakeOptions());
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ASSERT_TRUE(Eventually([&] { return fc.WatchCalls().size() >= 3; }, 5s));
  auto calls = fc.WatchCalls();
  EXPECT_EQ(calls[0].rv, "10");
  EXPECT_EQ(calls[1].rv, "15") << "resumes from the bookmark";
  EXPECT_EQ(calls[2].rv, "17");
  for (const auto& c : calls) {
    EXPECT_GE(c.timeout, 300s);
    EXPECT_LT(c.timeout, 600s);
  }
  EXPECT_EQ(fc.ListCalls(), 1);
  auto st = inf.Stats();
  EXPECT_EQ(st.bookmarks, 1u);
  EXPECT_EQ(st.events, 3u);
  EXPECT_EQ(st.last_resource_version, "17");
  EXPECT_EQ(inf.Keys(), std::vector<std::string>{"ns/a"});
  EXPECT_EQ((*inf.Get("ns/a"))["data"]["v"], "y");
  EXPECT_FALSE((*inf.Get("ns/a"))["metadata"].contains("managedFields"));
  EXPECT_TRUE(j.Has("add ns/b") && j.Has("update ns/a") && j.Has("delete ns/b")) << j.Dump();
}

TEST(InformerScripted, GoneErrorEventRelistsAndSynthesizesDeletes) {
  ScriptedClient fc;
  fc.PushList({Obj("a", "1"), Obj("b", "2")}, "2");
  fc.PushList({Obj("a", "5"), Obj("c", "6")}, "6");
  ScriptedClient::ScriptedWatch gone;
  gone.end = StatusFromWatchError({{"kind", "Status"}, {"code", 410}, {"reason", "Expired"},
                                   {"message", "too old resource version: 2 (5)"}});
  ASSERT_TRUE(IsGone(gone.end.status()));
  fc.PushWatch(gone);
  Journal j;
  auto opts = FakeOptions();
  opts.backoff_initial = 2s;  // so a backoff would show
  opts.backoff_max = 2s;
  Informer inf(&fc, opts);
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(Eventually([&] { return fc.WatchCalls().size() >= 2; }, 5s));
  auto calls = fc.WatchCalls();
  EXPECT_EQ(calls[0].rv, "2");
  EXPECT_EQ(calls[1].rv, "6") << "watch from the new list";
  EXPECT_EQ(fc.ListCalls(), 2);
  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{"ns/a", "ns/c"}));
  EXPECT_TRUE(j.Has("delete? ns/b")) << j.Dump();
  EXPECT_TRUE(j.Has("update ns/a") && j.Has("add ns/c")) << j.Dump();
  auto st = inf.Stats();
  EXPECT_EQ(st.gone, 1u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  // No backoff before a relist after 410.
  EXPECT_LT(calls[1].at - calls[0].at, 1s);
}

TEST(InformerScripted, WatchErrorsBackOffAndRetryFromTheSameResourceVersion) {
  ScriptedClient fc;
  fc.PushList({Obj("a", "1")}, "7");
  fc.FailWatchesWith(Unavailable("connection refused"));
  Informer inf(&fc, FakeOptions());
  inf.Start();
  ASSERT_TRUE(Eventually([&] { return fc.WatchCalls().size() >= 6; }, 10s));
  inf.Stop();
  auto calls = fc.WatchCalls();
  for (const auto& c : calls) EXPECT_EQ(c.rv, "7");
  EXPECT_EQ(fc.ListCalls(), 1) << "plain errors do not relist";
  // 50, 100, 200, 400, 400 ms (+ up to 25% jitter, capped at 400 ms).
  std::vector<double> gaps;
  for (size_t i = 1; i < calls.size(); ++i)
    gaps.push_back(std::chrono::duration<double, std::milli>(calls[i].at - calls[i - 1].at).count());
  EXPECT_GE(gaps[0], 45);
  EXPECT_GE(gaps[1], 95);
  EXPECT_GE(gaps[2], 190);
  EXPECT_GE(gaps[3], 390);
  for (double g : gaps) EXPECT_LT(g, 400 + 150) << "capped at backoff_max";
  EXPECT_GE(inf.Stats().watch_errors, 5u);
}

TEST(InformerScripted, EmptyWatchesThatEndAtOnceBackOff) {
  ScriptedClient fc;
  fc.PushList({}, "3");
  for (int i = 0; i < 100; ++i) fc.PushWatch({});  // each ends at once, OK, no events
  Informer inf(&fc, FakeOptions());
  inf.Start();
  std::this_thread::sleep_for(600ms);
  inf.Stop();
  EXPECT_LT(fc.WatchCalls().size(), 8u) << "no hot loop";
  EXPECT_GE(fc.WatchCalls().size(), 2u);
}

TEST(InformerScripted, HandlersSeeTheUpdatedCacheAndListErrorsRetry) {
  ScriptedClient fc;  // the first List fails (nothing scripted yet)
  Informer* self = nullptr;
  std::atomic<int> consistent{0}, seen{0};
  InformerHandlers h;
  h.on_add = [&](const ObjectPtr& o) {
    ++seen;
    if (self->Get(ObjectKey(*o)) == o) ++consistent;
  };
  Informer inf(&fc, FakeOptions());
  self = &inf;
  inf.AddEventHandler(h);
  inf.Start();
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(inf.HasSynced());
  EXPECT_GE(inf.Stats().list_errors, 1u);
  fc.PushList({Obj("a", "1"), Obj("b", "2")}, "2");
  ASSERT_TRUE(inf.WaitForSync(5s));
  EXPECT_EQ(seen.load(), 2);
  EXPECT_EQ(consistent.load(), 2);
}

// The cache keeps objects packed and materializes snapshots: a snapshot
// somebody holds is shared by every read; once nobody holds it, a read
// decodes a fresh one equal to what was cached (numbers keep their types).
TEST(InformerScripted, PackedCacheSharesHeldSnapshotsAndRoundTrips) {
  ScriptedClient fc;
  auto a = Obj("a", "1");
  a["metadata"]["labels"] = {{"tier", "web"}};
  a["data"]["n"] = nlohmann::json::parse("42");  // as parsed from a response: unsigned
  a["data"]["neg"] = -7;
  a["data"]["f"] = 0.1;
  a["data"]["big"] = 18446744073709551615ULL;
  a["data"]["list"] = {true, nullptr, "s", {{"k", 1.5}}};
  a["data"]["long"] = std::string(300, 'x');
  fc.PushList({a, Obj("b", "2")}, "2");
  ScriptedClient::ScriptedWatch w;
  auto a2 = a;
  a2["metadata"]["resourceVersion"] = "3";
  a2["metadata"]["labels"]["tier"] = "db";
  w.events = {Ev("MODIFIED", a2)};
  w.end = std::string("3");
  fc.PushWatch(w);
  Journal j;
  std::mutex mu;
  std::vector<std::pair<ObjectPtr, ObjectPtr>> updates;  // held by the test
  InformerHandlers h;
  h.on_update = [&](const ObjectPtr& o, const ObjectPtr& n) {
    std::lock_guard<std::mutex> l(mu);
    updates.emplace_back(o, n);
  };
  Informer inf(&fc, FakeOptions());
  inf.AddIndex("tier", IndexByLabel("tier"));
  inf.AddEventHandler(j.Handlers());
  inf.AddEventHandler(h);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> l(mu);
    return updates.size() == 1;
  }, 5s));

  auto expected = a2;
  expected["metadata"].erase("managedFields");
  ObjectPtr held = inf.Get("ns/a");
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(*held, expected) << held->dump();
  EXPECT_TRUE((*held)["data"]["n"].is_number_unsigned());
  EXPECT_TRUE((*held)["data"]["neg"].is_number_integer());
  EXPECT_EQ((*held)["data"]["f"].get<double>(), 0.1);
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(updates[0].second, held) << "the handler's snapshot is still held: shared";
    EXPECT_EQ((*updates[0].first)["metadata"]["resourceVersion"], "1") << "old state";
    EXPECT_EQ((*updates[0].first)["metadata"]["labels"]["tier"], "web");
    updates.clear();
  }
  EXPECT_EQ(inf.Get("ns/a"), held) << "held: every read shares it";
  EXPECT_EQ(inf.List().size(), 2u);
  std::weak_ptr<const nlohmann::json> weak = held;
  held.reset();
  EXPECT_TRUE(weak.expired()) << "the cache does not keep snapshots alive";
  ObjectPtr again = inf.Get("ns/a");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(*again, expected) << "a fresh snapshot, equal to the cached object";
  // Index entries follow the update (filed values are kept, not re-derived).
  ASSERT_EQ(inf.ByIndex("tier", "db").size(), 1u);
  EXPECT_EQ(inf.ByIndex("tier", "db")[0], again);
  EXPECT_TRUE(inf.ByIndex("tier", "web").empty());
  // Concurrent readers of an unheld object agree on the content.
  std::vector<std::thread> readers;
  std::atomic<int> equal{0};
  again.reset();
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto o = inf.Get("ns/a");
        if (o && *o == expected) ++equal;
      }
    });
  for (auto& t : readers) t.join();
  EXPECT_EQ(equal.load(), 800);
}

// A paged list is applied page by page; the deletes wait for the last page.
// An expired continue token restarts the list at once; a second one in a row
// is a failed list (backed off), and the list after it completes.
TEST(InformerScripted, PagedListAppliesPagesAndRestartsOnExpiredContinue) {
  ScriptedClient fc;
  fc.PushList({Obj("a", "1"), Obj("b", "2"), Obj("c", "3"), Obj("d", "4"), Obj("e", "5")}, "5");
  // Meanwhile b was deleted and f created.
  fc.PushList({Obj("a", "1"), Obj("c", "3"), Obj("d", "4"), Obj("e", "5"), Obj("f", "8")}, "9");
  fc.ExpireContinues(2);
  Journal j;
  Informer* self = nullptr;
  std::atomic<int> synced_during_adds{0};
  InformerHandlers h;
  h.on_add = [&](const ObjectPtr&) { synced_during_adds += self->HasSynced(); };
  auto opts = FakeOptions();
  opts.page_size = 2;
  Informer inf(&fc, opts);
  self = &inf;
  inf.AddEventHandler(j.Handlers());
  inf.AddEventHandler(h);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));

  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{"ns/a", "ns/c", "ns/d", "ns/e", "ns/f"}));
  EXPECT_TRUE(j.Has("add ns/b")) << "the first page was applied before the second was asked for\n" << j.Dump();
  EXPECT_EQ(j.Count("delete? ns/b"), 1) << j.Dump();
  EXPECT_EQ(synced_during_adds.load(), 0) << "synced only after the last page";
  auto st = inf.Stats();
  EXPECT_EQ(st.list_restarts, 1u);
  EXPECT_EQ(st.list_errors, 1u) << "the second expiry in a row fails the list";
  EXPECT_EQ(st.lists, 1u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  EXPECT_EQ(st.last_resource_version, "9");
  // a,b | expired -> restart: a,c | expired -> error, back-off; a,c | d,e | f
  std::vector<std::string> tokens;
  for (const auto& o : fc.ListOptionsSeen()) {
    EXPECT_EQ(o.limit, 2);
    tokens.push_back(o.continue_token);
  }
  EXPECT_EQ(tokens, (std::vector<std::string>{"", "2", "", "2", "", "2", "4"}));
  ASSERT_FALSE(fc.WatchCalls().empty());
  EXPECT_EQ(fc.WatchCalls()[0].rv, "9") << "the watch starts at the list's resourceVersion";
}

// ---------- against the real control plane ----------

TEST_F(InformerTest, SyncsAndDeliversEventsForConfigMaps) {
  std::string ns = Namespace("inf-sync");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Create(ConfigMap(ns, "c"));

  Journal j;
  auto opts = Options(ns);
  opts.transform = [](nlohmann::json& o) { o["data"].erase("drop-me"); };
  Informer inf(client_.get(), opts);
  inf.AddEventHandler(j.Handlers());
  EXPECT_FALSE(inf.HasSynced());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s)) << inf.Stats().last_error;
  EXPECT_EQ(inf.Size(), 3u);
  EXPECT_TRUE(j.Has("add " + ns + "/a") && j.Has("add " + ns + "/b") && j.Has("add " + ns + "/c")) << j.Dump();
  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{ns + "/a", ns + "/b", ns + "/c"}));
  auto a = inf.Get(ns, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["data"]["k"], "v");
  EXPECT_FALSE((*a)["metadata"].contains("managedFields")) << "managedFields must be stripped";

  Create(ConfigMap(ns, "d", {{"k", "1"}, {"drop-me", "x"}}));
  ASSERT_TRUE(Eventually([&] { return j.Has("add " + ns + "/d"); })) << j.Dump();
  auto d = inf.Get(ns + "/d");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE((*d)["data"].contains("drop-me")) << "transform hook applied";

  Patch(ns, "a", {{"data", {{"k", "changed"}}}});
  ASSERT_TRUE(Eventually([&] {
    auto o = inf.Get(ns, "a");
    return o && (*o)["data"]["k"] == "changed";
  }));
  EXPECT_TRUE(j.Has("update " + ns + "/a"));
  EXPECT_EQ((*a)["data"]["k"], "v") << "an old snapshot never changes";

  Delete(ns, "b");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/b"); })) << j.Dump();
  EXPECT_EQ(inf.Get(ns, "b"), nullptr);
  EXPECT_EQ(inf.Size(), 3u);
  inf.Stop();
  EXPECT_EQ(inf.Stats().lists, 1u);
  EXPECT_EQ(inf.Stats().gone, 0u);
}

TEST_F(InformerTest, IndexesByOwnerUidAndLabel) {
  std::string ns = Namespace("inf-index");
  auto owner = Create(ConfigMap(ns, "owner"));
  std::string uid = owner["metadata"]["uid"];
  auto child = [&](const std::string& name, const std::string& tier) {
    auto cm = ConfigMap(ns, name, {{"k", "v"}}, {{"tier", tier}});
    cm["metadata"]["ownerReferences"] = {
        {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner"}, {"uid", uid}}};
    return cm;
  };
  Create(child("c1", "web"));
  Create(child("c2", "db"));
  Create(ConfigMap(ns, "orphan", {{"k", "v"}}, {{"tier", "web"}}));

  Informer inf(client_.get(), Options(ns));
  inf.AddIndex("owner", IndexByOwnerUid());
  inf.AddIndex("tier", IndexByLabel("tier"));
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  auto names = [](const std::vector<ObjectPtr>& v) {
    std::set<std::string> s;
    for (const auto& o : v) s.insert((*o)["metadata"]["name"].get<std::string>());
    return s;
  };
  EXPECT_EQ(names(inf.ByIndex("owner", uid)), (std::set<std::string>{"c1", "c2"}));
  EXPECT_EQ(names(inf.ByIndex("tier", "web")), (std::set<std::string>{"c1", "orphan"}));
  EXPECT_TRUE(inf.ByIndex("owner", "no-such-uid").empty());
  EXPECT_TRUE(inf.ByIndex("no-such-index", "x").empty());

  // Index entries follow updates and deletes.
  Create(child("c3", "web"));
  Patch(ns, "c1", {{"metadata", {{"labels", {{"tier", "db"}}}}}});
  Delete(ns, "c2");
  ASSERT_TRUE(Eventually([&] {
    return names(inf.ByIndex("owner", uid)) == std::set<std::string>{"c1", "c3"} &&
           names(inf.ByIndex("tier", "web")) == std::set<std::string>{"c3", "orphan"};
  })) << "owner: " << inf.ByIndex("owner", uid).size();
  EXPECT_EQ(names(inf.ByIndex("tier", "db")), (std::set<std::string>{"c1"}));
}

// The watch resumes from the last resourceVersion when the server ends it
// (timeoutSeconds), without relisting.
TEST_F(InformerTest, ResumesFromLastResourceVersionAcrossWatchTimeouts) {
  std::string ns = Namespace("inf-resume");
  PartitionableClient pc(client_.get());
  Journal j;
  auto opts = Options(ns);
  opts.min_watch_timeout = 1s;
  opts.max_watch_timeout = 2s;
  Informer inf(&pc, opts);
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  for (int i = 0; i < 3; ++i) {
    Create(ConfigMap(ns, "r" + std::to_string(i)));
    std::this_thread::sleep_for(1500ms);
  }
  ASSERT_TRUE(Eventually([&] { return inf.Size() == 3; }));
  ASSERT_TRUE(Eventually([&] { return inf.Stats().watches >= 4; }, 20s));
  auto rvs = pc.WatchResourceVersions();
  EXPECT_EQ(inf.Stats().lists, 1u) << "no relist";
  // Every watch started from a non-empty resourceVersion, and they advanced.
  for (const auto& rv : rvs) EXPECT_FALSE(rv.empty());
  EXPECT_GE(std::set<std::string>(rvs.begin(), rvs.end()).size(), 3u);
  EXPECT_EQ(j.Count("add " + ns + "/r0"), 1) << j.Dump();
}

// Deletes while the watch is down, then a resume from a compacted
// resourceVersion: 410 Gone -> relist -> synthesized deletes.
TEST_F(InformerTest, RelistAfterGoneSynthesizesDeletes) {
  std::string ns = Namespace("inf-gone");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Create(ConfigMap(ns, "c"));
  PartitionableClient pc(client_.get());
  Journal j;
  Informer inf(&pc, Options(ns));
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  ASSERT_TRUE(Eventually([&] { return inf.Stats().watches >= 1; }));

  pc.Partition();
  Delete(ns, "b");
  Patch(ns, "c", {{"data", {{"k", "new"}}}});
  Create(ConfigMap(ns, "d"));
  // Let the apiserver compact etcd past the informer's resourceVersion
  // (--etcd-compaction-interval=2s; a compaction keeps one interval back).
  std::this_thread::sleep_for(7s);
  EXPECT_TRUE(inf.Get(ns, "b") != nullptr) << "still cached while partitioned";
  pc.Heal();

  ASSERT_TRUE(Eventually([&] { return j.Has("delete? " + ns + "/b"); })) << j.Dump() << inf.Stats().last_error;
  ASSERT_TRUE(Eventually([&] { return inf.Get(ns, "d") != nullptr; }));
  auto c = inf.Get(ns, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["data"]["k"], "new");
  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{ns + "/a", ns + "/c", ns + "/d"}));
  auto st = inf.Stats();
  EXPECT_GE(st.gone, 1u) << st.last_error;
  EXPECT_GE(st.lists, 2u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  EXPECT_FALSE(j.Has("delete " + ns + "/b")) << "the delete was not observed, only inferred";

  // And the informer keeps watching after the relist.
  Delete(ns, "a");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/a"); })) << j.Dump();
}

TEST_F(InformerTest, WatchSurvivesApiserverRestartAndConverges) {
  std::string ns = Namespace("inf-restart");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Journal j;
  Informer inf(client_.get(), Options(ns));
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));

  KubeCluster::Get().RestartApiserver();
  // The first request after the restart may hit a pooled connection the old
  // apiserver closed; a POST is not retried by the client, so retry here.
  ASSERT_TRUE(Eventually([&] {
    auto r = client_->Create(resources::ConfigMaps(), ns, ConfigMap(ns, "c"));
    return r.ok() || IsAlreadyExists(r.status());
  }, 20s));
  Delete(ns, "a");
  Patch(ns, "b", {{"data", {{"k", "after-restart"}}}});

  ASSERT_TRUE(Eventually([&] {
    auto b = inf.Get(ns, "b");
    return inf.Keys() == std::vector<std::string>{ns + "/b", ns + "/c"} && b && (*b)["data"]["k"] == "after-restart";
  }, 60s)) << j.Dump() << inf.Stats().last_error;
  auto st = inf.Stats();
  EXPECT_GE(st.watches, 2u) << "the first watch ended with the apiserver";
  EXPECT_TRUE(j.Has("delete " + ns + "/a") || j.Has("delete? " + ns + "/a")) << j.Dump();

  // Still live afterwards.
  Create(ConfigMap(ns, "e"));
  ASSERT_TRUE(Eventually([&] { return inf.Get(ns, "e") != nullptr; }));
}

// A list of 25 objects in pages of 4: each page is in the cache before the
// next is requested. While the second page is held back, an object of the
// first page is deleted, another changed and a new one created, and etcd
// compacts past the list's snapshot: the apiserver answers the continue
// token with a real 410 Expired, the informer lists again from scratch and
// converges, with a synthesized delete for the object the first list showed.
TEST_F(InformerTest, PagedListRestartsAfterExpiredContinueAndConverges) {
  std::string ns = Namespace("inf-pages");
  std::vector<std::string> want;
  for (int i = 0; i < 25; ++i) {
    std::string name = std::string("cm-") + (i < 10 ? "0" : "") + std::to_string(i);
    Create(ConfigMap(ns, name));
    if (i != 0) want.push_back(ns + "/" + name);
  }
  want.push_back(ns + "/cm-new");
  std::sort(want.begin(), want.end());

  PartitionableClient pc(client_.get());
  Journal j;
  auto opts = Options(ns);
  opts.page_size = 4;
  Informer inf(&pc, opts);
  bool held_back = false;
  size_t cached_before_page_2 = 0;
  bool expired = false;
  pc.BeforeList([&](const ListOptions& o) {
    if (o.continue_token.empty() || held_back) return;
    held_back = true;
    cached_before_page_2 = inf.Size();
    Delete(ns, "cm-00");
    Patch(ns, "cm-10", {{"data", {{"k", "changed"}}}});
    Create(ConfigMap(ns, "cm-new"));
    // Wait until etcd compacted past the snapshot (--etcd-compaction-interval=2s).
    expired = Eventually([&] { return IsGone(client_->List(resources::ConfigMaps(), ns, o).status()); }, 60s);
  });
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(120s)) << inf.Stats().last_error;
  ASSERT_TRUE(expired) << "the continue token never expired";

  EXPECT_EQ(cached_before_page_2, 4u) << "the first page is cached before the second is requested";
  EXPECT_EQ(inf.Keys(), want);
  auto c10 = inf.Get(ns, "cm-10");
  ASSERT_NE(c10, nullptr);
  EXPECT_EQ((*c10)["data"]["k"], "changed");
  EXPECT_EQ(j.Count("delete? " + ns + "/cm-00"), 1) << j.Dump();
  auto st = inf.Stats();
  EXPECT_EQ(st.list_restarts, 1u) << st.last_error;
  EXPECT_EQ(st.list_errors, 0u) << st.last_error;
  EXPECT_EQ(st.lists, 1u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  // 1 page + the expired request, then 25 objects in 7 pages of 4.
  auto calls = pc.ListCalls();
  EXPECT_EQ(calls.size(), 9u);
  for (const auto& o : calls) EXPECT_EQ(o.limit, 4);

  // And the informer watches from the second list's resourceVersion.
  Delete(ns, "cm-01");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/cm-01"); })) << j.Dump();
}

// The informer's lists drop metadata.managedFields while parsing: only
// there, not a same-named key elsewhere, and only when asked.
TEST_F(InformerTest, ListCanDropManagedFieldsWhileParsing) {
  std::string ns = Namespace("inf-mf");
  Create(ConfigMap(ns, "a", {{"managedFields", "data, kept"}}, {{"metadata", "kept"}}));
  Create(ConfigMap(ns, "b"));
  ListOptions o;
  auto full = client_->List(resources::ConfigMaps(), ns, o);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->items.size(), 2u);
  ASSERT_TRUE(full->items[0]["metadata"].contains("managedFields")) << "the apiserver sends them";
  o.drop_managed_fields = true;
  o.limit = 1;
  auto page = client_->List(resources::ConfigMaps(), ns, o);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_FALSE(page->continue_token.empty());
  EXPECT_FALSE(page->resource_version.empty());
  auto expected = full->items[0];
  expected["metadata"].erase("managedFields");
  EXPECT_EQ(page->items[0], expected) << page->items[0].dump();
  EXPECT_EQ(page->items[0]["data"]["managedFields"], "data, kept");
  EXPECT_EQ(page->items[0]["metadata"]["labels"]["metadata"], "kept");
}

TEST_F(InformerTest, StopIsPromptAndIdempotent) {
  std::string ns = Namespace("inf-stop");
  Informer inf(client_.get(), Options(ns));
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  auto t0 = std::chrono::steady_clock::now();
  inf.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  inf.Stop();
  EXPECT_TRUE(inf.HasSynced());
}

}  // namespace
}  // namespace flowrun::kube

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Read by KubeCluster when it starts the cluster (cluster.sh).
  setenv("FLOWRUN_ETCD_COMPACTION_INTERVAL", "2s", 1);
  setenv("FLOWRUN_APISERVER_ARGS", "--watch-cache=false", 1);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::KubeClusterEnvironment);
  return RUN_ALL_TESTS();
}
