// LeaderElector: leader election on a coordination.k8s.io/v1 Lease (modelled
// on client-go's tools/leaderelection with the LeaseLock).
//
// Contract:
//   * Candidates try every retry_period (with up to +20% jitter) to acquire
//     the Lease: create it if absent, else update it with the read
//     resourceVersion as precondition, so two candidates never both win one
//     round (the loser gets 409 Conflict).
//   * A lease held by someone else is respected until lease_duration has
//     passed on OUR monotonic clock since we last saw its record change
//     (holder, renewTime, ...). The record's timestamps are never compared
//     with our clock: clocks of different machines may disagree.
//   * The leader renews every retry_period. If it cannot renew for
//     renew_deadline, it gives up: IsLeader() turns false and
//     on_stopped_leading runs. It stops leading before the lease can expire
//     for others (renew_deadline < lease_duration), so two leaders never
//     overlap as long as the clocks' rates agree.
//   * IsLeader() is also false once renew_deadline has passed since the last
//     successful renewal, even before the elector's thread notices.
//   * Stop() (and the destructor) releases a held lease: holderIdentity is
//     cleared and leaseDurationSeconds set to 1, so another candidate takes
//     over on its next try; then on_stopped_leading runs.
//   * After losing the lease the elector becomes a candidate again (unless
//     stopped). Losing means: stop every write at once; exiting the process
//     is the simplest correct reaction. A Lease does not fence: writes to
//     other stores need their own fencing.
//
// Callbacks run on the elector's thread (on_stopped_leading from Stop()
// runs on the caller's thread); they must not call Stop().
// Thread safety: IsLeader, CurrentLeader and Stop may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/kube/client.h"
#include "flowrun/status.h"

namespace flowrun::kube {

struct LeaderElectionConfig {
  std::string lease_namespace = "default";
  std::string lease_name;
  std::string identity;  // unique per process, e.g. "<pod name>_<random>"
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_stop = true;
  Clock* clock = nullptr;  // nullptr: SystemClock (monotonic time for timing, wall time for the record)

  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  // Called when the observed holder changes (also to ourselves, or to "").
  std::function<void(const std::string& holder)> on_new_leader;
};

// The Lease's spec as this elector reads and writes it.
struct LeaderElectionRecord {
  std::string holder_identity;
  int lease_duration_seconds = 0;
  std::string acquire_time;  // RFC 3339 with microseconds (MicroTime)
  std::string renew_time;
  int lease_transitions = 0;
  bool operator==(const LeaderElectionRecord&) const = default;
};

class LeaderElector {
 public:
  // Checks the config (kInvalidArgument: empty name/identity, renew_deadline
  // >= lease_duration, retry_period >= renew_deadline, ...).
  static StatusOr<std::unique_ptr<LeaderElector>> Create(KubeClient* client, LeaderElectionConfig config);
  ~LeaderElector();  // Stop()
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Starts contending on a background thread. Once only.
  void Start();
  // Stops contending; releases the lease if held (release_on_stop). Idempotent.
  void Stop();

  bool IsLeader() const;
  // The holder last observed ("" if none or unknown).
  std::string CurrentLeader() const;
  const std::string& identity() const { return cfg_.identity; }

  // One attempt, for tests and custom loops: acquire or renew. OK(true) if we
  // hold the lease afterwards.
  StatusOr<bool> TryAcquireOrRenew();

 private:
  LeaderElector(KubeClient* client, LeaderElectionConfig config);
  void Run();
  // Waits `d` (real time) unless stopped; false if stopped.
  bool Sleep(std::chrono::nanoseconds d);
  std::chrono::nanoseconds Jittered(std::chrono::nanoseconds d) const;
  Status Release();
  void SetLeading(bool leading);
  std::string MicroTimeNow() const;

  KubeClient* client_;
  LeaderElectionConfig cfg_;
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  bool leading_ = false;
  std::chrono::steady_clock::time_point last_renew_{};  // our clock, last successful acquire/renew
  std::optional<LeaderElectionRecord> observed_;
  std::string observed_rv_;
  std::chrono::steady_clock::time_point observed_time_{};
  std::string observed_holder_;

  std::mutex attempt_mu_;  // one TryAcquireOrRenew / Release at a time
  std::thread thread_;
  std::atomic<bool> started_{false};
};

}  // namespace flowrun::kube
