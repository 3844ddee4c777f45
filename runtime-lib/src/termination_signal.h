// TerminationWatcher: what an execution does on SIGTERM. Internal to the engine
// (Execution::Open from the environment owns one, so C++ and Python agents both have it).
//
// SIGTERM is how Kubernetes stops a container whose pod is deleted (by a
// person, a Job being replaced, a drain): SIGTERM, then SIGKILL once the grace
// period (30 s by default) has passed. An agent is PID 1 of its container, and
// the kernel drops a default-action signal sent to a PID namespace's init, so
// without a watcher the agent would notice nothing and be SIGKILLed (exit 137)
// in the middle of whatever it did. With the watcher, the execution answers
// at once: it writes the "terminated" outcome (OutcomeKind::kTerminated) to
// the termination-message file and exits with kExitTerminated (143). The
// controller classifies the attempt as Terminated and resumes the run from its
// checkpoints in a new attempt; the checkpoint that was running is found
// interrupted there (RunStore::CheckpointStarted) and runs again. Nothing is
// written to the database on SIGTERM: the run's row stays "running" and the
// next attempt's fence takes over, exactly as after a SIGKILL.
//
// Async-signal safety: no code runs in a signal handler. The constructor
// blocks SIGTERM in the calling thread, so every thread it starts afterwards
// (the HTTP client's pool, libpq's) inherits the mask, and one thread of the
// watcher reads the signal from a signalfd (polled together with a pipe that
// the destructor writes to stop it); the report (JSON, file I/O, the log
// line) runs on that ordinary thread. (A wake-up by pthread_kill cannot be
// told apart from a kill(): this kernel reports both as SI_USER.) A thread started before the
// watcher keeps SIGTERM unblocked: a SIGTERM delivered there ends the process
// with the default action, exit 143 without a message, which the controller
// classifies the same way (docs/reconcile.md).
//
// One report per execution: ClaimOutcome() decides between the execution's
// own outcome and "terminated". The first claim wins; a SIGTERM after the
// execution claimed is ignored (the execution is already ending, and its
// outcome is the true one).
//
// Thread safety: ClaimOutcome() may be called from any thread; construct and
// destroy on the same thread. One watcher per process at a time.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace flowrun {

class TerminationWatcher {
 public:
  // `report` runs on the watcher's thread when SIGTERM arrives before the
  // execution claimed its outcome: it writes the "terminated" outcome and
  // returns the exit code; the process then ends with _exit(code) (no
  // destructors: the execution's thread is still inside the flow).
  explicit TerminationWatcher(std::function<int()> report);
  // Stops the watcher thread (when no SIGTERM ended the process) and restores
  // the calling thread's signal mask.
  ~TerminationWatcher();
  TerminationWatcher(const TerminationWatcher&) = delete;
  TerminationWatcher& operator=(const TerminationWatcher&) = delete;

  // Called by the execution before it records its own outcome (database row,
  // termination message). Returns at once when it is first; from then on
  // SIGTERM is ignored. When SIGTERM came first, it never returns: the
  // watcher is writing "terminated" and ends the process.
  void ClaimOutcome();

 private:
  void Watch();

  std::function<int()> report_;
  std::atomic<bool> claimed_{false};
  bool blocked_here_ = false;  // SIGTERM was unblocked in the constructing thread
  int signal_fd_ = -1;         // SIGTERM, read by the watcher thread
  int stop_fds_[2] = {-1, -1}; // the destructor writes [1]: the thread returns
  std::thread thread_;         // not started when the fds could not be made
};

}  // namespace flowrun
