// FakeClock: a Clock for tests whose time moves only when told to, or when
// somebody sleeps on it. SleepFor(d) and an uninterrupted WaitFor(d) record
// `d` and advance the clock by it and return at once, so code that backs off
// runs without waiting and a test asserts the exact sleeps it asked for
// (Sleeps()). Starts at a fixed, arbitrary instant.
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "flowrun/clock.h"

namespace flowrun::testing {

class FakeClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(Offset()));
  }
  std::chrono::steady_clock::time_point MonotonicNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::duration_cast<std::chrono::steady_clock::duration>(Offset()));
  }
  void SleepFor(std::chrono::nanoseconds d) override {
    Record(d);
    std::this_thread::yield();
  }
  bool WaitFor(std::unique_lock<std::mutex>&, std::condition_variable&, std::chrono::nanoseconds d,
               const std::function<bool()>& stop) override {
    if (stop()) return true;
    Record(d);
    std::this_thread::yield();  // a sleeper in a retry loop must not starve the test thread
    return stop();
  }

  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    offset_ += d;
  }
  // Every sleep so far, in order.
  std::vector<std::chrono::nanoseconds> Sleeps() const {
    std::lock_guard<std::mutex> l(mu_);
    return sleeps_;
  }

 private:
  std::chrono::nanoseconds Offset() const {
    std::lock_guard<std::mutex> l(mu_);
    return offset_;
  }
  void Record(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    sleeps_.push_back(d);
    offset_ += d;
  }

  mutable std::mutex mu_;
  std::chrono::nanoseconds offset_{std::chrono::hours(24 * 365 * 50)};  // ~2020, as wall time
  std::vector<std::chrono::nanoseconds> sleeps_;
};

}  // namespace flowrun::testing
