// WorkQueue and rate limiters: pure tests (no cluster), label kube-unit.
// Also built with -fsanitize=thread as kube_workqueue_tsan_test.
// Time: delays and backoff run on a FakeClock (tests/support/fake_clock.h)
// through WorkQueueOptions::clock; a test that must block a real thread waits
// for a positive signal (the queue's own state), never a sleep.
#include "flowrun/kube/workqueue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/eventually.h"
#include "support/fake_clock.h"

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::flowrun::testing::Eventually;
using ::flowrun::testing::FakeClock;

WorkQueueOptions NoLimit(Clock* clock = nullptr) {
  WorkQueueOptions o;
  o.clock = clock;
  o.rate_limiter = std::make_unique<ItemExponentialFailureRateLimiter>(1ms, 1s);
  return o;
}

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  WorkQueue q(NoLimit());
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  auto k1 = q.Get();
  auto k2 = q.Get();
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(*k1, "a");  // FIFO
  EXPECT_EQ(*k2, "b");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_FALSE(q.GetFor(20ms).has_value());
  q.Done("a");
  q.Done("b");
  EXPECT_EQ(q.Stats().adds_total, 2u);
}

TEST(WorkQueue, AddWhileProcessingRequeuesAfterDone) {
  WorkQueue q(NoLimit());
  q.Add("a");
  auto k = q.Get();
  ASSERT_EQ(*k, "a");
  q.Add("a");
  q.Add("a");
  EXPECT_EQ(q.Len(), 0u) << "a key being processed must not be handed to another worker";
  EXPECT_FALSE(q.GetFor(20ms).has_value());
  EXPECT_EQ(q.Stats().processing, 1);
  q.Done("a");
  EXPECT_EQ(q.Len(), 1u);
  auto again = q.GetFor(1s);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, "a");
  q.Done("a");
  EXPECT_EQ(q.Len(), 0u);
  // Done without Get is ignored.
  q.Done("zzz");
  EXPECT_EQ(q.Len(), 0u);
}

// 8 producers x 10k adds over 50 keys, 8 workers: a key is never held by two
// workers at once, and every add is followed by a processing of that key.
TEST(WorkQueue, StressNoConcurrentProcessingOfOneKey) {
  constexpr int kProducers = 8, kWorkers = 8, kAddsEach = 10000, kKeys = 50;
  WorkQueue q(NoLimit());
  std::vector<std::atomic<int>> in_flight(kKeys);
  std::vector<std::atomic<int64_t>> add_seq(kKeys);      // bumped before each Add
  std::vector<std::atomic<int64_t>> seen_seq(kKeys);     // add_seq read at processing start
  std::atomic<int64_t> violations{0}, processed{0};
  for (int i = 0; i < kKeys; ++i) {
    in_flight[i] = 0;
    add_seq[i] = 0;
    seen_seq[i] = -1;
  }

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        int i = std::stoi(*key);
        if (in_flight[i].fetch_add(1) != 0) violations.fetch_add(1);
        int64_t s = add_seq[i].load();
        int64_t prev = seen_seq[i].load();
        while (s > prev && !seen_seq[i].compare_exchange_weak(prev, s)) {
        }
        if ((processed.fetch_add(1) & 7) == 0) std::this_thread::yield();
        in_flight[i].fetch_sub(1);
        q.Done(*key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int n = 0; n < kAddsEach; ++n) {
        int i = (n * 7 + p) % kKeys;
        add_seq[i].fetch_add(1);
        q.Add(std::to_string(i));
      }
    });
  }
  for (auto& t : producers) t.join();
  // Wait until everything added has been processed.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    auto s = q.Stats();
    if (s.depth == 0 && s.processing == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(1ms);
  }
  q.ShutDown();
  for (auto& t : workers) t.join();

  EXPECT_EQ(violations.load(), 0);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(seen_seq[i].load(), add_seq[i].load()) << "key " << i << " lost its last add";
  }
  // At least once per key; how many adds collapse into one processing depends
  // on how the scheduler interleaves producers and workers (all of them, when
  // the workers only run after the producers finished: exactly kKeys).
  EXPECT_GE(processed.load(), kKeys);
  EXPECT_LE(processed.load(), int64_t{kProducers} * kAddsEach);
}

TEST(WorkQueue, AddAfterOrdersByDueTimeOnFakeClock) {
  FakeClock clock;
  WorkQueue q(NoLimit(&clock));
  q.AddAfter("c", 30ms);
  q.AddAfter("a", 10ms);
  q.AddAfter("b", 20ms);
  q.AddAfter("b", 25ms);  // later due time: the earlier one stays
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Stats().delayed, 3);
  clock.Advance(15ms);
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "a");
  clock.Advance(5ms);
  EXPECT_EQ(*q.Get(), "b");
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(9ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  EXPECT_EQ(*q.Get(), "c");
  // An earlier AddAfter for a waiting key moves it forward.
  q.AddAfter("d", 1h);
  q.AddAfter("d", 1ms);
  clock.Advance(1ms);
  EXPECT_EQ(*q.Get(), "d");
  // Zero delay is a plain Add.
  q.AddAfter("e", 0ms);
  EXPECT_EQ(q.Len(), 1u);
  // A due key that is being processed waits for Done like any add.
  q.AddAfter("a", 1ms);
  clock.Advance(1ms);
  EXPECT_EQ(*q.Get(), "e");
  EXPECT_EQ(q.Len(), 0u) << "a is still processing";
  q.Done("a");
  EXPECT_EQ(*q.Get(), "a");
}

// A blocked Get() wakes at the key's due time, not at the queue's 1 s
// re-check (kMaxWait in workqueue.cc). Only elapsed time can tell the two
// apart, so the fact asserted is about the fastest of five tries: a loaded
// machine may delay one wake-up, it does not delay all five by most of a
// second, while a queue that ignored the due time would take >= 1 s every time.
TEST(WorkQueue, BlockedGetWakesForDelayedKeyOnRealClock) {
  WorkQueue q(NoLimit());
  auto fastest = std::chrono::steady_clock::duration::max();
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    q.AddAfter("x", 50ms);
    auto k = q.GetFor(30s);
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(*k, "x");
    EXPECT_GE(took, 50ms) << "handed out before it was due";
    fastest = std::min(fastest, took);
    q.Done(*k);
  }
  EXPECT_LT(fastest, 900ms) << "the blocked Get() waited for the periodic re-check, not the due time";
}

TEST(WorkQueue, BlockedGetWakesWhenFakeClockMovesAndQueueIsPoked) {
  FakeClock clock;
  WorkQueue q(NoLimit(&clock));
  q.AddAfter("x", 1h);
  auto got = std::async(std::launch::async, [&] { return q.GetFor(30s); });
  // Whether or not the getter blocked already, it must get "x" once the clock
  // moved and the queue was poked (a getter that comes later finds it due).
  clock.Advance(1h);
  q.Len();  // any call promotes due keys and wakes a waiter
  auto k = got.get();
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(*k, "x");
}

TEST(RateLimiter, ItemExponentialGrowsCapsAndForgets) {
  ItemExponentialFailureRateLimiter rl(5ms, 1000s);
  EXPECT_EQ(rl.When("a"), 5ms);
  EXPECT_EQ(rl.When("a"), 10ms);
  EXPECT_EQ(rl.When("a"), 20ms);
  EXPECT_EQ(rl.When("a"), 40ms);
  EXPECT_EQ(rl.NumRequeues("a"), 4);
  EXPECT_EQ(rl.When("b"), 5ms) << "keys back off independently";
  for (int i = 0; i < 100; ++i) (void)rl.When("a");
  EXPECT_EQ(rl.When("a"), nanoseconds(1000s)) << "capped, no overflow";
  rl.Forget("a");
  EXPECT_EQ(rl.NumRequeues("a"), 0);
  EXPECT_EQ(rl.When("a"), 5ms);
}

TEST(RateLimiter, BucketAllowsBurstThenQps) {
  FakeClock clock;
  BucketRateLimiter rl(10, 100, &clock);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rl.When("k" + std::to_string(i)), 0ns) << i;
  EXPECT_EQ(rl.When("x"), 100ms);
  EXPECT_EQ(rl.When("y"), 200ms);
  clock.Advance(1s);  // 10 tokens back; 2 were already reserved
  for (int i = 0; i < 8; ++i) ASSERT_EQ(rl.When("z"), 0ns) << i;
  EXPECT_EQ(rl.When("z"), 100ms);
}

TEST(RateLimiter, DefaultIsMaxOfPerItemAndGlobal) {
  FakeClock clock;
  auto rl = DefaultControllerRateLimiter(&clock);
  EXPECT_EQ(rl->When("a"), 5ms);
  EXPECT_EQ(rl->When("a"), 10ms);
  for (int i = 0; i < 98; ++i) (void)rl->When("k" + std::to_string(i));
  // The bucket (burst 100) is empty now: the global limit dominates.
  EXPECT_EQ(rl->When("fresh"), 100ms);
  EXPECT_EQ(rl->NumRequeues("a"), 2);
  rl->Forget("a");
  EXPECT_EQ(rl->NumRequeues("a"), 0);
}

TEST(WorkQueue, AddRateLimitedBacksOffAndForgetResets) {
  FakeClock clock;
  WorkQueueOptions o;
  o.clock = &clock;  // default limiter on the fake clock
  WorkQueue q(std::move(o));
  q.AddRateLimited("a");  // 5 ms
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(5ms);
  ASSERT_EQ(*q.Get(), "a");
  q.Done("a");
  q.AddRateLimited("a");  // 10 ms
  clock.Advance(9ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  ASSERT_EQ(*q.Get(), "a");
  q.Done("a");
  EXPECT_EQ(q.NumRequeues("a"), 2);
  EXPECT_EQ(q.Stats().retries_total, 2u);
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  q.AddRateLimited("a");
  clock.Advance(5ms);
  EXPECT_EQ(q.Len(), 1u);
}

TEST(WorkQueue, GlobalLimitSpreadsManyKeys) {
  FakeClock clock;
  WorkQueueOptions o;
  o.clock = &clock;
  o.rate_limiter = std::make_unique<BucketRateLimiter>(10, 100, &clock);
  WorkQueue q(std::move(o));
  for (int i = 0; i < 120; ++i) q.AddRateLimited("k" + std::to_string(i));
  EXPECT_EQ(q.Len(), 100u) << "the burst passes at once";
  clock.Advance(1s);
  EXPECT_EQ(q.Len(), 110u) << "then 10 per second";
  clock.Advance(1s);
  EXPECT_EQ(q.Len(), 120u);
}

TEST(WorkQueue, ShutDownStopsAddsAndReleasesGetters) {
  WorkQueue q(NoLimit());
  q.Add("a");
  std::atomic<bool> got_first{false};
  auto blocked = std::async(std::launch::async, [&] {
    auto first = q.Get();  // "a"
    got_first = true;
    auto second = q.Get();  // blocks until shutdown (or finds it shut down)
    return std::make_pair(first, second);
  });
  ASSERT_TRUE(Eventually([&] { return got_first.load(); }));
  q.ShutDown();
  auto [first, second] = blocked.get();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, "a");
  EXPECT_FALSE(second.has_value());
  EXPECT_TRUE(q.ShuttingDown());
  q.Add("b");
  q.AddAfter("c", 1ms);
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_FALSE(q.Get().has_value());
}

TEST(WorkQueue, QueuedKeysAreStillHandedOutAfterShutDown) {
  WorkQueue q(NoLimit());
  q.Add("a");
  q.Add("b");
  q.ShutDown();
  EXPECT_EQ(*q.Get(), "a");
  EXPECT_EQ(*q.Get(), "b");
  EXPECT_FALSE(q.Get().has_value());
}

TEST(WorkQueue, ShutDownWithDrainWaitsForInFlightKeys) {
  WorkQueue q(NoLimit());
  q.Add("a");
  q.Add("b");
  auto a = q.Get();
  auto b = q.Get();
  std::atomic<bool> drained{false};
  std::thread closer([&] {
    q.ShutDownWithDrain();
    drained = true;
  });
  // The positive signal that the closer is inside ShutDownWithDrain (it sets
  // shutting-down and starts waiting under one lock).
  ASSERT_TRUE(Eventually([&] { return q.ShuttingDown(); }));
  EXPECT_FALSE(drained.load());
  q.Done(*a);
  EXPECT_EQ(q.Stats().processing, 1);
  // drained can only turn true after Done(b) below; checking now (however
  // late) can fail a queue that returns early, never a correct one.
  EXPECT_FALSE(drained.load()) << "b is still in flight";
  q.Add("b");  // ignored: shutting down
  q.Done(*b);
  closer.join();
  EXPECT_TRUE(drained.load());
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_FALSE(q.Get().has_value());
}

TEST(WorkQueue, StatsReportDepthLatencyAndRunningWork) {
  FakeClock clock;
  WorkQueue q(NoLimit(&clock));
  q.Add("a");
  q.Add("b");
  clock.Advance(2ms);
  auto s = q.Stats();
  EXPECT_EQ(s.depth, 2);
  EXPECT_EQ(s.adds_total, 2u);
  auto a = q.Get();
  clock.Advance(3s);
  s = q.Stats();
  EXPECT_EQ(s.depth, 1);
  EXPECT_EQ(s.processing, 1);
  EXPECT_DOUBLE_EQ(s.longest_running_processor_seconds, 3.0);
  EXPECT_DOUBLE_EQ(s.unfinished_work_seconds, 3.0);
  EXPECT_EQ(s.queue_duration.count, 1u);
  EXPECT_NEAR(s.queue_duration.sum_seconds, 0.002, 1e-9);
  EXPECT_EQ(s.queue_duration.bucket_counts[5], 0u);  // <= 1 ms
  EXPECT_EQ(s.queue_duration.bucket_counts[6], 1u);  // <= 10 ms
  q.Done(*a);
  s = q.Stats();
  EXPECT_EQ(s.work_duration.count, 1u);
  EXPECT_NEAR(s.work_duration.sum_seconds, 3.0, 1e-9);
  EXPECT_EQ(s.work_duration.bucket_counts[9], 1u);  // <= 10 s
  EXPECT_EQ(s.work_duration.bucket_counts[8], 0u);  // not <= 1 s
  EXPECT_EQ(s.processing, 0);
}

}  // namespace
}  // namespace flowrun::kube
