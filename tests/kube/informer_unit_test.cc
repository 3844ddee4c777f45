// Informer unit tests: against a scripted fake client and a fake clock, no
// cluster (label kube-unit). The cluster half is informer_cluster_test.cc.
#include "flowrun/kube/informer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flowrun/kube/errors.h"
#include "flowrun/kube/list_watch_step.h"
#include "kube/informer_journal.h"
#include "kube/unimplemented_client.h"
#include "support/eventually.h"
#include "support/fake_clock.h"

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using flowrun::kube::testing::Journal;
using flowrun::testing::Eventually;
using flowrun::testing::FakeClock;


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
  // The next `times` Watch calls return `s` at once (-1: every further one);
  // then watches play the script again (none left: block until cancelled).
  void FailWatchesWith(Status s, int times = -1) {
    std::lock_guard<std::mutex> l(mu_);
    fail_ = std::move(s);
    fail_left_ = times;
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
        Status s = fail_;
        if (fail_left_ > 0 && --fail_left_ == 0) fail_ = Status::Ok();
        l.unlock();
        cancel->SetOnCancel(nullptr);
        return s;
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
  int fail_left_ = -1;
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
  FakeClock clock;
  opts.clock = &clock;
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
  EXPECT_TRUE(clock.Sleeps().empty()) << "no backoff before a relist after 410";
}

// The retry gaps are the informer's own sleeps on its clock: asserted
// exactly, with the jitter fixed, whatever the machine's load.
TEST(InformerScripted, WatchErrorsBackOffAndRetryFromTheSameResourceVersion) {
  ScriptedClient fc;
  fc.PushList({Obj("a", "1")}, "7");
  fc.FailWatchesWith(Unavailable("connection refused"), 6);
  FakeClock clock;
  auto opts = FakeOptions();
  opts.clock = &clock;
  opts.random = [] { return 0.5; };  // +12.5% jitter
  Informer inf(&fc, opts);
  inf.Start();
  // 6 failures, then a 7th watch that stays open.
  ASSERT_TRUE(Eventually([&] { return fc.WatchCalls().size() >= 7; }, 10s));
  inf.Stop();
  auto calls = fc.WatchCalls();
  for (const auto& c : calls) EXPECT_EQ(c.rv, "7");
  EXPECT_EQ(fc.ListCalls(), 1) << "plain errors do not relist";
  // 50, 100, 200, 400, 400, 400 ms, each +12.5% (whole ms), capped at backoff_max.
  std::vector<std::chrono::nanoseconds> want = {56ms, 112ms, 225ms, 400ms, 400ms, 400ms};
  EXPECT_EQ(clock.Sleeps(), want);
  EXPECT_EQ(inf.Stats().watch_errors, 6u);
}

// A watch that ends at once without events is a failing server: every one
// is followed by a backoff (so no hot loop), doubling up to the cap.
TEST(InformerScripted, EmptyWatchesThatEndAtOnceBackOff) {
  ScriptedClient fc;
  fc.PushList({}, "3");
  for (int i = 0; i < 6; ++i) fc.PushWatch({});  // each ends at once, OK, no events
  FakeClock clock;
  auto opts = FakeOptions();
  opts.clock = &clock;
  opts.random = [] { return 0.0; };
  Informer inf(&fc, opts);
  inf.Start();
  ASSERT_TRUE(Eventually([&] { return fc.WatchCalls().size() >= 7; }, 10s));  // the 7th blocks
  inf.Stop();
  std::vector<std::chrono::nanoseconds> want = {50ms, 100ms, 200ms, 400ms, 400ms, 400ms};
  EXPECT_EQ(clock.Sleeps(), want);
  EXPECT_EQ(inf.Stats().watch_errors, 6u) << "each very short watch counts as an error";
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
  ASSERT_TRUE(Eventually([&] { return inf.Stats().list_errors >= 1; }, 10s));
  EXPECT_FALSE(inf.HasSynced());
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
  // The watch starts after the sync, on the informer's thread: wait for it.
  ASSERT_TRUE(Eventually([&] { return !fc.WatchCalls().empty(); }, 5s));
  EXPECT_EQ(fc.WatchCalls()[0].rv, "9") << "the watch starts at the list's resourceVersion";
}

// ---------- NextStep: the list/watch state machine as a table ----------

ListWatchResult Result(ListWatchResult::Kind kind, std::string rv = "", uint64_t events = 0,
                       std::chrono::milliseconds elapsed = 0ms, Status status = Status::Ok()) {
  ListWatchResult r;
  r.kind = kind;
  r.resource_version = std::move(rv);
  r.events = events;
  r.elapsed = elapsed;
  r.status = std::move(status);
  return r;
}

TEST(ListWatchStep, Transitions) {
  using R = ListWatchResult::Kind;
  using S = ListWatchStep::Kind;
  const Status gone = StatusFromWatchError({{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}, {"message", "old"}});
  const Status down = Unavailable("connection refused");
  struct Row {
    const char* what;
    ListWatchState before;
    ListWatchResult result;
    S kind;
    std::string rv;                   // kWatch: from where
    std::chrono::milliseconds delay;  // kBackoff
    bool listed_after;
    std::chrono::milliseconds backoff_after;
  };
  const ListWatchState fresh;
  const ListWatchState watching{true, "10", 0ms};
  const ListWatchState backing_off{true, "10", 400ms};
  const std::vector<Row> rows = {
      {"start lists", fresh, Result(R::kStarted), S::kList, "", 0ms, false, 0ms},
      {"a list watches from its rv", fresh, Result(R::kListed, "7"), S::kWatch, "7", 0ms, true, 0ms},
      {"a failed list backs off", fresh, Result(R::kListFailed, "", 0, 0ms, down), S::kBackoff, "", 100ms, false, 100ms},
      {"after a failed list's backoff: list", fresh, Result(R::kSlept), S::kList, "", 0ms, false, 0ms},
      {"a watch that ran resumes from its last rv", watching, Result(R::kWatchEnded, "15", 0, 2000ms), S::kWatch, "15", 0ms, true, 0ms},
      {"a watch with events resets the backoff", backing_off, Result(R::kWatchEnded, "16", 3, 10ms), S::kWatch, "16", 0ms, true, 0ms},
      {"a very short empty watch backs off", watching, Result(R::kWatchEnded, "", 0, 999ms), S::kBackoff, "", 100ms, true, 100ms},
      {"the backoff doubles", backing_off, Result(R::kWatchEnded, "", 0, 10ms), S::kBackoff, "", 800ms, true, 800ms},
      {"410 relists at once", backing_off, Result(R::kWatchFailed, "", 0, 0ms, gone), S::kList, "", 0ms, false, 400ms},
      {"other errors back off, keeping the rv", watching, Result(R::kWatchFailed, "", 0, 0ms, down), S::kBackoff, "", 100ms, true, 100ms},
      {"events before an error reset the backoff", backing_off, Result(R::kWatchFailed, "12", 2, 0ms, down), S::kBackoff, "", 100ms, true, 100ms},
      {"after a watch's backoff: watch from the rv", watching, Result(R::kSlept), S::kWatch, "10", 0ms, true, 0ms},
      {"the backoff is capped", ListWatchState{true, "10", 800ms}, Result(R::kWatchFailed, "", 0, 0ms, down), S::kBackoff, "", 1000ms, true, 1000ms},
  };
  const ListWatchBackoff policy{100ms, 1000ms};
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    ListWatchState st = row.before;
    ListWatchStep step = NextStep(st, row.result, policy, 0.0);
    EXPECT_EQ(step.kind, row.kind);
    if (row.kind == S::kWatch) EXPECT_EQ(step.resource_version, row.rv);
    if (row.kind == S::kBackoff) EXPECT_EQ(step.delay, row.delay);
    EXPECT_EQ(st.listed, row.listed_after);
    EXPECT_EQ(st.backoff, row.backoff_after);
  }
}

TEST(ListWatchStep, JitterAddsUpToAQuarterAndStaysCapped) {
  const ListWatchBackoff policy{100ms, 1000ms};
  ListWatchResult failed;
  failed.kind = ListWatchResult::Kind::kListFailed;
  failed.status = Unavailable("x");
  ListWatchState st;
  EXPECT_EQ(NextStep(st, failed, policy, 0.999).delay, 124ms);
  st.backoff = 900ms;  // doubles to the 1 s cap; jitter cannot exceed it
  EXPECT_EQ(NextStep(st, failed, policy, 0.999).delay, 1000ms);
  EXPECT_TRUE(NextStep(st, failed, policy, 0.0).short_watch == false);
}

}  // namespace
}  // namespace flowrun::kube
