// Clock: the injectable time source (Envoy's TimeSource idea).
//
// Everything in flowrun that reads the time or sleeps does it through a Clock,
// so tests can control backoff and deadlines. SystemClock is the real one.
// Thread safety: implementations must be safe for concurrent use.
#pragma once

#include <chrono>
#include <memory>

namespace flowrun {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps that humans and PostgreSQL compare.
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, for measuring durations and timeouts.
  virtual std::chrono::steady_clock::time_point MonotonicNow() const = 0;
  virtual void SleepFor(std::chrono::nanoseconds d) = 0;
};

// The process's real clock. Stateless; one instance may be shared freely.
class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override;
  std::chrono::steady_clock::time_point MonotonicNow() const override;
  void SleepFor(std::chrono::nanoseconds d) override;
};

}  // namespace flowrun
