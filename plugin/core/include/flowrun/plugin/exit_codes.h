// kubectl flowrun's exit codes (documented in docs/kubectl-flowrun.md and
// `kubectl flowrun --help`), so scripts and coding agents can branch on them.
#pragma once

#include "flowrun/status.h"

namespace flowrun::plugin {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,           // anything not below
  kExitUsage = 2,           // bad flags or arguments
  kExitNotFound = 3,        // no such run, wait, artifact, pod
  kExitForbidden = 4,       // RBAC or an admission policy refused (or not authenticated)
  kExitInvalidAnswer = 5,   // the answer does not match the wait's schema (refused locally)
  kExitRejected = 6,        // the controller rejected the answer (AnswerAccepted=False)
  kExitTimeout = 7,         // no verdict within --timeout
  kExitUnavailable = 8,     // apiserver or read API unreachable / 503
  kExitNotWaiting = 9,      // nothing to answer: not waiting, another wait, already answered
};

// The exit code for an error Status from the Kubernetes client or the core.
int ExitCodeFor(const Status& s);

}  // namespace flowrun::plugin
