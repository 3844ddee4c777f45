// What the controller loop does with a reconcile that did not succeed: the
// one place that maps an error code to a retry decision, so every failure is
// classified the same way (controller-runtime's reconcileHandler is the
// model: a terminal error is counted and not retried; anything else is
// retried with per-key exponential backoff).
//
// Pure; thread-safe.
#pragma once

#include "flowrun/status.h"

namespace flowrun::controller::app {

enum class Retry {
  kNone,                    // OK: forget the key's backoff
  kWaitForChange,           // permanent: forget; the object's next update re-enqueues it
  kBackoff,                 // transient or unexpected: AddRateLimited
  kResetSessionAndBackoff,  // the database connection is suspect: reopen it, then back off
};

// For the status a Sync returned (Kubernetes, database or executor errors):
//   OK                  → kNone
//   kUnavailable        → kResetSessionAndBackoff
//   kFailedPrecondition → kWaitForChange (the state must change first, and
//                         that change arrives as an event)
//   kInvalidArgument    → kWaitForChange (the object is unusable as it is)
//   anything else       → kBackoff (kInternal included: a bug may be a race)
Retry RetryFor(const Status& s);

// Whether a non-OK status is terminal (not retried until the object changes):
// counted in the terminal-errors metric.
inline bool IsTerminal(Retry r) { return r == Retry::kWaitForChange; }

}  // namespace flowrun::controller::app
