// Execution: opening, identities, checkpoints, waits and the end of an
// execution (execution.h states the contract). LLM calls and artifacts are in
// execution_llm.cc; the log lines, termination message and exit path in
// execution_report.cc.
#include "flowrun/execution.h"

#include <openssl/evp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "execution_internal.h"
#include "flowrun/postgres.h"
#include "flowrun/schema_validator.h"

namespace flowrun {

namespace {

constexpr size_t kMaxNameLength = 253;

OutcomeKind BeginFailureKind(const Status& s) {
  switch (s.code()) {
    case StatusCode::kFailedPrecondition: return OutcomeKind::kCancelled;
    case StatusCode::kUnavailable: return OutcomeKind::kDatabaseUnavailable;
    default: return OutcomeKind::kFailed;
  }
}

}  // namespace

std::string CheckpointFingerprint(CheckpointKind kind, std::string_view name,
                                  const std::optional<nlohmann::json>& inputs) {
  // nlohmann::json objects are std::map-backed: dump() is canonical (sorted keys).
  std::string material = std::string(CheckpointKindName(kind)) + '\0' + std::string(name) + '\0' +
                         (inputs ? inputs->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : "");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex = "v1:";
  char buf[3];
  for (unsigned int i = 0; i < 16 && i < len; ++i) {  // 128 bits is plenty to tell inputs apart
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

// --- Opening ----------------------------------------------------------------

OpenedExecution Execution::OpenFromProcess(std::function<void()> claim_outcome) {
  std::signal(SIGPIPE, SIG_IGN);
  auto env = ReadRunEnvironmentFromProcess();
  if (!env.ok()) {
    RunEnvironment fallback;
    if (const char* p = std::getenv("FLOWRUN_TERMINATION_MESSAGE_PATH")) fallback.termination_message_path = p;
    if (const char* a = std::getenv("FLOWRUN_ATTEMPT")) fallback.attempt = std::atoi(a);
    return internal::Reported(fallback, StderrJsonLogger(fallback),
                              internal::OutcomeOf(OutcomeKind::kConfigError, env.status().message()), claim_outcome);
  }
  return Open(*env, std::move(claim_outcome));
}

OpenedExecution Execution::Open(const RunEnvironment& env, std::function<void()> claim_outcome) {
  std::signal(SIGPIPE, SIG_IGN);
  ExecutionLogger log = StderrJsonLogger(env);
  auto owned = std::make_unique<Owned>();
  // SIGTERM (pod deleted, node drained) → the "terminated" outcome at once,
  // instead of a SIGKILL after the grace period (termination_signal.h); C++
  // and Python agents alike. First, before any thread exists: the watcher
  // blocks SIGTERM for the threads started after it, and a pod deleted while
  // the store connects is "terminated" too. Every report of the execution's
  // own outcome claims first (ExecutionDeps::claim_outcome).
  owned->termination = std::make_unique<TerminationWatcher>([env, log] {
    return internal::Report(env, log, internal::OutcomeOf(OutcomeKind::kTerminated,
                                                          "SIGTERM: the pod is being deleted; the run resumes from its checkpoints"));
  });
  claim_outcome = [watcher = owned->termination.get(), then = std::move(claim_outcome)] {
    watcher->ClaimOutcome();
    if (then) then();
  };
  if (!env.price_table_path.empty()) {
    auto loaded = PriceTable::LoadFile(env.price_table_path);
    if (!loaded.ok())
      return internal::Reported(env, log, internal::OutcomeOf(OutcomeKind::kConfigError, loaded.status().message()),
                                claim_outcome);
    owned->prices = std::move(loaded).value();
  }
  PostgresOptions popts;
  popts.conninfo = env.database_url;
  popts.application_name = "flowrun:" + env.run.uid.substr(0, 40);
  popts.connect_attempts = env.db_connect_attempts;
  popts.initial_backoff = env.db_retry_initial_backoff;
  popts.clock = &owned->clock;
  auto opened = OpenPostgresRunStore(popts);
  if (!opened.ok()) {
    bool config = opened.status().code() == StatusCode::kInvalidArgument;
    return internal::Reported(env, log,
                              internal::OutcomeOf(config ? OutcomeKind::kConfigError : OutcomeKind::kDatabaseUnavailable,
                                                  opened.status().message()),
                              claim_outcome);
  }
  owned->store = std::move(opened).value();
  ExecutionDeps deps;
  deps.store = owned->store.get();
  deps.clock = &owned->clock;
  deps.prices = &owned->prices;
  deps.log = std::move(log);
  deps.claim_outcome = std::move(claim_outcome);
  return OpenWith(env, std::move(deps), std::move(owned));
}

OpenedExecution Execution::Open(const RunEnvironment& env, ExecutionDeps deps) {
  return OpenWith(env, std::move(deps), std::make_unique<Owned>());
}

OpenedExecution Execution::OpenWith(const RunEnvironment& env, ExecutionDeps deps, std::unique_ptr<Owned> owned) {
  if (!deps.log) deps.log = StderrJsonLogger(env);
  if (deps.store == nullptr)
    return internal::Reported(env, deps.log, internal::OutcomeOf(OutcomeKind::kConfigError, "no run store given"),
                              deps.claim_outcome);
  auto start = deps.store->Begin(env.run, env.attempt, env.parameters, env.initial_budget_usd);
  if (!start.ok())
    return internal::Reported(env, deps.log,
                              internal::OutcomeOf(BeginFailureKind(start.status()), start.status().message()),
                              deps.claim_outcome);
  nlohmann::json fields = {{"epoch", start->epoch}, {"cachedCheckpoints", start->completed.size()},
                           {"flow", env.run.flow}};
  if (start->replay) {
    fields["replayOf"] = start->replay->source_run_uid;
    fields["snapshotCheckpoints"] = start->replay->checkpoints.size();
    fields["cut"] = internal::Label(CheckpointKey{start->replay->cut.name, start->replay->cut.occurrence});
  }
  deps.log("info", "execution started", fields);
  OpenedExecution out;
  out.execution.reset(new Execution(env, std::move(deps), std::move(start).value(), std::move(owned)));
  return out;
}

std::unique_ptr<Execution> Execution::FromStart(const RunEnvironment& env, ExecutionDeps deps, ExecutionStart start) {
  return std::unique_ptr<Execution>(new Execution(env, std::move(deps), std::move(start), std::make_unique<Owned>()));
}

Execution::Execution(const RunEnvironment& env, ExecutionDeps deps, ExecutionStart start,
                     std::unique_ptr<Owned> owned)
    : env_(env),
      owned_(std::move(owned)),
      deps_(std::move(deps)),
      epoch_(start.epoch),
      is_replay_(start.replay.has_value()),
      cache_(std::move(start.completed)),
      replay_(std::move(start.replay)),
      budget_usd_(start.budget_usd),
      run_spent_usd_(start.spent_usd) {
  if (deps_.clock == nullptr) deps_.clock = DefaultClock();
  if (deps_.prices == nullptr) deps_.prices = &owned_->prices;
  if (!deps_.exit) deps_.exit = ProcessExitHandler();
  if (!deps_.log) deps_.log = StderrJsonLogger(env_);
}

Execution::~Execution() = default;

// --- Gates and errors -------------------------------------------------------

Status Execution::GateLocked() const {
  if (sticky_) return *sticky_;
  if (finished_)
    return FailedPrecondition("the execution has ended (" + std::string(OutcomeKindName(finished_->kind)) +
                              "); nothing more is recorded");
  return Status::Ok();
}

Status Execution::StoreErrorLocked(const Status& status, std::string_view what) {
  Status s = status.WithContext(what);
  // Bad input the store refused (a name PostgreSQL cannot hold, an oversized
  // value) wrote nothing and leaves the store usable; everything else does not.
  if (status.code() != StatusCode::kInvalidArgument && status.code() != StatusCode::kResourceExhausted && !sticky_)
    sticky_ = s;
  return s;
}

std::optional<Status> Execution::sticky_error() const {
  std::lock_guard l(mu_);
  return sticky_;
}

void Execution::WarnLocked(const std::string& message) { deps_.log("warning", message, nlohmann::json::object()); }

void Execution::Warn(const std::string& message) {
  std::lock_guard l(mu_);
  WarnLocked(message);
}

ExecutionStats Execution::stats() const {
  std::lock_guard l(mu_);
  return stats_;
}

double Execution::run_spent_usd() const {
  std::lock_guard l(mu_);
  return run_spent_usd_;
}

std::optional<Outcome> Execution::finished() const {
  std::lock_guard l(mu_);
  return finished_;
}

HttpTransport* Execution::http() {
  std::lock_guard l(mu_);
  if (deps_.http == nullptr) {
    if (!owned_->http) owned_->http = MakeCppRestTransport();
    deps_.http = owned_->http.get();
  }
  return deps_.http;
}

// --- Identity ---------------------------------------------------------------

StatusOr<CheckpointKey> Execution::Reserve(std::string_view name, CheckpointKind kind,
                                           std::optional<std::string_view> key) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  std::string_view what = kind == CheckpointKind::kWait ? "wait" : "checkpoint";
  if (name.empty() || name.size() > kMaxNameLength)
    return InvalidArgument(std::string(what) + " name must be 1.." + std::to_string(kMaxNameLength) +
                           " characters, got '" + std::string(name.substr(0, 64)) + "'");
  std::string identity(name);
  if (key) {
    identity += '[';
    identity += *key;
    identity += ']';
    if (identity.size() > kMaxNameLength)
      return InvalidArgument(std::string(what) + " identity '" + identity.substr(0, 64) + "...' is " +
                             std::to_string(identity.size()) + " characters, over " + std::to_string(kMaxNameLength) +
                             ": use a shorter key (a hash of it, for instance)");
  }
  auto it = occurrences_.find(identity);
  if (it == occurrences_.end()) it = occurrences_.emplace(identity, 0).first;
  CheckpointKey k{std::move(identity), it->second + 1};
  // Replay: reservations are in program order, so "before the cut" is decided
  // here, not when a (concurrent) body begins.
  bool before_cut = false;
  if (replay_ && !cut_reserved_) {
    if (k.name == replay_->cut.name && k.occurrence == replay_->cut.occurrence) {
      if (!replay_->cut_reached) {  // an earlier execution of a crashed attempt may have recorded it
        Status st = deps_.store->ReplayCutReached();
        if (!st.ok()) return StoreErrorLocked(st, "recording that the replay reached its cut " + internal::Label(k));
        replay_->cut_reached = true;
      }
      cut_reserved_ = true;
      deps_.log("info", "replay reached its cut: from here on every checkpoint runs live",
                {{"checkpoint", k.name}, {"occurrence", k.occurrence}});
    } else {
      before_cut = true;
    }
  }
  ++it->second;
  Reservation& r = reserved_[k];
  r.kind = kind;
  r.before_cut = before_cut;
  return k;
}

StatusOr<Execution::Reservation*> Execution::ReservationLocked(const CheckpointKey& key, CheckpointKind kind,
                                                               std::string_view op) {
  auto it = reserved_.find(key);
  if (it == reserved_.end())
    return InvalidArgument(std::string(op) + ": " + internal::Label(key) + " is not in flight in this execution (never reserved, or finished already)");
  if (it->second.kind != kind)
    return InvalidArgument(std::string(op) + ": " + internal::Label(key) + " was reserved as a " +
                           std::string(CheckpointKindName(it->second.kind)));
  return &it->second;
}

// --- Checkpoints ------------------------------------------------------------

StatusOr<const nlohmann::json*> Execution::FromCacheLocked(const CheckpointKey& key, CheckpointKind kind,
                                                                   const std::string& fingerprint,
                                                                   DivergencePolicy policy) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return static_cast<const nlohmann::json*>(nullptr);
  const CachedCheckpoint& cp = it->second;
  if (cp.kind == kind && cp.fingerprint == fingerprint) {
    ++stats_.cached_checkpoints;
    // A copied row's usage is the replay's source's (inherited): serving it
    // again avoids nothing this run would have paid a second time.
    if (!cp.copied) stats_.saved += cp.usage;
    return &cp.output;
  }
  FLOWRUN_RETURN_IF_ERROR(DivergedLocked(key, kind, fingerprint, cp, "", policy));
  cache_.erase(it);
  return static_cast<const nlohmann::json*>(nullptr);
}

Status Execution::DivergedLocked(const CheckpointKey& key, CheckpointKind kind, const std::string& fingerprint,
                                 const CachedCheckpoint& cp, std::string_view where, DivergencePolicy policy) {
  std::string what = kind == CheckpointKind::kWait ? "wait " : "checkpoint ";
  std::string msg = what + internal::Label(key) + " diverged: it was recorded" + std::string(where) + " as a " +
                    std::string(CheckpointKindName(cp.kind)) + " with fingerprint " + cp.fingerprint +
                    " (attempt " + std::to_string(cp.attempt) + "), but this run reaches it as a " +
                    std::string(CheckpointKindName(kind)) + " with fingerprint " + fingerprint +
                    ". The flow's code or the checkpoint's inputs changed since it was recorded";
  if (policy == DivergencePolicy::kFail) {
    sticky_ = DataLoss(msg + "; refusing to return an output computed for something else "
                             "(set FLOWRUN_ON_DIVERGENCE=rerun to recompute diverged checkpoints)");
    return *sticky_;
  }
  WarnLocked(msg + "; recomputing it (FLOWRUN_ON_DIVERGENCE=rerun)");
  return Status::Ok();
}

StatusOr<std::optional<nlohmann::json>> Execution::FromSnapshotLocked(const CheckpointKey& key, CheckpointKind kind,
                                                                      const std::string& fingerprint,
                                                                      DivergencePolicy policy,
                                                                      const nlohmann::json* wait_schema) {
  using Served = std::optional<nlohmann::json>;
  auto it = replay_->checkpoints.find(key);
  if (it == replay_->checkpoints.end()) return Served();  // new in this code, or the source never completed it
  const CachedCheckpoint& cp = it->second;
  if (cp.kind != kind || cp.fingerprint != fingerprint) {
    FLOWRUN_RETURN_IF_ERROR(
        DivergedLocked(key, kind, fingerprint, cp, " in the replay's source run " + replay_->source_run_uid, policy));
    replay_->checkpoints.erase(it);
    return Served();
  }
  const nlohmann::json* served = &cp.output;
  auto ov = replay_->output_overrides.find(key.name);
  if (ov != replay_->output_overrides.end()) {
    served = &ov->second;
    if (wait_schema) {
      Status valid = ValidateAgainstSchema(*wait_schema, *served);
      if (!valid.ok())
        return InvalidArgument("the replay's output override for wait " + internal::Label(key) +
                               " violates the wait's schema: " + valid.message());
    }
  }
  std::string text = served->dump();
  if (text.size() > env_.max_output_bytes)
    return ResourceExhausted("the replay's output for " + internal::Label(key) + " is " + std::to_string(text.size()) +
                             " bytes, over the cap of " + std::to_string(env_.max_output_bytes) +
                             " (FLOWRUN_MAX_OUTPUT_BYTES)");
  Status st = deps_.store->CheckpointCopied(key, kind, fingerprint, text, cp.usage);
  if (!st.ok()) return StoreErrorLocked(st, "copying checkpoint " + internal::Label(key) + " from the replay's source");
  ++stats_.copied_checkpoints;
  stats_.inherited += cp.usage;
  Served out(*served);
  replay_->checkpoints.erase(it);  // an identity is asked once per execution
  return out;
}

StatusOr<BeginResult> Execution::Begin(const CheckpointKey& key, const std::optional<nlohmann::json>& inputs,
                                       std::optional<DivergencePolicy> policy) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  FLOWRUN_ASSIGN_OR_RETURN(Reservation * r, ReservationLocked(key, CheckpointKind::kStep, "Begin"));
  if (r->begun) return InvalidArgument("Begin: " + internal::Label(key) + " was begun already");
  std::string fp = CheckpointFingerprint(CheckpointKind::kStep, key.name, inputs);
  const DivergencePolicy p = policy.value_or(env_.on_divergence);
  const bool own_row = cache_.count(key) > 0;
  FLOWRUN_ASSIGN_OR_RETURN(const nlohmann::json* cached, FromCacheLocked(key, CheckpointKind::kStep, fp, p));
  BeginResult out;
  if (cached) {
    reserved_.erase(key);  // finished: keeps the map as small as what is in flight
    out.cached = true;
    out.output = *cached;
    return out;
  }
  // A row of this run that diverged is recomputed, never taken from the snapshot.
  if (r->before_cut && !own_row) {
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<nlohmann::json> copied,
                             FromSnapshotLocked(key, CheckpointKind::kStep, fp, p));
    if (copied) {
      reserved_.erase(key);
      out.cached = true;
      out.output = std::move(*copied);
      return out;
    }
  }
  r->begun = true;
  ++stats_.live_checkpoints;
  r->live = true;
  r->fingerprint = std::move(fp);
  return out;
}

StatusOr<bool> Execution::TryStarted(const CheckpointKey& key, int try_number) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  FLOWRUN_ASSIGN_OR_RETURN(Reservation * r, ReservationLocked(key, CheckpointKind::kStep, "TryStarted"));
  if (!r->live)
    return InvalidArgument("TryStarted: " + internal::Label(key) + " is not a live checkpoint awaiting a try");
  if (try_number < 1) return InvalidArgument("TryStarted: try numbers start at 1");
  auto interrupted = deps_.store->CheckpointStarted(key, CheckpointKind::kStep, r->fingerprint, try_number);
  if (!interrupted.ok()) return StoreErrorLocked(interrupted.status(), "checkpoint " + internal::Label(key));
  if (*interrupted) {
    ++stats_.reexecuted_checkpoints;
    WarnLocked("checkpoint " + internal::Label(key) +
               " runs again: an earlier execution started it and was interrupted before its output was stored");
  }
  OpenTry& t = open_[key];
  t.try_number = try_number;
  t.started = deps_.clock->Now();
  t.usage = Usage{};
  return *interrupted;
}

StatusOr<std::string> Execution::Complete(const CheckpointKey& key, std::string_view output_json) {
  auto parsed = nlohmann::json::parse(output_json.begin(), output_json.end(), nullptr, false);
  if (parsed.is_discarded())
    return InvalidArgument("output is not JSON (" + std::to_string(output_json.size()) + " bytes)");
  FLOWRUN_ASSIGN_OR_RETURN(nlohmann::json canonical, Complete(key, parsed));
  return canonical.dump();
}

StatusOr<nlohmann::json> Execution::Complete(const CheckpointKey& key, const nlohmann::json& output) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  FLOWRUN_ASSIGN_OR_RETURN(Reservation * r, ReservationLocked(key, CheckpointKind::kStep, "Complete"));
  auto open = open_.find(key);
  if (open == open_.end())
    return InvalidArgument("Complete: " + internal::Label(key) + " has no running try (call TryStarted first)");
  std::string text;
  try {
    text = output.dump();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("output is not serializable as JSON: ") + e.what());
  }
  if (text.size() > env_.max_output_bytes)
    return ResourceExhausted("output is " + std::to_string(text.size()) + " bytes, over the cap of " +
                             std::to_string(env_.max_output_bytes) +
                             " (FLOWRUN_MAX_OUTPUT_BYTES); store big data as an artifact");
  Status st = deps_.store->CheckpointCompleted(key, CheckpointKind::kStep, r->fingerprint, text,
                                               open->second.started, deps_.clock->Now(), open->second.usage);
  if (!st.ok()) return StoreErrorLocked(st, "checkpoint " + internal::Label(key));
  open_.erase(open);
  reserved_.erase(key);
  // What the caller gets is what a resumed run will get from the cache.
  return nlohmann::json::parse(text);
}

Status Execution::Fail(const CheckpointKey& key, int try_number, bool final_try, std::string_view message) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  FLOWRUN_ASSIGN_OR_RETURN(Reservation * r, ReservationLocked(key, CheckpointKind::kStep, "Fail"));
  if (!r->live) return InvalidArgument("Fail: " + internal::Label(key) + " is not running");
  Status st = deps_.store->CheckpointFailed(key, try_number, final_try, std::string(message));
  if (!st.ok()) return StoreErrorLocked(st, "checkpoint " + internal::Label(key));
  open_.erase(key);
  if (final_try) reserved_.erase(key);
  return Status::Ok();
}

// --- Waits ------------------------------------------------------------------

StatusOr<WaitResult> Execution::ResolveWait(const CheckpointKey& key, const WaitSpec& spec) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  FLOWRUN_ASSIGN_OR_RETURN(Reservation * r, ReservationLocked(key, CheckpointKind::kWait, "ResolveWait"));
  std::string fp = CheckpointFingerprint(CheckpointKind::kWait, key.name, spec.schema);
  const DivergencePolicy policy = spec.on_divergence.value_or(env_.on_divergence);
  const bool own_row = cache_.count(key) > 0;
  FLOWRUN_ASSIGN_OR_RETURN(const nlohmann::json* cached, FromCacheLocked(key, CheckpointKind::kWait, fp, policy));
  WaitResult out;
  if (cached) {
    reserved_.erase(key);  // finished: keeps the map as small as what is in flight
    out.kind = WaitResult::Kind::kAnswered;
    out.answer = *cached;
    return out;
  }
  // Replay: a wait the source answered before the cut keeps its answer.
  if (r->before_cut && !own_row) {
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<nlohmann::json> copied,
                             FromSnapshotLocked(key, CheckpointKind::kWait, fp, policy, &spec.schema));
    if (copied) {
      reserved_.erase(key);
      out.kind = WaitResult::Kind::kAnswered;
      out.answer = std::move(*copied);
      return out;
    }
  }
  WaitRequest req;
  req.key = key;
  req.fingerprint = fp;
  req.question = spec.question;
  req.schema = spec.schema;
  req.timeout = spec.timeout ? spec.timeout : env_.default_wait_timeout;
  req.on_timeout = spec.on_timeout.value_or(env_.default_on_timeout);
  req.default_answer = spec.default_answer;
  if (req.on_timeout == OnTimeout::kUseDefault) {
    if (!req.default_answer)
      return InvalidArgument("wait '" + key.name + "' uses the 'default' timeout policy but has no default answer");
    Status valid = ValidateAgainstSchema(req.schema, *req.default_answer);
    if (!valid.ok())
      return InvalidArgument("wait '" + key.name + "': default answer violates the schema: " + valid.message());
  }
  auto res = deps_.store->ResolveWait(req);
  if (!res.ok()) return StoreErrorLocked(res.status(), "wait " + internal::Label(key));
  if (!res->rejected_early_answer.empty())
    WarnLocked("early answer to wait " + internal::Label(key) + " rejected: " + res->rejected_early_answer);
  switch (res->kind) {
    case WaitResolution::Kind::kAnswered:
      ++stats_.live_checkpoints;
      reserved_.erase(key);  // finished: keeps the map as small as what is in flight
      out.kind = WaitResult::Kind::kAnswered;
      out.answer = std::move(res->answer);
      return out;
    case WaitResolution::Kind::kTimedOutFail:
      reserved_.erase(key);  // finished: keeps the map as small as what is in flight
      out.kind = WaitResult::Kind::kTimedOut;
      out.message = "wait " + internal::Label(key) + " timed out without an answer";
      return out;
    case WaitResolution::Kind::kPending:
      break;
  }
  Outcome o;
  o.kind = OutcomeKind::kWaiting;
  OpenWait w;
  w.name = key.name;
  w.occurrence = key.occurrence;
  w.question = req.question;
  w.schema = req.schema;
  w.asked_at = deps_.clock->Now();
  w.deadline = res->deadline;
  w.on_timeout = req.on_timeout;
  w.default_answer = req.default_answer;
  o.wait = std::move(w);
  out.kind = WaitResult::Kind::kPending;
  out.suspension = Suspension{std::move(o)};
  return out;
}

// --- The end ----------------------------------------------------------------

int Execution::Suspend(const Suspension& suspension) {
  int code;
  {
    std::lock_guard l(mu_);
    if (finished_) return finished_code_;
    // A clean stop with bodies still running (a budget suspension inside one):
    // each try is recorded failed, not final, so the resumed run runs it again
    // without counting a re-execution.
    if (!sticky_) {
      for (const auto& [key, t] : open_) {
        Status st = deps_.store->CheckpointFailed(
            key, t.try_number, false, "suspended: " + std::string(OutcomeKindName(suspension.outcome.kind)));
        if (!st.ok()) {
          (void)StoreErrorLocked(st, "suspending");
          break;
        }
      }
    }
    open_.clear();
    code = FinalizeLocked(sticky_ ? internal::OutcomeForSticky(*sticky_) : suspension.outcome);
  }
  deps_.exit(code);
  return code;
}

int Execution::Finish(const nlohmann::json& result) {
  std::lock_guard l(mu_);
  if (finished_) return finished_code_;
  if (sticky_) return FinalizeLocked(internal::OutcomeForSticky(*sticky_));
  std::string text;
  try {
    text = result.dump();
  } catch (const nlohmann::json::exception& e) {
    return FinalizeLocked(internal::OutcomeOf(OutcomeKind::kFailed,
                                              std::string("the flow's result is not serializable as JSON: ") + e.what()));
  }
  if (text.size() > env_.max_output_bytes)
    return FinalizeLocked(internal::OutcomeOf(OutcomeKind::kFailed, "the flow's result is " + std::to_string(text.size()) +
                                                                        " bytes, over the cap of " +
                                                                        std::to_string(env_.max_output_bytes)));
  Outcome o = internal::OutcomeOf(OutcomeKind::kSucceeded, "");
  o.result = nlohmann::json::parse(text);
  return FinalizeLocked(std::move(o));
}

int Execution::Finish(std::string_view result_json) {
  auto parsed = nlohmann::json::parse(result_json.begin(), result_json.end(), nullptr, false);
  if (parsed.is_discarded())
    return FinishWithError(FlowEndReason::kFlowFailed,
                           "the flow's result is not JSON (" + std::to_string(result_json.size()) + " bytes)");
  return Finish(parsed);
}

int Execution::FinishWithError(FlowEndReason reason, std::string_view message) {
  std::lock_guard l(mu_);
  if (finished_) return finished_code_;
  if (sticky_) return FinalizeLocked(internal::OutcomeForSticky(*sticky_));
  switch (reason) {
    case FlowEndReason::kConfigError:
      return FinalizeLocked(internal::OutcomeOf(OutcomeKind::kConfigError, std::string(message)));
    case FlowEndReason::kWaitTimedOut:
      return FinalizeLocked(
          internal::OutcomeOf(OutcomeKind::kFailed, std::string(message), FailureReason::kWaitTimedOut));
    case FlowEndReason::kFlowFailed:
      break;
  }
  return FinalizeLocked(internal::OutcomeOf(OutcomeKind::kFailed, std::string(message), FailureReason::kFlowFailed));
}

int Execution::FinalizeLocked(Outcome o) {
  if (deps_.claim_outcome) deps_.claim_outcome();  // may not return (SIGTERM came first)
  o.live_checkpoints = stats_.live_checkpoints;
  o.cached_checkpoints = stats_.cached_checkpoints;
  o.copied_checkpoints = stats_.copied_checkpoints;
  o.spent = stats_.spent_here;
  o.saved = stats_.saved;
  o.run_spent_usd = run_spent_usd_;
  if (o.kind != OutcomeKind::kFenced) {
    FinishRequest f;
    f.outcome = o.kind;
    f.reason = o.reason;
    f.result = o.result;
    f.error = o.error;
    if (o.wait) f.open_wait = o.wait->name;
    f.live_checkpoints = o.live_checkpoints;
    f.cached_checkpoints = o.cached_checkpoints;
    f.reexecuted_checkpoints = stats_.reexecuted_checkpoints;
    f.saved = o.saved;
    Status st = deps_.store->Finish(f);
    if (st.code() == StatusCode::kAborted) {
      o = internal::OutcomeOf(OutcomeKind::kFenced, st.message());
    } else if (!st.ok()) {
      deps_.log("error", "could not record the outcome", {{"error", st.ToString()}});
      if (o.kind == OutcomeKind::kSucceeded || IsSuspension(o.kind))
        o = internal::OutcomeOf(OutcomeKind::kDatabaseUnavailable, st.message());
    }
  }
  // The result lives in PostgreSQL; the termination message carries it only if small.
  if (o.result && o.result->dump().size() > 1024) o.result.reset();
  finished_ = o;
  finished_code_ = internal::Report(env_, deps_.log, std::move(o));
  return finished_code_;
}

}  // namespace flowrun
