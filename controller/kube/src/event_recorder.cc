#include "flowrun/kube/event_recorder.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "flowrun/json_fields.h"
#include "flowrun/rfc3339.h"
#include "flowrun/utf8.h"

namespace flowrun::kube {
namespace {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string ObjectId(const ObjectReference& r) {
  return r.kind + "\x1f" + r.namespace_ + "\x1f" + r.name + "\x1f" + r.uid;
}

bool Transient(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded ||
         s.code() == StatusCode::kResourceExhausted;
}

}  // namespace

nlohmann::json ObjectReference::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  if (!api_version.empty()) j["apiVersion"] = api_version;
  if (!kind.empty()) j["kind"] = kind;
  if (!namespace_.empty()) j["namespace"] = namespace_;
  if (!name.empty()) j["name"] = name;
  if (!uid.empty()) j["uid"] = uid;
  if (!resource_version.empty()) j["resourceVersion"] = resource_version;
  return j;
}

ObjectReference ReferenceTo(const nlohmann::json& obj) {
  ObjectReference r;
  r.api_version = JsonString(obj, "apiVersion");
  r.kind = JsonString(obj, "kind");
  const nlohmann::json& m = JsonField(obj, "metadata");
  r.namespace_ = JsonString(m, "namespace");
  r.name = JsonString(m, "name");
  r.uid = JsonString(m, "uid");
  r.resource_version = JsonString(m, "resourceVersion");
  return r;
}

EventRecorder::EventRecorder(KubeClient* client, EventRecorderOptions options)
    : client_(client), opts_(std::move(options)), clock_(opts_.clock ? opts_.clock : flowrun::DefaultClock()) {
  if (opts_.reporting_instance.empty()) opts_.reporting_instance = HostName();
  if (opts_.queue_capacity == 0) opts_.queue_capacity = 1;
  thread_ = std::thread([this] { Run(); });
}

EventRecorder::~EventRecorder() { Shutdown(); }

bool EventRecorder::AllowLocked(const ObjectReference& ref) {
  auto now = clock_->MonotonicNow();
  std::string id = ObjectId(ref);
  auto it = buckets_.find(id);
  if (it == buckets_.end()) {
    if (buckets_.size() >= opts_.max_tracked) {
      // Forget the buckets that have refilled completely (they hold no state).
      double refill = std::chrono::duration<double>(opts_.per_object_refill).count();
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        double t = b->second.tokens + std::chrono::duration<double>(now - b->second.last).count() / refill;
        b = t >= opts_.per_object_burst ? buckets_.erase(b) : std::next(b);
      }
      if (buckets_.size() >= opts_.max_tracked) buckets_.clear();
    }
    it = buckets_.emplace(id, Bucket{static_cast<double>(opts_.per_object_burst), now}).first;
  }
  Bucket& b = it->second;
  double refill = std::chrono::duration<double>(opts_.per_object_refill).count();
  if (refill > 0 && now > b.last) {
    b.tokens = std::min<double>(opts_.per_object_burst,
                                b.tokens + std::chrono::duration<double>(now - b.last).count() / refill);
  }
  b.last = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void EventRecorder::Record(const nlohmann::json& object, EventType type, const std::string& reason,
                           const std::string& message) {
  Record(ReferenceTo(object), type, reason, message);
}

void EventRecorder::Record(const ObjectReference& ref, EventType type, const std::string& reason,
                           const std::string& message) {
  Pending p{ref, type, reason, TruncateUtf8(message, opts_.max_message_bytes), clock_->Now()};
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_) return;
  if (!AllowLocked(ref)) {
    ++stats_.dropped_rate_limited;
    return;
  }
  if (queue_.size() >= opts_.queue_capacity) {
    ++stats_.dropped_queue_full;
    return;
  }
  queue_.push_back(std::move(p));
  ++stats_.accepted;
  cv_.notify_one();
}

bool EventRecorder::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return idle_cv_.wait_for(l, timeout, [&] { return queue_.empty() && !busy_; });
}

void EventRecorder::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EventRecorderStats EventRecorder::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void EventRecorder::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      idle_cv_.notify_all();
      return;  // stopping, everything written
    }
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    l.unlock();
    Write(p);
    l.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

void EventRecorder::Write(const Pending& p) {
  const auto ref = resources::Events();
  const std::string type = p.type == EventType::kWarning ? "Warning" : "Normal";
  const std::string ns = p.ref.namespace_.empty() ? "default" : p.ref.namespace_;
  const std::string agg_key = ObjectId(p.ref) + "\x1e" + type + "\x1e" + p.reason + "\x1e" + p.message;
  const std::string now = FormatTime(p.at);  // metav1.Time: seconds

  auto fail = [&](const Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.write_errors;
    stats_.last_error = s.ToString();
  };
  // Up to 3 attempts on transient errors.
  auto with_retries = [&](auto&& call) {
    auto res = call();
    for (int i = 1; i < 3 && !res.ok() && Transient(res.status()); ++i) {
      clock_->SleepFor(std::chrono::milliseconds(200 * i));
      res = call();
    }
    return res;
  };

  auto agg = aggregates_.find(agg_key);
  if (agg != aggregates_.end()) {
    Aggregate& a = agg->second;
    nlohmann::json patch = {{"count", a.count + 1}, {"lastTimestamp", now}};
    auto res = with_retries([&] { return client_->MergePatch(ref, a.ns, a.name, patch); });
    if (res.ok()) {
      a.count += 1;
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.aggregated;
      return;
    }
    if (!IsNotFound(res.status())) {
      fail(res.status());
      return;
    }
    // The Event expired or was deleted: start a new one.
    aggregates_.erase(agg);
    aggregate_order_.remove(agg_key);
  }

  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%llx",
                static_cast<unsigned long long>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(p.at.time_since_epoch()).count()));
  std::string base = p.ref.name.empty() ? "event" : p.ref.name;
  std::string name = base.substr(0, 253 - std::char_traits<char>::length(suffix)) + suffix;
  nlohmann::json ev = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", name}, {"namespace", ns}}},
      {"involvedObject", p.ref.ToJson()},
      {"type", type},
      {"reason", p.reason},
      {"message", p.message},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", opts_.reporting_controller}}},
      {"reportingComponent", opts_.reporting_controller},
      {"reportingInstance", opts_.reporting_instance},
  };
  auto res = with_retries([&] { return client_->Create(ref, ns, ev); });
  if (!res.ok() && IsAlreadyExists(res.status())) {
    // Two events in the same nanosecond for one object: make the name unique.
    ev["metadata"]["name"] = name + "-1";
    res = client_->Create(ref, ns, ev);
  }
  if (!res.ok()) {
    fail(res.status());
    return;
  }
  aggregates_[agg_key] = Aggregate{ns, JsonString(JsonField(*res, "metadata"), "name"), 1, now};
  aggregate_order_.push_back(agg_key);
  while (aggregate_order_.size() > opts_.max_tracked) {
    aggregates_.erase(aggregate_order_.front());
    aggregate_order_.pop_front();
  }
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.created;
}

}  // namespace flowrun::kube
