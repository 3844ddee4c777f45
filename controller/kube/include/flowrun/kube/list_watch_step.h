// The informer's list/watch loop as a pure state machine (kube-rs's watcher
// `step`): given what the last step did, NextStep says what to do next —
// list, watch from a resourceVersion, or back off for a while — with no I/O,
// no clock and no randomness of its own, so every transition is tested as a
// table (tests/kube/informer_unit_test.cc). Informer::Run performs the steps.
//
// Transitions:
//   kStarted                 -> list
//   kListed(rv)              -> watch(rv)
//   kListFailed              -> backoff(d), then list
//   kWatchEnded, events or a run of >= 1 s
//                            -> watch(last rv); the backoff is reset
//   kWatchEnded, no events within 1 s ("very short watch": a failing server)
//                            -> backoff(d), then watch(last rv)
//   kWatchFailed, 410 Gone   -> list at once (the resume point expired)
//   kWatchFailed, other      -> backoff(d), then watch(last rv); the backoff
//                               is reset first if the watch delivered events
//   kSlept                   -> list if never listed since the last 410, else watch(rv)
// Backoff: initial, doubling up to max; each sleep is the current backoff
// times (1 + 0.25 * jitter), capped at max.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "flowrun/status.h"

namespace flowrun::kube {

struct ListWatchState {
  bool listed = false;            // false: the next list/watch step is a list
  std::string resource_version;   // where a watch resumes once listed
  std::chrono::milliseconds backoff{0};  // current backoff; 0: none (reset by progress)
};

struct ListWatchResult {
  enum class Kind { kStarted, kListed, kListFailed, kWatchEnded, kWatchFailed, kSlept };
  Kind kind = Kind::kStarted;
  Status status;                  // kListFailed / kWatchFailed: why
  std::string resource_version;   // kListed: the list's; kWatch*: the last one seen ("" none)
  uint64_t events = 0;            // kWatch*: events the watch delivered
  std::chrono::milliseconds elapsed{0};  // kWatchEnded: how long the watch lasted
};

struct ListWatchStep {
  enum class Kind { kList, kWatch, kBackoff };
  Kind kind = Kind::kList;
  std::string resource_version;        // kWatch: resume point
  std::chrono::milliseconds delay{0};  // kBackoff: how long to wait
  bool short_watch = false;            // kBackoff after a very short watch (an error to count)
};

struct ListWatchBackoff {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds max{30000};
};

// Updates `state` and returns the next step. `jitter` in [0, 1): drawn by
// the caller for this step (used only when backing off).
ListWatchStep NextStep(ListWatchState& state, const ListWatchResult& result, const ListWatchBackoff& backoff,
                       double jitter);

}  // namespace flowrun::kube
