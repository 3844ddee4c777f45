// Clock: the injectable time source (Envoy's TimeSource idea).
//
// Everything in flowrun's runtime, Kubernetes library, controller loop and
// metrics that reads the time or sleeps does it through a Clock, so tests can
// control backoff and deadlines. SystemClock is the real one; DefaultClock()
// is the process's shared instance, what a `Clock* clock = nullptr` option
// means.
// Thread safety: implementations must be safe for concurrent use.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

namespace flowrun {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps that humans and PostgreSQL compare.
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, for measuring durations and timeouts.
  virtual std::chrono::steady_clock::time_point MonotonicNow() const = 0;
  virtual void SleepFor(std::chrono::nanoseconds d) = 0;
  // An interruptible sleep: waits on `cv` (whose mutex `lock` holds, as for
  // std::condition_variable::wait_for) until `stop()` is true or `d` has
  // passed on this clock. Returns stop()'s final value (true: interrupted).
  // The caller notifies `cv` after making stop() true. The default waits in
  // real (steady) time; a test clock may instead advance itself by `d`.
  virtual bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                       std::chrono::nanoseconds d, const std::function<bool()>& stop);
};

// The process's real clock. Stateless; one instance may be shared freely.
class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override;
  std::chrono::steady_clock::time_point MonotonicNow() const override;
  void SleepFor(std::chrono::nanoseconds d) override;
};

// The shared SystemClock behind every `clock = nullptr` option. Never null,
// never destroyed (safe to use from static destructors and detached threads).
Clock* DefaultClock();

}  // namespace flowrun
