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

// Marks an error as permanent: the object itself is unusable, so retrying
// the same object fails again. Only the loop sets it, for the core's
// kInvalidArgument (ReconcileResult::error); the mark is a Status payload,
// never message text.
Status Permanent(Status s);

// For the status a Sync returned (Kubernetes, database or executor errors):
//   OK                  → kNone
//   marked Permanent    → kWaitForChange (the object's next update re-enqueues it)
//   kUnavailable        → kResetSessionAndBackoff
//   anything else       → kBackoff. That includes kFailedPrecondition: the
//                         state that must change first is often the
//                         database's (RecordAnswer on a run that moved on, a
//                         schema not migrated yet), which sends no event, so
//                         waiting for an event could wait forever; kInternal
//                         (the core threw: a bug may be a race); and
//                         kInvalidArgument from the API (a 400/422, e.g. an
//                         admission policy a later change may satisfy).
Retry RetryFor(const Status& s);

// Whether a non-OK status is terminal (not retried until the object changes):
// counted in the terminal-errors metric.
inline bool IsTerminal(Retry r) { return r == Retry::kWaitForChange; }

}  // namespace flowrun::controller::app
