// PostgresRunAdmin: RunAdmin on PostgreSQL. Writes lock the run row
// (FOR UPDATE), so two answers recorded at once serialize and exactly one wins.
#include "flowrun/schema_validator.h"
#include "postgres/pg_session.h"

namespace flowrun {

namespace {

// A replay's answers and output overrides are each capped at this many bytes
// of compact JSON: they are stored in a row, and the controller's request
// carries them (kInvalidArgument beyond it).
constexpr size_t kMaxReplayValueBytes = 256 * 1024;

// Who recorded a replay's early answers (AnswerOptions::answered_by), followed
// by the source's name (or uid).
constexpr const char* kReplayAnsweredByPrefix = "replay:";

// The replay columns of run_state and replay_info (ReplayInfoFromRow reads
// them in this order): the replays row (all NULL when the run is no replay)
// and what the engine has served from the snapshot so far — the checkpoints
// recorded as copied and their inherited usage.
constexpr const char* kReplayColumns =
    "rp.source_run_uid, rp.source_name, rp.cut_name, rp.cut_occurrence, extract(epoch FROM rp.prepared_at),"
    " rp.overrides::text, rp.snapshot_checkpoints, rp.cut_reached, cp.n, cp.llm_calls, cp.input_tokens,"
    " cp.output_tokens, cp.cached_tokens, cp.cost_usd, cp.unknown_cost_calls";
constexpr const char* kReplayJoins =
    " LEFT JOIN flowrun.replays rp ON rp.run_uid = $1"
    " CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(llm_calls), 0) AS llm_calls,"
    "   coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,"
    "   coalesce(sum(cached_tokens), 0) AS cached_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,"
    "   coalesce(sum(unknown_cost_calls), 0) AS unknown_cost_calls"
    // Only a replay has copied rows: for any other run the outer-only
    // condition is a one-time filter and the checkpoints are not scanned
    // (GetRun is on every reconcile).
    "   FROM flowrun.checkpoints WHERE run_uid = $1 AND copied AND rp.run_uid IS NOT NULL) cp";

// kInvalidArgument when `value` is more than kMaxReplayValueBytes of compact
// JSON; `what` names it in the message.
Status CheckReplayValueSize(const std::string& what, const nlohmann::json& value) {
  const size_t bytes = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
  if (bytes <= kMaxReplayValueBytes) return Status();
  return InvalidArgument(what + " is " + std::to_string(bytes) + " bytes of JSON; at most " +
                         std::to_string(kMaxReplayValueBytes) + " are accepted");
}

pg::Statements RunAdminStatements() {
  return {
      // Everything GetRun returns, in one statement: one round trip and one
      // snapshot (a statement sees one), where five statements in a
      // transaction took seven. The attempts come as a JSON array of arrays
      // (column order of kAttemptColumns below).
      {"run_state",
       "SELECT r.namespace, r.name, r.flow, r.status, r.epoch, r.attempt, r.budget_usd, r.result::text, r.error,"
       "  r.failure_reason,"
       "  s.calls, s.input_tokens, s.output_tokens, s.cached_tokens, s.cost_usd, s.unknown_cost_calls,"
       "  (SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = $1 AND status = 'completed'),"
       "  w.name, w.occurrence, w.question, w.schema::text, extract(epoch FROM w.asked_at),"
       "  extract(epoch FROM w.deadline), w.on_timeout, w.default_answer::text, w.answer IS NOT NULL,"
       "  (SELECT coalesce(json_agg(json_build_array(a.epoch, a.attempt, extract(epoch FROM a.started_at),"
       "     extract(epoch FROM a.finished_at), a.outcome, a.error, a.live_checkpoints, a.cached_checkpoints,"
       "     a.reexecuted_checkpoints, a.saved_llm_calls, a.saved_input_tokens, a.saved_output_tokens,"
       "     a.saved_cached_tokens, a.saved_usd, a.failure_reason) ORDER BY a.epoch), '[]')::text"
       "   FROM flowrun.attempts a WHERE a.run_uid = $1),"
       "  s.unfinished_calls, " + std::string(kReplayColumns) + ", s.top_models, s.other_models,"
       // The most expensive priced calls ($3 of them): a top-N sort of the
       // run's calls, so 10,000 calls return as few rows as 10.
       "  (SELECT coalesce(json_agg(json_build_array(t.checkpoint_name, t.occurrence, t.model, t.attempt,"
       "     t.input_tokens, t.output_tokens, t.cached_tokens, t.latency_ms, t.cost_usd)"
       "     ORDER BY t.cost_usd DESC, t.epoch, t.seq), '[]')::text"
       "   FROM (SELECT checkpoint_name, occurrence, model, attempt, input_tokens, output_tokens, cached_tokens,"
       "     latency_ms, cost_usd, epoch, seq FROM flowrun.llm_calls"
       "     WHERE run_uid = $1 AND state = 'completed' AND cost_usd IS NOT NULL"
       "     ORDER BY cost_usd DESC, epoch, seq LIMIT $3) t)"
       " FROM flowrun.runs r"
       // Usage counts completed calls; a call still "started" was cut off by
       // the process's death: counted apart, its cost unknown. The totals are
       // summed from the per-model usage (one pass over the calls), of which
       // the $2 models that spent most come as a JSON array of
       // [model, calls, in, out, cached, usd, unpriced calls], the rest as a count.
       " CROSS JOIN LATERAL (SELECT coalesce(sum(m.calls), 0) AS calls, coalesce(sum(m.input_tokens), 0) AS input_tokens,"
       "   coalesce(sum(m.output_tokens), 0) AS output_tokens, coalesce(sum(m.cached_tokens), 0) AS cached_tokens,"
       "   coalesce(sum(m.cost_usd), 0) AS cost_usd, coalesce(sum(m.unknown_cost_calls), 0) AS unknown_cost_calls,"
       "   (SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = $1 AND state = 'started') AS unfinished_calls,"
       "   coalesce(json_agg(json_build_array(m.model, m.calls, m.input_tokens, m.output_tokens, m.cached_tokens,"
       "     m.cost_usd, m.unknown_cost_calls) ORDER BY m.pos) FILTER (WHERE m.pos <= $2), '[]')::text AS top_models,"
       "   count(*) FILTER (WHERE m.pos > $2) AS other_models"
       "   FROM (SELECT model, count(*) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
       "     sum(cached_tokens) AS cached_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,"
       "     count(*) FILTER (WHERE cost_usd IS NULL) AS unknown_cost_calls,"
       "     row_number() OVER (ORDER BY coalesce(sum(cost_usd), 0) DESC, model) AS pos"
       "     FROM flowrun.llm_calls WHERE run_uid = $1 AND state = 'completed' GROUP BY model) m) s"
       " LEFT JOIN LATERAL (SELECT name, occurrence, question, schema, asked_at, deadline, on_timeout,"
       "   default_answer, answer FROM flowrun.waits"
       "   WHERE run_uid = $1 AND question IS NOT NULL AND consumed_at IS NULL"
       "   ORDER BY asked_at DESC LIMIT 1) w ON true" +
           std::string(kReplayJoins) + " WHERE r.run_uid = $1"},
      {"lock_run", "SELECT status FROM flowrun.runs WHERE run_uid = $1 FOR UPDATE"},
      {"ensure_run",
       "INSERT INTO flowrun.runs (run_uid) VALUES ($1) ON CONFLICT DO NOTHING"},
      {"asked_wait",
       "SELECT occurrence, schema::text, answer IS NOT NULL, answered_by FROM flowrun.waits"
       " WHERE run_uid = $1 AND name = $2 AND question IS NOT NULL AND consumed_at IS NULL"
       " ORDER BY occurrence LIMIT 1"},
      {"answer_asked",
       "UPDATE flowrun.waits SET answer = $4::jsonb, answered_at = now(), answered_by = $5"
       " WHERE run_uid = $1 AND name = $2 AND occurrence = $3 AND answer IS NULL"},
      {"pending_early",
       "SELECT occurrence, answered_by FROM flowrun.waits"
       " WHERE run_uid = $1 AND name = $2 AND question IS NULL AND answer IS NOT NULL"},
      {"next_occurrence",
       "SELECT coalesce(max(occurrence), 0) + 1 FROM flowrun.waits WHERE run_uid = $1 AND name = $2"},
      {"insert_early",
       "INSERT INTO flowrun.waits (run_uid, name, occurrence, answer, answered_at, answered_by)"
       " VALUES ($1, $2, $3, $4::jsonb, now(), $5)"},
      {"set_budget",
       "INSERT INTO flowrun.runs AS r (run_uid, budget_usd, budget_set) VALUES ($1, $2::double precision, true)"
       " ON CONFLICT (run_uid) DO UPDATE SET budget_usd = EXCLUDED.budget_usd, budget_set = true, updated_at = now()"},
      {"due_wait",
       "SELECT name, occurrence, on_timeout, default_answer::text FROM flowrun.waits"
       " WHERE run_uid = $1 AND question IS NOT NULL AND consumed_at IS NULL AND answer IS NULL"
       "  AND deadline IS NOT NULL AND deadline <= to_timestamp($2)"
       " ORDER BY occurrence LIMIT 1"},
      {"fail_run",
       "UPDATE flowrun.runs SET status = 'failed', failure_reason = 'wait_timed_out', error = $2,"
       " epoch = epoch + 1, open_wait = NULL, updated_at = now() WHERE run_uid = $1"},
      {"cancel_run",
       "INSERT INTO flowrun.runs AS r (run_uid, status, error) VALUES ($1, 'cancelled', $2)"
       " ON CONFLICT (run_uid) DO UPDATE SET status = 'cancelled', error = EXCLUDED.error,"
       "  epoch = r.epoch + 1, open_wait = NULL, updated_at = now()"},
      {"delete_runs", "DELETE FROM flowrun.runs WHERE run_uid = $1"},
      {"delete_attempts", "DELETE FROM flowrun.attempts WHERE run_uid = $1"},
      {"delete_checkpoints", "DELETE FROM flowrun.checkpoints WHERE run_uid = $1"},
      {"delete_failures", "DELETE FROM flowrun.checkpoint_failures WHERE run_uid = $1"},
      {"delete_llm_calls", "DELETE FROM flowrun.llm_calls WHERE run_uid = $1"},
      {"delete_waits", "DELETE FROM flowrun.waits WHERE run_uid = $1"},
      {"delete_artifacts", "DELETE FROM flowrun.artifacts WHERE run_uid = $1"},
      {"delete_replays", "DELETE FROM flowrun.replays WHERE run_uid = $1"},
      {"delete_replay_checkpoints", "DELETE FROM flowrun.replay_checkpoints WHERE run_uid = $1"},
      {"delete_replay_artifacts", "DELETE FROM flowrun.replay_artifacts WHERE run_uid = $1"},
      // PrepareReplay (flowrun/replay.h): the replay's row is created with the
      // request's identity if missing (an existing row keeps its own), then
      // locked with what decides whether it may become this replay.
      {"ensure_replay_run",
       "INSERT INTO flowrun.runs (run_uid, namespace, name, flow) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"},
      {"lock_replay_run",
       "SELECT status, (SELECT count(*) FROM flowrun.attempts WHERE run_uid = $1) FROM flowrun.runs"
       " WHERE run_uid = $1 FOR UPDATE"},
      {"replay_source", "SELECT source_run_uid FROM flowrun.replays WHERE run_uid = $1"},
      {"replay_info", "SELECT " + std::string(kReplayColumns) + " FROM (SELECT 1) one" + kReplayJoins +
                          " WHERE rp.run_uid IS NOT NULL"},
      // The source's row, held (FOR SHARE) so it is not deleted mid-copy.
      {"lock_source", "SELECT 1 FROM flowrun.runs WHERE run_uid = $1 FOR SHARE"},
      {"snapshot_checkpoints",
       "INSERT INTO flowrun.replay_checkpoints (run_uid, name, occurrence, kind, fingerprint, output, attempt,"
       "  llm_calls, input_tokens, output_tokens, cached_tokens, cost_usd, unknown_cost_calls)"
       " SELECT $1::text, name, occurrence, kind, fingerprint, output, attempt, llm_calls, input_tokens, output_tokens,"
       "  cached_tokens, cost_usd, unknown_cost_calls"
       " FROM flowrun.checkpoints WHERE run_uid = $2 AND status = 'completed'"},
      // The artifacts saved inside the snapshotted checkpoints (checkpoint is
      // "name#occurrence", SaveArtifact's label), with their versions. Joined
      // to the snapshot just written, not to the source's live rows: an
      // artifact is copied only with its checkpoint.
      {"snapshot_artifacts",
       "INSERT INTO flowrun.replay_artifacts (run_uid, name, version, content_type, data, size_bytes, sha256,"
       "  checkpoint, created_at)"
       " SELECT $1::text, a.name, a.version, a.content_type, a.data, a.size_bytes, a.sha256, a.checkpoint, a.created_at"
       " FROM flowrun.artifacts a WHERE a.run_uid = $2 AND a.checkpoint <> '' AND EXISTS ("
       "  SELECT 1 FROM flowrun.replay_checkpoints s"
       "  WHERE s.run_uid = $1 AND s.name || '#' || s.occurrence::text = a.checkpoint)"},
      {"snapshot_has_name",
       "SELECT EXISTS (SELECT 1 FROM flowrun.replay_checkpoints WHERE run_uid = $1 AND name = $2)"},
      {"insert_replay",
       "INSERT INTO flowrun.replays (run_uid, source_run_uid, source_name, cut_name, cut_occurrence, overrides,"
       "  snapshot_checkpoints) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)"},
      {"list_checkpoints",
       "SELECT name, occurrence, kind, status, fingerprint, attempt, starts, reexecutions,"
       " extract(epoch FROM started_at), extract(epoch FROM finished_at), duration_ms, llm_calls,"
       " input_tokens, output_tokens, cached_tokens, cost_usd, unknown_cost_calls, error, copied"
       " FROM flowrun.checkpoints WHERE run_uid = $1 ORDER BY started_at NULLS LAST, name, occurrence"},
      {"list_failures",
       "SELECT name, occurrence, attempt, try_number, message, extract(epoch FROM at)"
       " FROM flowrun.checkpoint_failures WHERE run_uid = $1 ORDER BY at, try_number"},
      {"usage_by_model",
       "SELECT model, count(*) FILTER (WHERE state = 'completed'),"
       " coalesce(sum(input_tokens) FILTER (WHERE state = 'completed'), 0),"
       " coalesce(sum(output_tokens) FILTER (WHERE state = 'completed'), 0),"
       " coalesce(sum(cached_tokens) FILTER (WHERE state = 'completed'), 0),"
       " coalesce(sum(cost_usd) FILTER (WHERE state = 'completed'), 0),"
       " count(*) FILTER (WHERE state = 'completed' AND cost_usd IS NULL),"
       " count(*) FILTER (WHERE state = 'started')"
       " FROM flowrun.llm_calls WHERE run_uid = $1 AND state IN ('completed', 'started')"
       " GROUP BY model ORDER BY model"},
      {"checkpoint_output",
       "SELECT output::text FROM flowrun.checkpoints"
       " WHERE run_uid = $1 AND name = $2 AND occurrence = $3 AND status = 'completed'"},
      {"list_artifacts",
       "SELECT name, version, content_type, size_bytes, sha256, checkpoint, extract(epoch FROM created_at)"
       " FROM flowrun.artifacts WHERE run_uid = $1 ORDER BY name, version"},
      {"load_artifact",
       "SELECT name, version, content_type, size_bytes, sha256, checkpoint, extract(epoch FROM created_at), data"
       " FROM flowrun.artifacts WHERE run_uid = $1 AND name = $2 AND ($3 = 0 OR version = $3)"
       " ORDER BY version DESC LIMIT 1"},
  };
}

Usage UsageFromRow(const pqxx::row& r, int first) {
  Usage u;
  u.llm_calls = r[first].as<int64_t>();
  u.input_tokens = r[first + 1].as<int64_t>();
  u.output_tokens = r[first + 2].as<int64_t>();
  u.cached_tokens = r[first + 3].as<int64_t>();
  u.cost_usd = r[first + 4].as<double>();
  u.unknown_cost_calls = r[first + 5].as<int64_t>();
  return u;
}

std::optional<TimePoint> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return pg::FromEpochSeconds(f.as<double>());
}

ArtifactInfo ArtifactInfoFromRow(const pqxx::row& r) {
  ArtifactInfo a;
  a.name = r[0].as<std::string>();
  a.version = r[1].as<int>();
  a.content_type = r[2].as<std::string>();
  a.size_bytes = r[3].as<int64_t>();
  a.sha256 = r[4].as<std::string>();
  a.checkpoint = r[5].as<std::string>();
  a.created_at = pg::FromEpochSeconds(r[6].as<double>());
  return a;
}

// The attempts column of run_state: a JSON array of
// [epoch, attempt, started_at, finished_at, outcome, error, live, cached,
//  reexecuted, saved calls, saved in, saved out, saved cached, saved usd,
//  failure_reason] arrays, oldest first. Times are epoch seconds (null:
// still running).
StatusOr<std::vector<AttemptRecord>> AttemptsFromJson(const std::string& uid, const char* text) {
  std::vector<AttemptRecord> out;
  nlohmann::json rows = nlohmann::json::parse(text);
  for (const auto& a : rows) {
    AttemptRecord rec;
    rec.epoch = a[0].get<int64_t>();
    rec.attempt = a[1].get<int>();
    rec.started_at = pg::FromEpochSeconds(a[2].get<double>());
    if (!a[3].is_null()) rec.finished_at = pg::FromEpochSeconds(a[3].get<double>());
    const std::string outcome = a[4].get<std::string>();
    if (outcome != "running") {
      rec.outcome = ParseOutcomeKind(outcome);
      if (!rec.outcome)
        return DataLoss("attempt " + std::to_string(rec.attempt) + " of run " + uid + " has outcome '" + outcome +
                        "', which this build does not know");
    }
    rec.error = a[5].get<std::string>();
    rec.live_checkpoints = a[6].get<int64_t>();
    rec.cached_checkpoints = a[7].get<int64_t>();
    rec.reexecuted_checkpoints = a[8].get<int64_t>();
    rec.saved.llm_calls = a[9].get<int64_t>();
    rec.saved.input_tokens = a[10].get<int64_t>();
    rec.saved.output_tokens = a[11].get<int64_t>();
    rec.saved.cached_tokens = a[12].get<int64_t>();
    rec.saved.cost_usd = a[13].get<double>();
    rec.reason = ParseFailureReason(a[14].get<std::string>()).value_or(FailureReason::kFlowFailed);
    out.push_back(std::move(rec));
  }
  return out;
}

// run_state's top_models: [model, calls, in, out, cached, usd, unpriced] arrays.
std::vector<ModelUsage> TopModelsFromJson(const char* text) {
  std::vector<ModelUsage> out;
  for (const auto& m : nlohmann::json::parse(text)) {
    ModelUsage u;
    u.model = m[0].get<std::string>();
    u.usage.llm_calls = m[1].get<int64_t>();
    u.usage.input_tokens = m[2].get<int64_t>();
    u.usage.output_tokens = m[3].get<int64_t>();
    u.usage.cached_tokens = m[4].get<int64_t>();
    u.usage.cost_usd = m[5].get<double>();
    u.usage.unknown_cost_calls = m[6].get<int64_t>();
    out.push_back(std::move(u));
  }
  return out;
}

// run_state's top calls: [checkpoint, occurrence, model, attempt, in, out,
// cached, latency ms, usd] arrays (checkpoint and occurrence null outside one).
std::vector<CallCost> TopCallsFromJson(const char* text) {
  std::vector<CallCost> out;
  for (const auto& c : nlohmann::json::parse(text)) {
    CallCost call;
    if (!c[0].is_null()) call.checkpoint = CheckpointKey{c[0].get<std::string>(), c[1].is_null() ? 1 : c[1].get<int>()};
    call.model = c[2].get<std::string>();
    call.attempt = c[3].get<int>();
    call.input_tokens = c[4].get<int64_t>();
    call.output_tokens = c[5].get<int64_t>();
    call.cached_tokens = c[6].get<int64_t>();
    call.latency_ms = c[7].get<double>();
    call.cost_usd = c[8].get<double>();
    out.push_back(std::move(call));
  }
  return out;
}

// The kReplayColumns of a row, from column `first`; nullopt when the run is
// no replay (the replays columns are NULL).
StatusOr<std::optional<ReplayInfo>> ReplayInfoFromRow(const std::string& uid, const pqxx::row& r, int first) {
  if (r[first].is_null()) return std::optional<ReplayInfo>();
  ReplayInfo info;
  info.source_run_uid = r[first].as<std::string>();
  info.source_name = r[first + 1].as<std::string>();
  info.cut.name = r[first + 2].as<std::string>();
  info.cut.occurrence = r[first + 3].as<int>();
  info.prepared_at = pg::FromEpochSeconds(r[first + 4].as<double>());
  nlohmann::json overrides = nlohmann::json::parse(r[first + 5].c_str());
  if (!overrides.is_object()) return DataLoss("replay " + uid + " has overrides that are not a JSON object");
  for (auto it = overrides.begin(); it != overrides.end(); ++it) info.output_overrides[it.key()] = it.value();
  info.snapshot_checkpoints = r[first + 6].as<int64_t>();
  info.cut_reached = r[first + 7].as<bool>();
  info.copied_checkpoints = r[first + 8].as<int64_t>();
  info.inherited = UsageFromRow(r, first + 9);
  return std::optional<ReplayInfo>(std::move(info));
}

template <typename T>
StatusOr<T> Flatten(StatusOr<StatusOr<T>> r) {
  if (!r.ok()) return r.status();
  return std::move(*r);
}

class PostgresRunAdmin final : public RunAdmin {
 public:
  explicit PostgresRunAdmin(const PostgresOptions& options) : session_(options, RunAdminStatements(), /*check_schema=*/true) {}
  Status Connect() { return session_.Connect(); }

  StatusOr<RunState> GetRun(const std::string& uid) override {
    return Flatten(session_.Run("reading a run", true, [&](pqxx::connection& c) -> StatusOr<RunState> {
      pqxx::nontransaction tx(c);  // one statement: one snapshot
      pqxx::result res = tx.exec_prepared("run_state", uid, kRunStateTopModels, kRunStateTopCalls);
      if (res.empty()) return NotFound("run " + uid + " has no state in the database");
      const pqxx::row& r = res[0];
      RunState s;
      s.uid = uid;
      s.namespace_ = r[0].as<std::string>();
      s.name = r[1].as<std::string>();
      s.flow = r[2].as<std::string>();
      auto status = ParseRunStatus(r[3].as<std::string>());
      if (!status) return DataLoss("run " + uid + " has status '" + r[3].as<std::string>() +
                                   "', which this build does not know");
      s.status = *status;
      s.epoch = r[4].as<int64_t>();
      s.attempt = r[5].as<int>();
      if (!r[6].is_null()) s.budget_usd = r[6].as<double>();
      if (!r[7].is_null()) s.result = nlohmann::json::parse(r[7].c_str());
      s.error = r[8].as<std::string>();
      s.failure_reason = ParseFailureReason(r[9].as<std::string>()).value_or(FailureReason::kFlowFailed);
      s.spent = UsageFromRow(r, 10);
      s.spent.unfinished_calls = r[27].as<int64_t>();  // after the attempts
      s.checkpoints_completed = r[16].as<int64_t>();
      auto attempts = AttemptsFromJson(uid, r[26].c_str());
      if (!attempts.ok()) return attempts.status();
      for (AttemptRecord& rec : *attempts) {
        s.live_checkpoints += rec.live_checkpoints;
        s.cached_checkpoints += rec.cached_checkpoints;
        s.reexecuted_checkpoints += rec.reexecuted_checkpoints;
        s.saved += rec.saved;
        s.attempts.push_back(std::move(rec));
      }
      auto replay = ReplayInfoFromRow(uid, r, 28);
      if (!replay.ok()) return replay.status();
      s.replay = std::move(*replay);
      s.top_models = TopModelsFromJson(r[43].c_str());
      s.other_models = r[44].as<int64_t>();
      s.top_calls = TopCallsFromJson(r[45].c_str());
      bool can_answer = !IsTerminal(s.status);
      if (can_answer && !r[17].is_null() && !r[25].as<bool>()) {
        OpenWait ow;
        ow.name = r[17].as<std::string>();
        ow.occurrence = r[18].as<int>();
        ow.question = r[19].as<std::string>();
        ow.schema = r[20].is_null() ? nlohmann::json::object() : nlohmann::json::parse(r[20].c_str());
        ow.asked_at = pg::FromEpochSeconds(r[21].as<double>());
        ow.deadline = OptTime(r[22]);
        ow.on_timeout = ParseOnTimeout(r[23].as<std::string>()).value_or(OnTimeout::kFail);
        if (!r[24].is_null()) ow.default_answer = nlohmann::json::parse(r[24].c_str());
        s.open_wait = std::move(ow);
      }
      return s;
    }));
  }

  StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& uid) override {
    return session_.Run("listing checkpoints", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      std::vector<CheckpointInfo> out;
      for (const auto& r : tx.exec_prepared("list_checkpoints", uid)) {
        CheckpointInfo i;
        i.key = {r[0].as<std::string>(), r[1].as<int>()};
        i.kind = r[2].as<std::string>() == "wait" ? CheckpointKind::kWait : CheckpointKind::kStep;
        i.status = r[3].as<std::string>();
        i.fingerprint = r[4].as<std::string>();
        i.attempt = r[5].as<int>();
        i.starts = r[6].as<int>();
        i.reexecutions = r[7].as<int>();
        i.started_at = OptTime(r[8]);
        i.finished_at = OptTime(r[9]);
        if (!r[10].is_null()) i.duration_ms = r[10].as<double>();
        i.usage = UsageFromRow(r, 11);
        i.error = r[17].as<std::string>();
        i.copied = r[18].as<bool>();
        out.push_back(std::move(i));
      }
      return out;
    });
  }

  StatusOr<std::vector<CheckpointFailure>> ListFailures(const std::string& uid) override {
    return session_.Run("listing failures", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      std::vector<CheckpointFailure> out;
      for (const auto& r : tx.exec_prepared("list_failures", uid)) {
        out.push_back({r[0].as<std::string>(), r[1].as<int>(), r[2].as<int>(), r[3].as<int>(),
                       r[4].as<std::string>(), pg::FromEpochSeconds(r[5].as<double>())});
      }
      return out;
    });
  }

  StatusOr<std::vector<ModelUsage>> UsageByModel(const std::string& uid) override {
    return session_.Run("summing usage by model", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      std::vector<ModelUsage> out;
      for (const auto& r : tx.exec_prepared("usage_by_model", uid)) {
        Usage u = UsageFromRow(r, 1);
        u.unfinished_calls = r[7].as<int64_t>();
        out.push_back({r[0].as<std::string>(), u});
      }
      return out;
    });
  }

  StatusOr<nlohmann::json> GetCheckpointOutput(const std::string& uid, const CheckpointKey& key) override {
    return Flatten(session_.Run("reading a checkpoint output", true,
                                [&](pqxx::connection& c) -> StatusOr<nlohmann::json> {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("checkpoint_output", uid, key.name, key.occurrence);
      if (r.empty()) return NotFound("no completed checkpoint " + key.name + "#" + std::to_string(key.occurrence));
      return r[0][0].is_null() ? nlohmann::json(nullptr) : nlohmann::json::parse(r[0][0].c_str());
    }));
  }

  StatusOr<RecordedAnswer> RecordAnswer(const std::string& uid, const std::string& wait_name,
                                        const nlohmann::json& answer, const AnswerOptions& opts) override {
    if (wait_name.empty() || wait_name.size() > 253) return InvalidArgument("wait name must be 1..253 characters");
    return Flatten(session_.Run("recording an answer", true, [&](pqxx::connection& c) -> StatusOr<RecordedAnswer> {
      pqxx::work tx(c);
      StatusOr<RecordedAnswer> recorded = RecordAnswerIn(tx, uid, wait_name, answer, opts);
      if (recorded.ok()) tx.commit();
      return recorded;
    }));
  }

  StatusOr<ReplayInfo> PrepareReplay(const ReplayRequest& req) override {
    if (req.run_uid.empty() || req.source_run_uid.empty())
      return InvalidArgument("a replay needs its run uid and its source's");
    if (req.run_uid == req.source_run_uid) return InvalidArgument("a run cannot replay itself");
    if (req.cut.name.empty() || req.cut.occurrence < 1)
      return InvalidArgument("a replay's cut needs a checkpoint name and an occurrence of at least 1");
    nlohmann::json overrides = nlohmann::json::object();
    for (const auto& [name, output] : req.output_overrides) {
      if (Status st = CheckReplayValueSize("the output override for '" + name + "'", output); !st.ok()) return st;
      overrides[name] = output;
    }
    for (const auto& [wait, answer] : req.answers) {
      if (wait.empty() || wait.size() > 253) return InvalidArgument("wait name must be 1..253 characters");
      if (Status st = CheckReplayValueSize("the answer for '" + wait + "'", answer); !st.ok()) return st;
    }
    const std::string overrides_text = overrides.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const std::string flow = req.flow.empty() ? "default" : req.flow;
    return Flatten(session_.Run("preparing a replay", true, [&](pqxx::connection& c) -> StatusOr<ReplayInfo> {
      pqxx::work tx(c);
      tx.exec_prepared("ensure_replay_run", req.run_uid, req.namespace_, req.name, flow);
      pqxx::result run = tx.exec_prepared("lock_replay_run", req.run_uid);
      if (run.empty()) return Internal("the replay's run row vanished while it was locked");
      // Already prepared: the same source is this replay (a repeated call
      // changes nothing); another source is another replay.
      if (pqxx::result prepared = tx.exec_prepared("replay_source", req.run_uid); !prepared.empty()) {
        std::string source = prepared[0][0].as<std::string>();
        if (source != req.source_run_uid)
          return AlreadyExists("run " + req.run_uid + " is already a replay of run " + source);
        return ReadReplayInfo(tx, req.run_uid);
      }
      const std::string status = run[0][0].as<std::string>();
      if (int64_t attempts = run[0][1].as<int64_t>(); attempts > 0 || status != "pending")
        return AlreadyExists("run " + req.run_uid + " already exists (" + status + ", " + std::to_string(attempts) +
                             " attempts); only a run that has not started can become a replay");
      if (tx.exec_prepared("lock_source", req.source_run_uid).empty())
        return NotFound("replay source run " + req.source_run_uid + " has no state in the database");
      const int64_t snapshot = tx.exec_prepared("snapshot_checkpoints", req.run_uid, req.source_run_uid).affected_rows();
      tx.exec_prepared("snapshot_artifacts", req.run_uid, req.source_run_uid);
      for (const auto& [name, output] : req.output_overrides) {
        if (!tx.exec_prepared("snapshot_has_name", req.run_uid, name)[0][0].as<bool>())
          return InvalidArgument("the output override names checkpoint '" + name + "', which run " +
                                 req.source_run_uid + " never completed");
      }
      tx.exec_prepared("insert_replay", req.run_uid, req.source_run_uid, req.source_name, req.cut.name,
                       req.cut.occurrence, overrides_text, snapshot);
      AnswerOptions early;
      early.allow_early = true;
      early.answered_by = kReplayAnsweredByPrefix + (req.source_name.empty() ? req.source_run_uid : req.source_name);
      for (const auto& [wait, answer] : req.answers) {
        StatusOr<RecordedAnswer> recorded = RecordAnswerIn(tx, req.run_uid, wait, answer, early);
        // An answer already recorded for that wait (before the replay was
        // prepared) is kept: the first answer wins, as for RecordAnswer.
        if (!recorded.ok() && recorded.status().code() != StatusCode::kAlreadyExists) return recorded.status();
      }
      StatusOr<ReplayInfo> info = ReadReplayInfo(tx, req.run_uid);
      if (info.ok()) tx.commit();
      return info;
    }));
  }

 private:
  StatusOr<ReplayInfo> ReadReplayInfo(pqxx::work& tx, const std::string& uid) {
    pqxx::result r = tx.exec_prepared("replay_info", uid);
    if (r.empty()) return NotFound("run " + uid + " is not a prepared replay");
    auto info = ReplayInfoFromRow(uid, r[0], 0);
    if (!info.ok()) return info.status();
    return std::move(**info);
  }

  // RecordAnswer inside the caller's transaction (which commits it when this
  // returns OK): the one code path of every answer, PrepareReplay's too.
  StatusOr<RecordedAnswer> RecordAnswerIn(pqxx::work& tx, const std::string& uid, const std::string& wait_name,
                                          const nlohmann::json& answer, const AnswerOptions& opts) {
    std::string text = answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (opts.allow_early) tx.exec_prepared("ensure_run", uid);
    pqxx::result run = tx.exec_prepared("lock_run", uid);
    if (run.empty()) return NotFound("run " + uid + " has no state in the database");
    std::string status = run[0][0].as<std::string>();
    if (auto st = ParseRunStatus(status); !st || IsTerminal(*st))
      return FailedPrecondition("run is " + status + "; it takes no more answers");
    pqxx::result asked = tx.exec_prepared("asked_wait", uid, wait_name);
    if (!asked.empty()) {
      int occ = asked[0][0].as<int>();
      if (asked[0][2].as<bool>())
        return AlreadyExists("wait '" + wait_name + "' was already answered (by " +
                             asked[0][3].as<std::string>() + "); the first answer wins");
      nlohmann::json schema =
          asked[0][1].is_null() ? nlohmann::json::object() : nlohmann::json::parse(asked[0][1].c_str());
      Status valid = ValidateAgainstSchema(schema, answer);
      if (!valid.ok())
        return InvalidArgument("answer to '" + wait_name + "' does not match its schema: " + valid.message());
      tx.exec_prepared("answer_asked", uid, wait_name, occ, text, opts.answered_by);
      return RecordedAnswer{wait_name, occ, false};
    }
    if (!opts.allow_early)
      return FailedPrecondition("run is not waiting for '" + wait_name + "'");
    pqxx::result early = tx.exec_prepared("pending_early", uid, wait_name);
    if (!early.empty())
      return AlreadyExists("an early answer for '" + wait_name + "' is already recorded (by " +
                           early[0][1].as<std::string>() + "); the first answer wins");
    int occ = tx.exec_prepared("next_occurrence", uid, wait_name)[0][0].as<int>();
    tx.exec_prepared("insert_early", uid, wait_name, occ, text, opts.answered_by);
    return RecordedAnswer{wait_name, occ, true};
  }

 public:
  Status SetBudget(const std::string& uid, std::optional<double> budget) override {
    if (budget && !(*budget >= 0)) return InvalidArgument("budget must be a non-negative number of USD");
    std::optional<std::string> b;
    if (budget) b = pg::ExactDouble(*budget);
    return session_.Run("setting a budget", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec_prepared("set_budget", uid, pg::NullableText(b));
      return 0;
    }).status();
  }

  StatusOr<WaitExpiry> ExpireWait(const std::string& uid, TimePoint now) override {
    return Flatten(session_.Run("expiring a wait", true, [&](pqxx::connection& c) -> StatusOr<WaitExpiry> {
      pqxx::work tx(c);
      pqxx::result run = tx.exec_prepared("lock_run", uid);
      if (run.empty()) return NotFound("run " + uid + " has no state in the database");
      pqxx::result due = tx.exec_prepared("due_wait", uid, pg::EpochSeconds(now));
      if (due.empty()) return WaitExpiry::kNotDue;
      std::string name = due[0][0].as<std::string>();
      int occ = due[0][1].as<int>();
      if (due[0][2].as<std::string>() == "default" && !due[0][3].is_null()) {
        tx.exec_prepared("answer_asked", uid, name, occ, due[0][3].as<std::string>(), "timeout-default");
        tx.commit();
        return WaitExpiry::kDefaultAnswered;
      }
      tx.exec_prepared("fail_run", uid, "wait '" + name + "' timed out without an answer");
      tx.commit();
      return WaitExpiry::kRunFailed;
    }));
  }

  Status CancelRun(const std::string& uid, const std::string& reason) override {
    return session_.Run("cancelling a run", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec_prepared("cancel_run", uid, reason);
      return 0;
    }).status();
  }

  Status DeleteRun(const std::string& uid) override {
    return session_.Run("deleting a run", true, [&](pqxx::connection& c) {
      pqxx::work tx(c);
      for (const char* stmt : {"delete_runs", "delete_attempts", "delete_checkpoints", "delete_failures",
                               "delete_llm_calls", "delete_waits", "delete_artifacts", "delete_replays",
                               "delete_replay_checkpoints", "delete_replay_artifacts"})
        tx.exec_prepared(stmt, uid);
      tx.commit();
      return 0;
    }).status();
  }

  StatusOr<std::vector<ArtifactInfo>> ListArtifacts(const std::string& uid) override {
    return session_.Run("listing artifacts", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      std::vector<ArtifactInfo> out;
      for (const auto& r : tx.exec_prepared("list_artifacts", uid)) out.push_back(ArtifactInfoFromRow(r));
      return out;
    });
  }

  StatusOr<Artifact> LoadArtifact(const std::string& uid, const std::string& name, int version) override {
    return Flatten(session_.Run("loading an artifact", true, [&](pqxx::connection& c) -> StatusOr<Artifact> {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("load_artifact", uid, name, version);
      if (r.empty())
        return NotFound("artifact '" + name + "'" + (version ? " version " + std::to_string(version) : "") +
                        " not found in run " + uid);
      Artifact a;
      a.info = ArtifactInfoFromRow(r[0]);
      pqxx::binarystring bytes(r[0][7]);
      a.data = bytes.str();
      return a;
    }));
  }

 private:
  pg::PgSession session_;
};

}  // namespace

StatusOr<std::unique_ptr<RunAdmin>> OpenPostgresRunAdmin(const PostgresOptions& options) {
  auto admin = std::make_unique<PostgresRunAdmin>(options);
  FLOWRUN_RETURN_IF_ERROR(admin->Connect());
  return std::unique_ptr<RunAdmin>(std::move(admin));
}

}  // namespace flowrun
