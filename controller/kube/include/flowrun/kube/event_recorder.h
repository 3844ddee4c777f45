// EventRecorder: Kubernetes Events for the objects a controller manages
// (modelled on client-go's tools/record: EventBroadcaster + EventCorrelator's
// spam filter and logger, events written by a background sink).
//
// Contract:
//   * Record() never blocks on the API: it applies the per-object rate limit,
//     puts the event on a bounded queue and returns. A full queue or an
//     exhausted rate limit drops the event and counts it (Stats()).
//   * Rate limit (client-go's spam filter): a token bucket per involved object
//     (kind, namespace, name, uid), by default a burst of 25 refilled by one
//     token every 5 minutes.
//   * Aggregation (client-go's event logger): a repeat of an event already
//     written by this recorder (same object, type, reason and message)
//     increments `count` and `lastTimestamp` of the existing Event with a
//     merge patch instead of creating a new one. If that Event is gone, a new
//     one is created.
//   * Events are core v1 Events (which events.k8s.io/v1 serves as well), in
//     the object's namespace ("default" for cluster-scoped objects), with
//     involvedObject, type Normal|Warning, reason, message (at most
//     max_message_bytes, 1 KiB: a longer one is cut at a UTF-8 boundary and
//     ends in "...", flowrun::TruncateUtf8), source.component /
//     reportingComponent = reporting_controller and reportingInstance.
//   * A background thread writes them (one at a time, in order). Failed
//     writes are retried twice on transient errors, then dropped and counted.
//   * Shutdown() (and the destructor) writes what is queued, then stops.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/kube/client.h"

namespace flowrun::kube {

enum class EventType { kNormal, kWarning };

// What an Event points at (core v1 ObjectReference).
struct ObjectReference {
  std::string api_version, kind, namespace_, name, uid, resource_version;
  nlohmann::json ToJson() const;
};
// The reference to `obj` (apiVersion, kind, metadata.namespace/name/uid/resourceVersion).
ObjectReference ReferenceTo(const nlohmann::json& obj);

struct EventRecorderOptions {
  std::string reporting_controller = "flowrun.dev/controller";
  std::string reporting_instance;  // default: the host name
  size_t queue_capacity = 1000;
  int per_object_burst = 25;
  std::chrono::milliseconds per_object_refill{std::chrono::minutes(5)};  // one token per this
  size_t max_message_bytes = 1024;
  size_t max_tracked = 4096;  // objects in the rate limiter / events in the aggregation cache
  Clock* clock = nullptr;     // nullptr: SystemClock
};

struct EventRecorderStats {
  uint64_t accepted = 0;              // queued by Record
  uint64_t dropped_rate_limited = 0;  // per-object limit exhausted
  uint64_t dropped_queue_full = 0;
  uint64_t created = 0;               // Events created
  uint64_t aggregated = 0;            // repeats patched into an existing Event
  uint64_t write_errors = 0;          // events dropped after failed writes
  std::string last_error;
};

class EventRecorder {
 public:
  EventRecorder(KubeClient* client, EventRecorderOptions options = {});
  ~EventRecorder();  // Shutdown()
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // `object`: the involved object as the API returns it (only apiVersion,
  // kind and metadata are read).
  void Record(const nlohmann::json& object, EventType type, const std::string& reason, const std::string& message);
  void Record(const ObjectReference& ref, EventType type, const std::string& reason, const std::string& message);

  // Waits until every accepted event has been written (or dropped); false on timeout.
  bool Flush(std::chrono::milliseconds timeout);
  // Writes what is queued, then stops the thread. Later Records are dropped (not counted).
  void Shutdown();

  EventRecorderStats Stats() const;

 private:
  struct Pending {
    ObjectReference ref;
    EventType type;
    std::string reason, message;
    std::chrono::system_clock::time_point at;
  };
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  struct Aggregate {
    std::string ns, name;
    int64_t count;
    std::string first_timestamp;
  };

  void Run();
  void Write(const Pending& p);
  bool AllowLocked(const ObjectReference& ref);

  KubeClient* client_;
  EventRecorderOptions opts_;
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work queued or stopping
  std::condition_variable idle_cv_;  // queue empty and nothing in flight
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::unordered_map<std::string, Bucket> buckets_;
  EventRecorderStats stats_;

  // Writer thread only.
  std::unordered_map<std::string, Aggregate> aggregates_;
  std::list<std::string> aggregate_order_;  // oldest first, for eviction

  std::thread thread_;
};

}  // namespace flowrun::kube
