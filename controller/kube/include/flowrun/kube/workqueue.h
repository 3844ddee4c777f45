// WorkQueue: a rate-limited, deduplicating queue of string keys for
// controllers (modelled on client-go's util/workqueue: a FIFO plus "dirty"
// and "processing" sets, a delaying layer and a rate-limiting layer).
//
// Contract:
//   * A key is in the queue at most once: adding a queued key is a no-op.
//   * A key handed out by Get() is "processing" until Done(key). Adding it
//     meanwhile marks it dirty; it is queued again at Done(), so no two
//     workers ever hold the same key at once and no add is lost.
//   * AddAfter(key, d) adds the key once d has passed on the queue's Clock
//     (monotonic time). Delayed keys become visible to Get()/Len() lazily:
//     every public call first moves the keys that are due into the queue,
//     and a blocked Get() wakes at the earliest due time.
//   * AddRateLimited(key) = AddAfter(key, rate_limiter.When(key)); Forget(key)
//     resets the key's failure history; NumRequeues(key) reports it.
//   * ShutDown(): Add* become no-ops, blocked Get()s return nullopt once the
//     queue is empty (keys already queued are still handed out).
//     ShutDownWithDrain(): the same, then waits until every key handed out
//     has been Done().
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flowrun/clock.h"

namespace flowrun::kube {

// How long to wait before re-adding a key (client-go's RateLimiter).
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // The delay before `key` should be processed again; records one more requeue.
  virtual std::chrono::nanoseconds When(const std::string& key) = 0;
  // Stops tracking `key` (its next When starts from scratch).
  virtual void Forget(const std::string& key) = 0;
  virtual int NumRequeues(const std::string& key) = 0;
};

// base * 2^failures, capped at max_delay (client-go's
// ItemExponentialFailureRateLimiter; defaults 5 ms -> 1000 s).
class ItemExponentialFailureRateLimiter final : public RateLimiter {
 public:
  explicit ItemExponentialFailureRateLimiter(std::chrono::nanoseconds base = std::chrono::milliseconds(5),
                                             std::chrono::nanoseconds max_delay = std::chrono::seconds(1000));
  std::chrono::nanoseconds When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) override;

 private:
  std::mutex mu_;
  std::unordered_map<std::string, int> failures_;
  std::chrono::nanoseconds base_, max_;
};

// A global token bucket (client-go's BucketRateLimiter over x/time/rate):
// `burst` tokens, refilled at `qps`. Every When() reserves a token and
// returns how long until that token exists (0 while the bucket has tokens).
// Per-key history is not kept (Forget is a no-op, NumRequeues 0).
class BucketRateLimiter final : public RateLimiter {
 public:
  BucketRateLimiter(double qps, int burst, Clock* clock = nullptr);
  std::chrono::nanoseconds When(const std::string& key) override;
  void Forget(const std::string&) override {}
  int NumRequeues(const std::string&) override { return 0; }

 private:
  std::mutex mu_;
  double qps_;
  double burst_;
  double tokens_;
  Clock* clock_;
  std::chrono::steady_clock::time_point last_;
};

// The longest delay of its parts (client-go's MaxOfRateLimiter).
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters);
  std::chrono::nanoseconds When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// Per-key exponential 5 ms -> 1000 s, and overall 10 qps with a burst of 100
// (client-go's DefaultControllerRateLimiter).
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock* clock = nullptr);

// A histogram with client-go's workqueue buckets (1e-8 s .. 1e1 s, x10).
// Buckets are cumulative like Prometheus's: bucket_counts[i] counts
// observations <= kBounds[i]; `count` is the +Inf bucket.
struct DurationHistogram {
  static constexpr std::array<double, 10> kBounds = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
  std::array<uint64_t, 10> bucket_counts{};
  uint64_t count = 0;
  double sum_seconds = 0;
  void Observe(double seconds);
};

// A snapshot of the queue's metrics, for a Prometheus adapter. Names follow
// client-go / controller-runtime (workqueue_depth, workqueue_adds_total, ...).
struct WorkQueueStats {
  std::string name;
  int64_t depth = 0;           // workqueue_depth: keys waiting in the queue (not the delayed ones)
  int64_t delayed = 0;         // keys waiting for their AddAfter time
  int64_t processing = 0;      // keys handed out and not yet Done
  uint64_t adds_total = 0;     // workqueue_adds_total: keys that entered the queue
  uint64_t retries_total = 0;  // workqueue_retries_total: AddRateLimited calls
  DurationHistogram queue_duration;  // workqueue_queue_duration_seconds: add -> Get
  DurationHistogram work_duration;   // workqueue_work_duration_seconds: Get -> Done
  double unfinished_work_seconds = 0;            // sum of the running keys' ages
  double longest_running_processor_seconds = 0;  // the oldest running key's age
};

struct WorkQueueOptions {
  std::string name;              // for metrics
  Clock* clock = nullptr;        // nullptr: the process's SystemClock
  // nullptr: DefaultControllerRateLimiter(clock).
  std::unique_ptr<RateLimiter> rate_limiter;
};

class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions options = {});
  ~WorkQueue();  // ShutDown(); does not wait for processing keys
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Add(const std::string& key);
  // d <= 0 is Add(key). A key already waiting keeps the earlier due time.
  void AddAfter(const std::string& key, std::chrono::nanoseconds d);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Blocks until a key is available; nullopt once shut down and empty.
  // Every key returned must be passed to Done() exactly once.
  std::optional<std::string> Get();
  // Like Get(), but gives up (nullopt) after `timeout` of real time.
  std::optional<std::string> GetFor(std::chrono::nanoseconds timeout);
  void Done(const std::string& key);

  void ShutDown();
  void ShutDownWithDrain();
  bool ShuttingDown() const;
  // Keys ready to be handed out (dirty and not processing), like client-go's Len.
  size_t Len();

  WorkQueueStats Stats();

 private:
  struct Delayed {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;
    std::string key;
    bool operator>(const Delayed& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };

  void AddLocked(const std::string& key, std::chrono::steady_clock::time_point now);
  // Moves due delayed keys into the queue; returns the next due time if any.
  std::optional<std::chrono::steady_clock::time_point> PromoteDueLocked(std::chrono::steady_clock::time_point now);
  std::optional<std::string> GetImpl(std::optional<std::chrono::steady_clock::time_point> real_deadline);

  const std::string name_;
  Clock* clock_;
  std::unique_ptr<RateLimiter> limiter_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // keys available, shutdown, or earlier delayed key
  std::condition_variable drained_cv_;  // processing set became empty
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  // Delayed keys: a min-heap by due time; waiting_ holds the current due time
  // of each key (stale heap entries are skipped when popped).
  std::priority_queue<Delayed, std::vector<Delayed>, std::greater<Delayed>> delayed_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> waiting_;
  uint64_t seq_ = 0;
  bool shutting_down_ = false;
  bool draining_ = false;

  // metrics
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> added_at_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> started_at_;
  uint64_t adds_total_ = 0;
  uint64_t retries_total_ = 0;
  DurationHistogram queue_duration_;
  DurationHistogram work_duration_;
};

}  // namespace flowrun::kube
