// QueryStore: the read API's view of the database — the rows each endpoint
// needs, read-only. The PostgreSQL adapter (postgres_query_store.h) is the
// production implementation; the core (query_api.h) takes the interface, so
// its routing, paging and JSON are unit-tested without a database.
//
// Conventions: times are RFC 3339 UTC text with microseconds ("" = NULL);
// money is a double in USD exactly as stored (formatted by money.h at the
// edge). Lists return at most `limit` rows after the keyset position `after`
// (nullopt: from the start), in the documented order; the caller asks for
// limit + 1 to learn whether another page exists.
//
// Errors: kUnavailable when the database cannot be reached (the API answers
// 503); anything else is kInternal. A run that does not exist is not an
// error: FindRun returns nullopt.
// Thread safety: implementations must allow concurrent calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowrun/status.h"

namespace flowrun::query {

struct RunRow {
  std::string uid, ns, name, flow, status, failure_reason, error, created_at, updated_at;
  int64_t epoch = 0;
  int attempt = 0;
  std::optional<double> budget_usd;
};

struct AttemptRow {
  int attempt = 0;
  int64_t epoch = 0;
  std::string started_at, finished_at, outcome, failure_reason, error;
  int64_t live_checkpoints = 0, cached_checkpoints = 0, reexecuted_checkpoints = 0, saved_llm_calls = 0;
  double saved_usd = 0;
};

struct AttemptPage {
  std::vector<AttemptRow> rows;  // the last `limit` attempts, oldest first
  int64_t total = 0;
};

// spent_usd counts the run's own LLM calls only; inherited_usd is the
// recorded usage of the checkpoints a replay copied from its source (never
// spent by this run: a copied checkpoint makes no call).
struct Totals {
  double spent_usd = 0, saved_usd = 0, inherited_usd = 0;
  int64_t copied_checkpoints = 0;
  int64_t llm_calls = 0, unpriced_calls = 0, input_tokens = 0, output_tokens = 0, cached_tokens = 0;
  int64_t checkpoints = 0;
};

struct OpenWait {
  std::string name, question, asked_at, deadline, on_timeout;
  int occurrence = 0;
};

struct CallRow {
  int64_t epoch = 0, seq = 0;
  int attempt = 0;
  std::string model;
  std::optional<std::string> checkpoint;
  std::optional<int> occurrence;
  int64_t input_tokens = 0, output_tokens = 0, cached_tokens = 0;
  std::optional<double> usd;
  double latency_ms = 0;
  std::string price_source, at;
};

enum class CallOrder { kTime, kCost };

// Keyset position of a call: (epoch, seq) for kTime; (cost key, epoch, seq)
// for kCost, where the cost key is the price or -1 for an unpriced call.
struct CallKey {
  double cost_key = 0;
  int64_t epoch = 0, seq = 0;
};

struct CheckpointRow {
  std::string name, kind, status, started_at, finished_at, error;
  int occurrence = 0, attempt = 0, starts = 0, reexecutions = 0;
  int64_t epoch = 0;
  std::optional<double> duration_ms;
  int64_t llm_calls = 0, input_tokens = 0, output_tokens = 0, cached_tokens = 0, unpriced_calls = 0;
  double usd = 0;
  int64_t start_key = 0;  // started_at in epoch microseconds; INT64_MAX when not started
  bool copied = false;    // served from a replay's snapshot: usage inherited, not spent
};

// Keyset position of a checkpoint: (start_key, name, occurrence).
struct CheckpointKey {
  int64_t start_key = 0;
  std::string name;
  int occurrence = 0;
};

// Usage of the calls of one group (a model, or a checkpoint occurrence).
struct UsageGroup {
  std::optional<std::string> key;  // model, or checkpoint name (nullopt: outside any checkpoint)
  std::optional<int> occurrence;   // checkpoint groups only
  int64_t llm_calls = 0, input_tokens = 0, output_tokens = 0, cached_tokens = 0, unpriced_calls = 0;
  double usd = 0;
};

struct ArtifactMeta {
  std::string name, content_type, sha256, checkpoint, created_at;
  int version = 0;
  int64_t size_bytes = 0, epoch = 0;
};

// Keyset position of an artifact version: (name, version).
struct ArtifactKey {
  std::string name;
  int version = 0;
};

struct ArtifactData {
  ArtifactMeta meta;
  std::string bytes;  // empty when meta.size_bytes exceeded the caller's limit (not read)
};

struct OutputRow {
  std::string kind, status;
  int attempt = 0;
  std::optional<std::string> output_json;  // nullopt: NULL, or larger than the limit (see size_bytes)
  int64_t size_bytes = 0;                  // of the output's JSON text
};

// One checkpoint (name, occurrence) of a diff: either side may be missing.
struct DiffSide {
  std::string status;
  double usd = 0;
  bool copied = false;
};
struct DiffCheckpointRow {
  std::string name;
  int occurrence = 0;
  std::optional<DiffSide> self, other;
  bool output_equal = false;  // both present and outputs equal (NULL = NULL counts as equal)
};
struct DiffArtifactRow {
  std::string name;
  std::optional<int> self_version, other_version;
  std::optional<std::string> self_sha256, other_sha256;
};

// A prepared replay (flowrun.replays; flowrun/replay.h).
struct ReplayRow {
  std::string source_uid, source_name, cut_name, prepared_at;
  int cut_occurrence = 1;
  int64_t snapshot_checkpoints = 0;
  bool cut_reached = false;
};

// What a replay recomputed: its live checkpoints that its source also has,
// with the replay's spend on them and the source's recorded usage.
struct RecomputedCost {
  int64_t checkpoints = 0;
  double replay_usd = 0, source_usd = 0;
};

class QueryStore {
 public:
  virtual ~QueryStore() = default;

  // The newest execution recorded under (namespace, name).
  virtual StatusOr<std::optional<RunRow>> FindRun(const std::string& ns, const std::string& name) = 0;
  virtual StatusOr<AttemptPage> LastAttempts(const std::string& uid, int limit) = 0;
  virtual StatusOr<Totals> RunTotals(const std::string& uid) = 0;
  virtual StatusOr<std::optional<OpenWait>> FindOpenWait(const std::string& uid) = 0;
  virtual StatusOr<std::vector<CallRow>> Calls(const std::string& uid, CallOrder order,
                                               const std::optional<CallKey>& after, int limit) = 0;
  virtual StatusOr<std::vector<CheckpointRow>> Checkpoints(const std::string& uid,
                                                           const std::optional<CheckpointKey>& after, int limit) = 0;
  // Most expensive first (then by key).
  virtual StatusOr<std::vector<UsageGroup>> UsageByModel(const std::string& uid, int limit) = 0;
  virtual StatusOr<std::vector<UsageGroup>> UsageByCheckpoint(const std::string& uid, int limit) = 0;
  virtual StatusOr<std::vector<ArtifactMeta>> Artifacts(const std::string& uid, const std::optional<ArtifactKey>& after,
                                                        int limit) = 0;
  // version nullopt: the latest. nullopt result: no such artifact/version.
  // Bytes are read only when size_bytes <= max_bytes.
  virtual StatusOr<std::optional<ArtifactData>> Artifact(const std::string& uid, const std::string& name,
                                                         std::optional<int> version, int64_t max_bytes) = 0;
  // nullopt: no such checkpoint occurrence. The output is read only when its
  // JSON text is at most max_bytes.
  virtual StatusOr<std::optional<OutputRow>> Output(const std::string& uid, const std::string& checkpoint,
                                                    int occurrence, int64_t max_bytes) = 0;
  // Ordered by (name, occurrence); at most `limit` rows.
  virtual StatusOr<std::vector<DiffCheckpointRow>> DiffCheckpoints(const std::string& uid, const std::string& other_uid,
                                                                   int limit) = 0;
  // Latest version of each artifact name on either side, by name.
  virtual StatusOr<std::vector<DiffArtifactRow>> DiffArtifacts(const std::string& uid, const std::string& other_uid,
                                                               int limit) = 0;
  // nullopt: `uid` is no prepared replay.
  virtual StatusOr<std::optional<ReplayRow>> FindReplay(const std::string& uid) = 0;
  // Over every checkpoint (not bounded by a diff's page).
  virtual StatusOr<RecomputedCost> Recomputed(const std::string& replay_uid, const std::string& source_uid) = 0;
  // The database answers (readiness).
  virtual Status Ping() = 0;
};

}  // namespace flowrun::query
