#include "flowrun/clock.h"

#include <thread>

namespace flowrun {

bool Clock::WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, std::chrono::nanoseconds d,
                    const std::function<bool()>& stop) {
  return cv.wait_for(lock, d, stop);
}

std::chrono::system_clock::time_point SystemClock::Now() const {
  return std::chrono::system_clock::now();
}
std::chrono::steady_clock::time_point SystemClock::MonotonicNow() const {
  return std::chrono::steady_clock::now();
}
void SystemClock::SleepFor(std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); }

Clock* DefaultClock() {
  // Leaked on purpose: no destructor runs at exit, so a thread still sleeping
  // on it while statics are torn down is harmless.
  static SystemClock* clock = new SystemClock;
  return clock;
}

}  // namespace flowrun
