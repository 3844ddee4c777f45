#include "flowrun/kube/workqueue.h"

#include <algorithm>
#include <cmath>

namespace flowrun::kube {
namespace {

using std::chrono::nanoseconds;
using std::chrono::steady_clock;

double Seconds(steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Upper bound of one real-time wait in Get(): the queue's clock may be a
// fake one that no condition variable can follow, so waits are re-evaluated
// at least this often.
constexpr auto kMaxWait = std::chrono::seconds(1);

}  // namespace

// ---------------- rate limiters ----------------

ItemExponentialFailureRateLimiter::ItemExponentialFailureRateLimiter(nanoseconds base, nanoseconds max_delay)
    : base_(base), max_(max_delay) {}

nanoseconds ItemExponentialFailureRateLimiter::When(const std::string& key) {
  int exp;
  {
    std::lock_guard<std::mutex> l(mu_);
    exp = failures_[key]++;
  }
  // base * 2^exp in floating point, so large exponents cap instead of overflowing.
  double delay = static_cast<double>(base_.count()) * std::pow(2.0, exp);
  if (!(delay < static_cast<double>(max_.count()))) return max_;
  return nanoseconds(static_cast<int64_t>(delay));
}

void ItemExponentialFailureRateLimiter::Forget(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  failures_.erase(key);
}

int ItemExponentialFailureRateLimiter::NumRequeues(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(double qps, int burst, Clock* clock)
    : qps_(qps), burst_(std::max(1, burst)), tokens_(std::max(1, burst)),
      clock_(clock ? clock : flowrun::DefaultClock()), last_(clock_->MonotonicNow()) {}

nanoseconds BucketRateLimiter::When(const std::string&) {
  std::lock_guard<std::mutex> l(mu_);
  auto now = clock_->MonotonicNow();
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + Seconds(now - last_) * qps_);
    last_ = now;
  }
  // Reserve one token; a negative balance is the queue of reservations.
  tokens_ -= 1;
  if (tokens_ >= 0 || qps_ <= 0) return nanoseconds(0);
  return nanoseconds(static_cast<int64_t>(std::ceil(-tokens_ / qps_ * 1e9)));
}

MaxOfRateLimiter::MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
    : limiters_(std::move(limiters)) {}

nanoseconds MaxOfRateLimiter::When(const std::string& key) {
  nanoseconds d(0);
  for (auto& l : limiters_) d = std::max(d, l->When(key));
  return d;
}

void MaxOfRateLimiter::Forget(const std::string& key) {
  for (auto& l : limiters_) l->Forget(key);
}

int MaxOfRateLimiter::NumRequeues(const std::string& key) {
  int n = 0;
  for (auto& l : limiters_) n = std::max(n, l->NumRequeues(key));
  return n;
}

std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock* clock) {
  std::vector<std::unique_ptr<RateLimiter>> v;
  v.push_back(std::make_unique<ItemExponentialFailureRateLimiter>(std::chrono::milliseconds(5),
                                                                  std::chrono::seconds(1000)));
  v.push_back(std::make_unique<BucketRateLimiter>(10.0, 100, clock));
  return std::make_unique<MaxOfRateLimiter>(std::move(v));
}

void DurationHistogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) ++bucket_counts[i];
  }
  ++count;
  sum_seconds += seconds;
}

// ---------------- queue ----------------

WorkQueue::WorkQueue(WorkQueueOptions options)
    : name_(std::move(options.name)),
      clock_(options.clock ? options.clock : flowrun::DefaultClock()),
      limiter_(options.rate_limiter ? std::move(options.rate_limiter) : DefaultControllerRateLimiter(clock_)) {}

WorkQueue::~WorkQueue() { ShutDown(); }

void WorkQueue::AddLocked(const std::string& key, steady_clock::time_point now) {
  if (shutting_down_) return;
  if (dirty_.count(key)) return;
  ++adds_total_;
  dirty_.insert(key);
  added_at_.emplace(key, now);
  if (processing_.count(key)) return;  // re-queued by Done()
  queue_.push_back(key);
  cv_.notify_one();
}

std::optional<steady_clock::time_point> WorkQueue::PromoteDueLocked(steady_clock::time_point now) {
  while (!delayed_.empty()) {
    const Delayed& top = delayed_.top();
    auto it = waiting_.find(top.key);
    if (it == waiting_.end() || it->second != top.due) {  // stale entry
      delayed_.pop();
      continue;
    }
    if (top.due > now) return top.due;
    std::string key = top.key;
    delayed_.pop();
    waiting_.erase(it);
    AddLocked(key, now);
  }
  return std::nullopt;
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto now = clock_->MonotonicNow();
  PromoteDueLocked(now);
  AddLocked(key, now);
}

void WorkQueue::AddAfter(const std::string& key, nanoseconds d) {
  std::lock_guard<std::mutex> l(mu_);
  if (shutting_down_) return;
  auto now = clock_->MonotonicNow();
  PromoteDueLocked(now);
  if (d <= nanoseconds(0)) {
    AddLocked(key, now);
    return;
  }
  auto due = now + std::chrono::duration_cast<steady_clock::duration>(d);
  auto it = waiting_.find(key);
  if (it != waiting_.end() && it->second <= due) return;  // already due earlier
  waiting_[key] = due;
  delayed_.push(Delayed{due, seq_++, key});
  cv_.notify_all();  // a waiting Get() may need to wake earlier
}

void WorkQueue::AddRateLimited(const std::string& key) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shutting_down_) return;
    ++retries_total_;
  }
  AddAfter(key, limiter_->When(key));
}

void WorkQueue::Forget(const std::string& key) { limiter_->Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) { return limiter_->NumRequeues(key); }

std::optional<std::string> WorkQueue::Get() { return GetImpl(std::nullopt); }

std::optional<std::string> WorkQueue::GetFor(nanoseconds timeout) {
  return GetImpl(steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(timeout));
}

std::optional<std::string> WorkQueue::GetImpl(std::optional<steady_clock::time_point> real_deadline) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    auto now = clock_->MonotonicNow();
    auto next_due = PromoteDueLocked(now);
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    auto real_now = steady_clock::now();
    if (real_deadline && real_now >= *real_deadline) return std::nullopt;
    auto wake = real_now + kMaxWait;
    if (next_due) wake = std::min(wake, real_now + (*next_due - now));
    if (real_deadline) wake = std::min(wake, *real_deadline);
    if (next_due || real_deadline) {
      cv_.wait_until(l, wake);
    } else {
      cv_.wait(l);
    }
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  auto now = clock_->MonotonicNow();
  if (auto it = added_at_.find(key); it != added_at_.end()) {
    queue_duration_.Observe(Seconds(now - it->second));
    added_at_.erase(it);
  }
  started_at_[key] = now;
  return key;
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  if (!processing_.erase(key)) return;  // not handed out: ignore
  auto now = clock_->MonotonicNow();
  if (auto it = started_at_.find(key); it != started_at_.end()) {
    work_duration_.Observe(Seconds(now - it->second));
    started_at_.erase(it);
  }
  if (dirty_.count(key)) {
    queue_.push_back(key);
    cv_.notify_one();
  }
  if (processing_.empty()) drained_cv_.notify_all();
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> l(mu_);
  shutting_down_ = true;
  // Delayed keys are dropped, like client-go's delaying queue on shutdown.
  waiting_.clear();
  delayed_ = {};
  cv_.notify_all();
}

void WorkQueue::ShutDownWithDrain() {
  std::unique_lock<std::mutex> l(mu_);
  shutting_down_ = true;
  draining_ = true;
  waiting_.clear();
  delayed_ = {};
  cv_.notify_all();
  drained_cv_.wait(l, [&] { return processing_.empty(); });
}

bool WorkQueue::ShuttingDown() const {
  std::lock_guard<std::mutex> l(mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() {
  std::lock_guard<std::mutex> l(mu_);
  PromoteDueLocked(clock_->MonotonicNow());
  return queue_.size();
}

WorkQueueStats WorkQueue::Stats() {
  std::lock_guard<std::mutex> l(mu_);
  auto now = clock_->MonotonicNow();
  PromoteDueLocked(now);
  WorkQueueStats s;
  s.name = name_;
  s.depth = static_cast<int64_t>(queue_.size());
  s.delayed = static_cast<int64_t>(waiting_.size());
  s.processing = static_cast<int64_t>(processing_.size());
  s.adds_total = adds_total_;
  s.retries_total = retries_total_;
  s.queue_duration = queue_duration_;
  s.work_duration = work_duration_;
  for (const auto& [key, t] : started_at_) {
    double age = Seconds(now - t);
    s.unfinished_work_seconds += age;
    s.longest_running_processor_seconds = std::max(s.longest_running_processor_seconds, age);
  }
  return s;
}

}  // namespace flowrun::kube
