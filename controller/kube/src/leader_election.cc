#include "flowrun/kube/leader_election.h"

#include <random>

#include "flowrun/json_fields.h"
#include "flowrun/rfc3339.h"

namespace flowrun::kube {
namespace {

int DurationSeconds(std::chrono::milliseconds d) {
  auto s = (d.count() + 999) / 1000;
  return static_cast<int>(s < 1 ? 1 : s);
}

LeaderElectionRecord RecordFromLease(const nlohmann::json& lease) {
  LeaderElectionRecord r;
  const nlohmann::json& spec = JsonField(lease, "spec");
  r.holder_identity = JsonString(spec, "holderIdentity");
  r.lease_duration_seconds = static_cast<int>(JsonInt(spec, "leaseDurationSeconds"));
  r.acquire_time = JsonString(spec, "acquireTime");
  r.renew_time = JsonString(spec, "renewTime");
  r.lease_transitions = static_cast<int>(JsonInt(spec, "leaseTransitions"));
  return r;
}

void RecordToSpec(const LeaderElectionRecord& r, nlohmann::json& spec) {
  if (!spec.is_object()) spec = nlohmann::json::object();
  if (r.holder_identity.empty()) {
    spec.erase("holderIdentity");
  } else {
    spec["holderIdentity"] = r.holder_identity;
  }
  spec["leaseDurationSeconds"] = r.lease_duration_seconds;
  if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
  if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
  spec["leaseTransitions"] = r.lease_transitions;
}

std::string ResourceVersionOf(const nlohmann::json& obj) {
  return JsonString(JsonField(obj, "metadata"), "resourceVersion");
}

}  // namespace

StatusOr<std::unique_ptr<LeaderElector>> LeaderElector::Create(KubeClient* client, LeaderElectionConfig config) {
  if (client == nullptr) return InvalidArgument("leader election: no client");
  if (config.lease_name.empty()) return InvalidArgument("leader election: lease_name is empty");
  if (config.lease_namespace.empty()) return InvalidArgument("leader election: lease_namespace is empty");
  if (config.identity.empty()) return InvalidArgument("leader election: identity is empty");
  if (config.retry_period.count() <= 0) return InvalidArgument("leader election: retry_period must be > 0");
  if (config.lease_duration <= config.renew_deadline)
    return InvalidArgument("leader election: lease_duration must be greater than renew_deadline");
  if (config.renew_deadline.count() <= config.retry_period.count() * 12 / 10)
    return InvalidArgument("leader election: renew_deadline must be greater than 1.2 x retry_period");
  return std::unique_ptr<LeaderElector>(new LeaderElector(client, std::move(config)));
}

LeaderElector::LeaderElector(KubeClient* client, LeaderElectionConfig config)
    : client_(client), cfg_(std::move(config)), clock_(cfg_.clock ? cfg_.clock : flowrun::DefaultClock()) {}

LeaderElector::~LeaderElector() { Stop(); }

// metav1.MicroTime, as client-go writes acquireTime and renewTime.
std::string LeaderElector::MicroTimeNow() const { return FormatTimeMicros(clock_->Now()); }

std::chrono::nanoseconds LeaderElector::Jittered(std::chrono::nanoseconds d) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double f = std::uniform_real_distribution<double>(0.0, 0.2)(rng);
  return d + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(d.count()) * f));
}

bool LeaderElector::Sleep(std::chrono::nanoseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return !cv_.wait_for(l, d, [&] { return stopped_; });
}

bool LeaderElector::IsLeader() const {
  std::lock_guard<std::mutex> l(mu_);
  return leading_ && clock_->MonotonicNow() - last_renew_ < cfg_.renew_deadline;
}

std::string LeaderElector::CurrentLeader() const {
  std::lock_guard<std::mutex> l(mu_);
  return observed_holder_;
}

StatusOr<bool> LeaderElector::TryAcquireOrRenew() {
  std::lock_guard<std::mutex> attempt(attempt_mu_);
  const auto ref = resources::Leases();
  const auto now_mono = clock_->MonotonicNow();
  const std::string now = MicroTimeNow();
  std::string new_holder_seen;
  bool holder_changed = false;

  auto observe = [&](const LeaderElectionRecord& r, const std::string& rv) {
    std::lock_guard<std::mutex> l(mu_);
    if (!observed_ || *observed_ != r) {
      observed_ = r;
      observed_time_ = now_mono;
    }
    observed_rv_ = rv;
    if (observed_holder_ != r.holder_identity) {
      observed_holder_ = r.holder_identity;
      holder_changed = true;
      new_holder_seen = r.holder_identity;
    }
  };
  auto notify = [&] {
    if (holder_changed && cfg_.on_new_leader) cfg_.on_new_leader(new_holder_seen);
  };

  auto got = client_->Get(ref, cfg_.lease_namespace, cfg_.lease_name);
  if (!got.ok()) {
    if (!IsNotFound(got.status())) return got.status();
    LeaderElectionRecord r;
    r.holder_identity = cfg_.identity;
    r.lease_duration_seconds = DurationSeconds(cfg_.lease_duration);
    r.acquire_time = now;
    r.renew_time = now;
    r.lease_transitions = 0;
    nlohmann::json lease = {
        {"apiVersion", ref.ApiVersion()},
        {"kind", ref.kind},
        {"metadata", {{"name", cfg_.lease_name}, {"namespace", cfg_.lease_namespace}}},
        {"spec", nlohmann::json::object()},
    };
    RecordToSpec(r, lease["spec"]);
    auto created = client_->Create(ref, cfg_.lease_namespace, lease);
    if (!created.ok()) {
      if (IsAlreadyExists(created.status())) return false;  // someone else was faster
      return created.status();
    }
    observe(r, ResourceVersionOf(*created));
    {
      std::lock_guard<std::mutex> l(mu_);
      last_renew_ = now_mono;
    }
    notify();
    return true;
  }

  nlohmann::json lease = std::move(got).value();
  LeaderElectionRecord old = RecordFromLease(lease);
  observe(old, ResourceVersionOf(lease));
  bool valid_for_other;
  {
    std::lock_guard<std::mutex> l(mu_);
    valid_for_other = !old.holder_identity.empty() && old.holder_identity != cfg_.identity &&
                      observed_time_ + std::chrono::seconds(old.lease_duration_seconds) > now_mono;
  }
  if (valid_for_other) {
    notify();
    return false;
  }

  LeaderElectionRecord r = old;
  r.holder_identity = cfg_.identity;
  r.lease_duration_seconds = DurationSeconds(cfg_.lease_duration);
  r.renew_time = now;
  if (old.holder_identity != cfg_.identity) {
    r.acquire_time = now;
    r.lease_transitions = old.lease_transitions + 1;
  }
  RecordToSpec(r, lease["spec"]);
  // metadata.resourceVersion from the Get is the precondition: a concurrent
  // writer makes this fail with 409 Conflict.
  auto updated = client_->Update(ref, cfg_.lease_namespace, lease);
  if (!updated.ok()) {
    notify();
    if (IsConflict(updated.status())) return false;
    return updated.status();
  }
  observe(r, ResourceVersionOf(*updated));
  {
    std::lock_guard<std::mutex> l(mu_);
    last_renew_ = now_mono;
  }
  notify();
  return true;
}

Status LeaderElector::Release() {
  std::lock_guard<std::mutex> attempt(attempt_mu_);
  const auto ref = resources::Leases();
  auto got = client_->Get(ref, cfg_.lease_namespace, cfg_.lease_name);
  if (!got.ok()) return IsNotFound(got.status()) ? Status::Ok() : got.status();
  nlohmann::json lease = std::move(got).value();
  LeaderElectionRecord r = RecordFromLease(lease);
  if (r.holder_identity != cfg_.identity) return Status::Ok();  // not ours any more
  const std::string now = MicroTimeNow();
  r.holder_identity.clear();
  r.lease_duration_seconds = 1;
  r.renew_time = now;
  r.acquire_time = now;
  RecordToSpec(r, lease["spec"]);
  auto updated = client_->Update(ref, cfg_.lease_namespace, lease);
  if (!updated.ok()) return updated.status();
  std::lock_guard<std::mutex> l(mu_);
  observed_ = r;
  observed_holder_.clear();
  return Status::Ok();
}

void LeaderElector::SetLeading(bool leading) {
  bool changed;
  {
    std::lock_guard<std::mutex> l(mu_);
    changed = leading_ != leading;
    leading_ = leading;
  }
  if (!changed) return;
  if (leading && cfg_.on_started_leading) cfg_.on_started_leading();
  if (!leading && cfg_.on_stopped_leading) cfg_.on_stopped_leading();
}

void LeaderElector::Start() {
  if (started_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
  }
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_ && !thread_.joinable()) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  bool was_leading;
  {
    std::lock_guard<std::mutex> l(mu_);
    was_leading = leading_;
  }
  if (was_leading) {
    if (cfg_.release_on_stop) (void)Release();  // best effort: the lease expires anyway
    SetLeading(false);
  }
}

void LeaderElector::Run() {
  for (;;) {
    // Candidate: try every retry_period (jittered) until we hold the lease.
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stopped_) return;
      }
      auto r = TryAcquireOrRenew();
      if (r.ok() && *r) break;
      if (!Sleep(Jittered(cfg_.retry_period))) return;
    }
    SetLeading(true);  // if Stop() came meanwhile, it releases and reports the end

    // Leader: renew every retry_period; give up after renew_deadline without success.
    for (;;) {
      if (!Sleep(cfg_.retry_period)) return;  // Stop() releases
      auto r = TryAcquireOrRenew();
      if (r.ok() && *r) continue;
      bool lost;
      {
        std::lock_guard<std::mutex> l(mu_);
        bool taken = r.ok() && !observed_holder_.empty() && observed_holder_ != cfg_.identity;
        lost = taken || clock_->MonotonicNow() - last_renew_ >= cfg_.renew_deadline;
      }
      if (lost) break;
    }
    SetLeading(false);
  }
}

}  // namespace flowrun::kube
