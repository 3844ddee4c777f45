// Eventually: the one polling helper of the test suites. A test that waits
// for something a real process does (a cluster, PostgreSQL, the controller)
// polls a condition instead of sleeping for a time that assumes a fast
// machine. The timeout is a generous upper bound for a loaded 2-core CI
// machine, never an expectation: a passing test returns as soon as the
// condition holds.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace flowrun::testing {

// Polls `condition` every `poll` until it is true or `timeout` (real time)
// passes; returns its last value (so a condition that turns true at the
// deadline still counts).
inline bool Eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30),
                       std::chrono::milliseconds poll = std::chrono::milliseconds(50)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

}  // namespace flowrun::testing
