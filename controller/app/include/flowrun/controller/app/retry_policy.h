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
//                         that change arrives as an event). The loop reports
//                         a FlowRun the core finds unusable (its
//                         kInvalidArgument) with this code.
//   anything else       → kBackoff: kInternal (the core threw: a bug may be
//                         a race), and kInvalidArgument from the API (a 400/
//                         422, e.g. an admission policy that a later change
//                         elsewhere may satisfy)
Retry RetryFor(const Status& s);

// Whether a non-OK status is terminal (not retried until the object changes):
// counted in the terminal-errors metric.
inline bool IsTerminal(Retry r) { return r == Retry::kWaitForChange; }

}  // namespace flowrun::controller::app
