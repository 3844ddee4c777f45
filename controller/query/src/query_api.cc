// The read API's core (query_api.h): routing, authorization, validation and
// the JSON of every endpoint (docs/read-api.md is the contract).
#include "flowrun/query/query_api.h"

#include <algorithm>
#include <climits>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/query/api_status.h"
#include "flowrun/query/continue_token.h"
#include "flowrun/query/discovery.h"
#include "flowrun/query/money.h"

namespace flowrun::query {

using nlohmann::json;

struct QueryApi::Target {
  std::string ns, name, subresource, arg;
  bool has_arg = false;
};

namespace {

json OrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
json UsdOrNull(const std::optional<double>& v) { return v ? json(FormatUsd(*v)) : json(nullptr); }

json Meta(const RunRow& run) { return {{"name", run.name}, {"namespace", run.ns}, {"uid", run.uid}}; }

json Envelope(const char* kind, const RunRow& run) {
  return {{"apiVersion", std::string(kGroup) + "/" + kVersion}, {"kind", kind}, {"metadata", Meta(run)}};
}

HttpResponse JsonResponse(const json& j) {
  HttpResponse r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

HttpResponse Text(int code, const std::string& body) {
  HttpResponse r;
  r.code = code;
  r.content_type = "text/plain; charset=utf-8";
  r.body = body;
  return r;
}

// "" when absent; kInvalidArgument unless an integer in [1, max].
StatusOr<int> PositiveInt(const HttpRequest& req, const std::string& key, int fallback, int max, bool cap_is_error) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return fallback;
  const std::string& s = it->second;
  if (s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return InvalidArgument(key + ": want a positive integer, got \"" + s + "\"");
  int v = std::stoi(s);
  if (v < 1) return InvalidArgument(key + ": want a positive integer, got \"" + s + "\"");
  if (cap_is_error && v > max)
    return InvalidArgument(key + ": at most " + std::to_string(max) + " (got " + s + "); page with continue");
  return v;
}

StatusOr<int> Limit(const HttpRequest& req, int fallback, int max) { return PositiveInt(req, "limit", fallback, max, true); }

std::string Query(const HttpRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  return it == req.query.end() ? std::string() : it->second;
}

Status NotFoundRun(const std::string& ns, const std::string& name) {
  return NotFound("flowruns." + std::string(kGroup) + " \"" + name + "\" not found: no execution recorded in namespace " +
                  ns);
}

json CallJson(const CallRow& c) {
  return {{"epoch", c.epoch},
          {"seq", c.seq},
          {"attempt", c.attempt},
          {"model", c.model},
          {"checkpoint", c.checkpoint ? json(*c.checkpoint) : json(nullptr)},
          {"occurrence", c.occurrence ? json(*c.occurrence) : json(nullptr)},
          {"inputTokens", c.input_tokens},
          {"outputTokens", c.output_tokens},
          {"cachedTokens", c.cached_tokens},
          {"usd", UsdOrNull(c.usd)},
          {"latencyMs", c.latency_ms},
          {"priceSource", c.price_source},
          {"at", OrNull(c.at)}};
}

json UsageJson(const UsageGroup& g, const char* key_name, bool with_occurrence) {
  json j = {{key_name, g.key ? json(*g.key) : json(nullptr)},
            {"llmCalls", g.llm_calls},
            {"inputTokens", g.input_tokens},
            {"outputTokens", g.output_tokens},
            {"cachedTokens", g.cached_tokens},
            {"usd", FormatUsd(g.usd)},
            {"unpricedCalls", g.unpriced_calls}};
  if (with_occurrence) j["occurrence"] = g.occurrence ? json(*g.occurrence) : json(nullptr);
  return j;
}

bool IsInt(const json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

// summary.replay: the prepared replay's lineage and what it copied so far.
json ReplayJson(const std::optional<ReplayRow>& r, const Totals& t) {
  if (!r) return nullptr;
  return {{"sourceName", r->source_name},
          {"sourceUid", r->source_uid},
          {"cut", {{"checkpoint", r->cut_name}, {"occurrence", r->cut_occurrence}}},
          {"preparedAt", OrNull(r->prepared_at)},
          {"snapshotCheckpoints", r->snapshot_checkpoints},
          {"copiedCheckpoints", t.copied_checkpoints},
          {"inheritedUSD", FormatUsd(t.inherited_usd)},
          {"cutReached", r->cut_reached}};
}

}  // namespace

QueryApi::QueryApi(QueryStore* store, Authorizer* authorizer, QueryApiOptions options)
    : store_(store), authorizer_(authorizer), options_(std::move(options)) {}

HttpResponse QueryApi::Handle(const HttpRequest& request, const StatusOr<Identity>& identity) {
  if (request.method != "GET" && request.method != "HEAD")
    return StatusResponse(Status(StatusCode::kUnimplemented, "the flowrun read API is read-only: only GET is served"));
  const std::string& path = request.path;
  if (path == "/healthz" || path == "/livez") return Text(200, "ok\n");
  if (path == "/readyz") {
    Status st = store_->Ping();
    if (!st.ok()) {
      if (options_.on_error) options_.on_error(path, st);
      return Text(503, "database unavailable\n");
    }
    return Text(200, "ok\n");
  }
  if (auto d = DiscoveryResponse(path, request.Header("accept"))) return *d;

  // /apis/<group>/<version>/namespaces/<ns>/flowruns/<name>/<sub>[/<arg>]
  std::vector<std::string> seg;
  {
    size_t start = 1;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      std::string decoded;
      if (!PercentDecode(path.substr(start, slash - start), false, &decoded))
        return StatusResponse(InvalidArgument("malformed percent-encoding in the path"));
      seg.push_back(decoded);
      start = slash + 1;
    }
  }
  const Status not_found = NotFound("the server could not find the requested resource");
  if (path.empty() || path[0] != '/' || seg.size() < 8 || seg.size() > 9 || seg[0] != "apis" || seg[1] != kGroup ||
      seg[2] != kVersion || seg[3] != "namespaces" || seg[5] != "flowruns" || seg[4].empty() || seg[6].empty())
    return StatusResponse(not_found);
  Target t{seg[4], seg[6], seg[7], seg.size() == 9 ? seg[8] : "", seg.size() == 9};
  const bool known = std::find(std::begin(kMetadataSubresources), std::end(kMetadataSubresources), t.subresource) !=
                         std::end(kMetadataSubresources) ||
                     std::find(std::begin(kPayloadSubresources), std::end(kPayloadSubresources), t.subresource) !=
                         std::end(kPayloadSubresources);
  if (!known) return StatusResponse(not_found);
  if (t.has_arg && t.subresource != "artifacts" && t.subresource != "outputs") return StatusResponse(not_found);
  if (t.has_arg && t.arg.empty()) return StatusResponse(not_found);
  if (t.subresource == "outputs" && !t.has_arg)
    return StatusResponse(NotFound("outputs/{checkpoint}: name the checkpoint, e.g. outputs/analyze?occurrence=1"));

  if (!identity.ok()) return StatusResponse(identity.status());
  return Data(request, *identity, t);
}

HttpResponse QueryApi::Data(const HttpRequest& request, const Identity& who, const Target& t) {
  auto authorize = [&](const std::string& name) -> Status {
    auto d = authorizer_->Authorize(who, {t.ns, name, t.subresource});
    if (!d.ok()) return d.status();
    if (d->allowed) return Status();
    std::string msg = "flowruns." + std::string(kGroup) + " \"" + name + "\" is forbidden: User \"" + who.user +
                      "\" cannot get resource \"flowruns/" + t.subresource + "\" in API group \"" + kGroup +
                      "\" in the namespace \"" + t.ns + "\"";
    if (!d->reason.empty()) msg += ": " + d->reason;
    return Status(StatusCode::kPermissionDenied, msg);
  };
  Status a = authorize(t.name);
  if (a.ok() && t.subresource == "diff") {
    const std::string other = Query(request, "other");
    if (other.empty()) return StatusResponse(InvalidArgument("diff: name the other run with ?other=<run>"), t.name);
    a = authorize(other);
  }
  if (!a.ok()) {
    if (a.code() != StatusCode::kPermissionDenied && options_.on_error) options_.on_error(request.path, a);
    return StatusResponse(a, t.name);
  }
  auto r = Serve(request, who, t);
  if (r.ok()) return *r;
  const StatusCode c = r.status().code();
  if (c != StatusCode::kInvalidArgument && c != StatusCode::kNotFound && c != StatusCode::kResourceExhausted &&
      options_.on_error)
    options_.on_error(request.path, r.status());
  return StatusResponse(r.status(), t.name);
}

StatusOr<HttpResponse> QueryApi::Serve(const HttpRequest& req, const Identity&, const Target& t) {
  FLOWRUN_ASSIGN_OR_RETURN(std::optional<RunRow> found, store_->FindRun(t.ns, t.name));
  if (!found) return NotFoundRun(t.ns, t.name);
  const RunRow& run = *found;

  if (t.subresource == "summary") {
    FLOWRUN_ASSIGN_OR_RETURN(AttemptPage attempts, store_->LastAttempts(run.uid, Limits::kSummaryAttempts));
    FLOWRUN_ASSIGN_OR_RETURN(Totals totals, store_->RunTotals(run.uid));
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<OpenWait> wait, store_->FindOpenWait(run.uid));
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<CallRow> top, store_->Calls(run.uid, CallOrder::kCost, std::nullopt, 1));
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<ReplayRow> replay, store_->FindReplay(run.uid));
    json j = Envelope("FlowRunSummary", run);
    j["run"] = {{"flow", run.flow},       {"status", run.status},           {"epoch", run.epoch},
                {"attempt", run.attempt}, {"failureReason", run.failure_reason}, {"error", run.error},
                {"createdAt", OrNull(run.created_at)}, {"updatedAt", OrNull(run.updated_at)}};
    json items = json::array();
    for (const auto& a : attempts.rows)
      items.push_back({{"attempt", a.attempt},
                       {"epoch", a.epoch},
                       {"startedAt", OrNull(a.started_at)},
                       {"finishedAt", OrNull(a.finished_at)},
                       {"outcome", a.outcome},
                       {"failureReason", a.failure_reason},
                       {"error", a.error},
                       {"liveCheckpoints", a.live_checkpoints},
                       {"cachedCheckpoints", a.cached_checkpoints},
                       {"reexecutedCheckpoints", a.reexecuted_checkpoints},
                       {"savedLlmCalls", a.saved_llm_calls},
                       {"savedUSD", FormatUsd(a.saved_usd)}});
    j["attempts"] = items;
    j["attemptsTotal"] = attempts.total;
    j["totals"] = {{"spentUSD", FormatUsd(totals.spent_usd)}, {"savedUSD", FormatUsd(totals.saved_usd)},
                   {"inheritedUSD", FormatUsd(totals.inherited_usd)}, {"copiedCheckpoints", totals.copied_checkpoints},
                   {"budgetUSD", UsdOrNull(run.budget_usd)},  {"llmCalls", totals.llm_calls},
                   {"unpricedCalls", totals.unpriced_calls},  {"inputTokens", totals.input_tokens},
                   {"outputTokens", totals.output_tokens},    {"cachedTokens", totals.cached_tokens},
                   {"checkpoints", totals.checkpoints}};
    j["openWait"] = wait ? json{{"name", wait->name},         {"occurrence", wait->occurrence},
                                {"question", wait->question}, {"askedAt", OrNull(wait->asked_at)},
                                {"deadline", OrNull(wait->deadline)}, {"onTimeout", wait->on_timeout}}
                         : json(nullptr);
    j["replay"] = ReplayJson(replay, totals);
    if (top.empty()) {
      j["mostExpensiveCall"] = nullptr;
    } else {
      const CallRow& c = top.front();
      j["mostExpensiveCall"] = {{"epoch", c.epoch},
                                {"seq", c.seq},
                                {"model", c.model},
                                {"checkpoint", c.checkpoint ? json(*c.checkpoint) : json(nullptr)},
                                {"occurrence", c.occurrence ? json(*c.occurrence) : json(nullptr)},
                                {"usd", UsdOrNull(c.usd)}};
    }
    return JsonResponse(j);
  }

  if (t.subresource == "checkpoints") {
    FLOWRUN_ASSIGN_OR_RETURN(int limit, Limit(req, Limits::kCheckpointsDefault, Limits::kCheckpointsMax));
    std::optional<CheckpointKey> after;
    if (std::string c = Query(req, "continue"); !c.empty()) {
      FLOWRUN_ASSIGN_OR_RETURN(ContinueToken tok, DecodeContinue(c, "checkpoints", "", run.uid));
      const json& k = tok.key;
      if (k.size() != 3 || !IsInt(k[0]) || !k[1].is_string() || !IsInt(k[2]))
        return InvalidArgument("continue: not a token of this list");
      after = CheckpointKey{k[0].get<int64_t>(), k[1].get<std::string>(), k[2].get<int>()};
    }
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<CheckpointRow> rows, store_->Checkpoints(run.uid, after, limit + 1));
    json j = Envelope("FlowRunCheckpointList", run);
    const bool more = static_cast<int>(rows.size()) > limit;
    if (more) rows.resize(limit);
    json items = json::array();
    for (const auto& c : rows)
      items.push_back({{"name", c.name},
                       {"occurrence", c.occurrence},
                       {"kind", c.kind},
                       {"status", c.status},
                       {"origin", c.copied ? "copied"
                                  : (c.status == "completed" && c.attempt < run.attempt) ? "cached"
                                                                                         : "live"},
                       {"copied", c.copied},
                       {"attempt", c.attempt},
                       {"epoch", c.epoch},
                       {"starts", c.starts},
                       {"reexecutions", c.reexecutions},
                       {"startedAt", OrNull(c.started_at)},
                       {"finishedAt", OrNull(c.finished_at)},
                       {"durationMs", c.duration_ms ? json(*c.duration_ms) : json(nullptr)},
                       {"llmCalls", c.llm_calls},
                       {"inputTokens", c.input_tokens},
                       {"outputTokens", c.output_tokens},
                       {"cachedTokens", c.cached_tokens},
                       {"usd", FormatUsd(c.usd)},
                       {"unpricedCalls", c.unpriced_calls},
                       {"error", c.error}});
    if (more) {
      const CheckpointRow& last = rows.back();
      j["metadata"]["continue"] =
          EncodeContinue({"checkpoints", "", run.uid, json::array({last.start_key, last.name, last.occurrence})});
    }
    j["items"] = items;
    return JsonResponse(j);
  }

  if (t.subresource == "calls") {
    std::string sort = Query(req, "sort");
    if (sort.empty()) sort = "time";
    if (sort != "time" && sort != "cost") return InvalidArgument("sort: want time or cost, got \"" + sort + "\"");
    const CallOrder order = sort == "cost" ? CallOrder::kCost : CallOrder::kTime;
    FLOWRUN_ASSIGN_OR_RETURN(int limit, Limit(req, Limits::kCallsDefault, Limits::kCallsMax));
    std::optional<CallKey> after;
    if (std::string c = Query(req, "continue"); !c.empty()) {
      FLOWRUN_ASSIGN_OR_RETURN(ContinueToken tok, DecodeContinue(c, "calls", sort, run.uid));
      const json& k = tok.key;
      if (k.size() != 3 || !k[0].is_number() || !IsInt(k[1]) || !IsInt(k[2]))
        return InvalidArgument("continue: not a token of this list");
      after = CallKey{k[0].get<double>(), k[1].get<int64_t>(), k[2].get<int64_t>()};
    }
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<CallRow> rows, store_->Calls(run.uid, order, after, limit + 1));
    json j = Envelope("FlowRunCallList", run);
    const bool more = static_cast<int>(rows.size()) > limit;
    if (more) rows.resize(limit);
    json items = json::array();
    for (const auto& c : rows) items.push_back(CallJson(c));
    if (more) {
      const CallRow& last = rows.back();
      const double cost_key = order == CallOrder::kCost ? (last.usd ? *last.usd : -1.0) : 0.0;
      j["metadata"]["continue"] = EncodeContinue({"calls", sort, run.uid, json::array({cost_key, last.epoch, last.seq})});
    }
    j["items"] = items;
    return JsonResponse(j);
  }

  if (t.subresource == "costs") {
    FLOWRUN_ASSIGN_OR_RETURN(int limit, Limit(req, Limits::kByCheckpointDefault, Limits::kByCheckpointMax));
    FLOWRUN_ASSIGN_OR_RETURN(Totals totals, store_->RunTotals(run.uid));
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<UsageGroup> models, store_->UsageByModel(run.uid, Limits::kByModel));
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<UsageGroup> cps, store_->UsageByCheckpoint(run.uid, limit + 1));
    json j = Envelope("FlowRunCosts", run);
    j["spentUSD"] = FormatUsd(totals.spent_usd);
    j["savedUSD"] = FormatUsd(totals.saved_usd);
    j["inheritedUSD"] = FormatUsd(totals.inherited_usd);
    j["budgetUSD"] = UsdOrNull(run.budget_usd);
    j["llmCalls"] = totals.llm_calls;
    j["unpricedCalls"] = totals.unpriced_calls;
    json by_model = json::array();
    for (const auto& g : models) by_model.push_back(UsageJson(g, "model", false));
    const bool more = static_cast<int>(cps.size()) > limit;
    if (more) cps.resize(limit);
    json by_cp = json::array();
    for (const auto& g : cps) by_cp.push_back(UsageJson(g, "checkpoint", true));
    j["byModel"] = by_model;
    j["byCheckpoint"] = by_cp;
    j["byCheckpointTruncated"] = more;
    return JsonResponse(j);
  }

  if (t.subresource == "artifacts" && !t.has_arg) {
    FLOWRUN_ASSIGN_OR_RETURN(int limit, Limit(req, Limits::kArtifactsDefault, Limits::kArtifactsMax));
    std::optional<ArtifactKey> after;
    if (std::string c = Query(req, "continue"); !c.empty()) {
      FLOWRUN_ASSIGN_OR_RETURN(ContinueToken tok, DecodeContinue(c, "artifacts", "", run.uid));
      const json& k = tok.key;
      if (k.size() != 2 || !k[0].is_string() || !IsInt(k[1])) return InvalidArgument("continue: not a token of this list");
      after = ArtifactKey{k[0].get<std::string>(), k[1].get<int>()};
    }
    FLOWRUN_ASSIGN_OR_RETURN(std::vector<ArtifactMeta> rows, store_->Artifacts(run.uid, after, limit + 1));
    json j = Envelope("FlowRunArtifactList", run);
    const bool more = static_cast<int>(rows.size()) > limit;
    if (more) rows.resize(limit);
    json items = json::array();
    for (const auto& a : rows)
      items.push_back({{"name", a.name},
                       {"version", a.version},
                       {"contentType", a.content_type},
                       {"sizeBytes", a.size_bytes},
                       {"sha256", a.sha256},
                       {"checkpoint", a.checkpoint},
                       {"epoch", a.epoch},
                       {"createdAt", OrNull(a.created_at)}});
    if (more)
      j["metadata"]["continue"] =
          EncodeContinue({"artifacts", "", run.uid, json::array({rows.back().name, rows.back().version})});
    j["items"] = items;
    return JsonResponse(j);
  }

  if (t.subresource == "artifacts") {
    std::optional<int> version;
    if (!Query(req, "version").empty()) {
      FLOWRUN_ASSIGN_OR_RETURN(int v, PositiveInt(req, "version", 1, INT_MAX, false));
      version = v;
    }
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<ArtifactData> a,
                             store_->Artifact(run.uid, t.arg, version, options_.max_artifact_bytes));
    if (!a)
      return NotFound("artifact \"" + t.arg + "\"" + (version ? " version " + std::to_string(*version) : "") +
                      " not found in run " + t.name);
    if (a->meta.size_bytes > options_.max_artifact_bytes)
      return ResourceExhausted("artifact \"" + t.arg + "\" version " + std::to_string(a->meta.version) + " has " +
                               std::to_string(a->meta.size_bytes) + " bytes, above this server's limit of " +
                               std::to_string(options_.max_artifact_bytes) + " (--query-max-artifact-bytes)");
    HttpResponse r;
    r.content_type = a->meta.content_type.empty() ? "application/octet-stream" : a->meta.content_type;
    r.body = std::move(a->bytes);
    r.headers.emplace_back("ETag", "\"" + a->meta.sha256 + "\"");
    r.headers.emplace_back("X-Flowrun-Artifact-Version", std::to_string(a->meta.version));
    r.headers.emplace_back("X-Flowrun-Artifact-Sha256", a->meta.sha256);
    return r;
  }

  if (t.subresource == "outputs") {
    FLOWRUN_ASSIGN_OR_RETURN(int occurrence, PositiveInt(req, "occurrence", 1, INT_MAX, false));
    FLOWRUN_ASSIGN_OR_RETURN(std::optional<OutputRow> o,
                             store_->Output(run.uid, t.arg, occurrence, options_.max_output_bytes));
    if (!o)
      return NotFound("checkpoint \"" + t.arg + "\" occurrence " + std::to_string(occurrence) + " not found in run " +
                      t.name);
    if (!o->output_json && o->size_bytes > options_.max_output_bytes)
      return ResourceExhausted("the output of checkpoint \"" + t.arg + "\" has " + std::to_string(o->size_bytes) +
                               " bytes of JSON, above this server's limit of " +
                               std::to_string(options_.max_output_bytes) + " (--query-max-output-bytes)");
    json j = Envelope("FlowRunOutput", run);
    j["checkpoint"] = t.arg;
    j["occurrence"] = occurrence;
    j["checkpointKind"] = o->kind;
    j["status"] = o->status;
    j["attempt"] = o->attempt;
    j["output"] = o->output_json ? json::parse(*o->output_json, nullptr, false) : json(nullptr);
    return JsonResponse(j);
  }

  // diff
  const std::string other_name = Query(req, "other");
  FLOWRUN_ASSIGN_OR_RETURN(int limit, Limit(req, Limits::kDiffDefault, Limits::kDiffMax));
  FLOWRUN_ASSIGN_OR_RETURN(std::optional<RunRow> other, store_->FindRun(t.ns, other_name));
  if (!other) return NotFoundRun(t.ns, other_name);
  FLOWRUN_ASSIGN_OR_RETURN(Totals mine, store_->RunTotals(run.uid));
  FLOWRUN_ASSIGN_OR_RETURN(Totals theirs, store_->RunTotals(other->uid));
  FLOWRUN_ASSIGN_OR_RETURN(std::vector<DiffCheckpointRow> rows, store_->DiffCheckpoints(run.uid, other->uid, limit + 1));
  FLOWRUN_ASSIGN_OR_RETURN(std::vector<DiffArtifactRow> arts,
                           store_->DiffArtifacts(run.uid, other->uid, Limits::kDiffArtifacts + 1));
  // Lineage: when one run is a replay of the other, each checkpoint of the
  // replay is reused (copied from the source) or recomputed (live in the
  // replay where the source has it too).
  FLOWRUN_ASSIGN_OR_RETURN(std::optional<ReplayRow> my_replay, store_->FindReplay(run.uid));
  FLOWRUN_ASSIGN_OR_RETURN(std::optional<ReplayRow> their_replay, store_->FindReplay(other->uid));
  enum class ReplaySide { kNone, kThis, kOther } replay_side = ReplaySide::kNone;
  if (their_replay && their_replay->source_uid == run.uid) replay_side = ReplaySide::kOther;
  else if (my_replay && my_replay->source_uid == other->uid) replay_side = ReplaySide::kThis;
  json j = Envelope("FlowRunDiff", run);
  j["other"] = {{"name", other->name}, {"uid", other->uid}};
  j["spentUSD"] = {{"this", FormatUsd(mine.spent_usd)},
                   {"other", FormatUsd(theirs.spent_usd)},
                   {"delta", FormatUsd(mine.spent_usd - theirs.spent_usd)}};
  j["inheritedUSD"] = {{"this", FormatUsd(mine.inherited_usd)}, {"other", FormatUsd(theirs.inherited_usd)}};
  if (replay_side == ReplaySide::kNone) {
    j["lineage"] = nullptr;
  } else {
    const bool other_is_replay = replay_side == ReplaySide::kOther;
    const RunRow& replay_run = other_is_replay ? *other : run;
    const RunRow& source_run = other_is_replay ? run : *other;
    const Totals& rt = other_is_replay ? theirs : mine;
    const ReplayRow& rp = other_is_replay ? *their_replay : *my_replay;
    FLOWRUN_ASSIGN_OR_RETURN(RecomputedCost rc, store_->Recomputed(replay_run.uid, source_run.uid));
    j["lineage"] = {{"replay", other_is_replay ? "other" : "this"},
                    {"replayName", replay_run.name},
                    {"sourceName", source_run.name},
                    {"cut", {{"checkpoint", rp.cut_name}, {"occurrence", rp.cut_occurrence}}},
                    {"cutReached", rp.cut_reached},
                    {"reusedCheckpoints", rt.copied_checkpoints},
                    {"inheritedUSD", FormatUsd(rt.inherited_usd)},
                    {"recomputedCheckpoints", rc.checkpoints},
                    {"recomputedUSD", {{"replay", FormatUsd(rc.replay_usd)},
                                       {"source", FormatUsd(rc.source_usd)},
                                       {"delta", FormatUsd(rc.replay_usd - rc.source_usd)}}}};
  }
  const bool more = static_cast<int>(rows.size()) > limit;
  if (more) rows.resize(limit);
  json items = json::array();
  auto side = [](const std::optional<DiffSide>& s) {
    return s ? json{{"status", s->status}, {"usd", FormatUsd(s->usd)}, {"copied", s->copied}} : json(nullptr);
  };
  for (const auto& d : rows) {
    std::string state;
    if (d.self && !d.other) state = "onlyInThis";
    else if (!d.self && d.other) state = "onlyInOther";
    else if (d.output_equal && d.self->status == d.other->status && d.self->status == "completed") state = "same";
    else state = "changed";
    json e = {{"name", d.name}, {"occurrence", d.occurrence}, {"state", state},
              {"this", side(d.self)}, {"other", side(d.other)}, {"outputEqual", d.self && d.other && d.output_equal}};
    e["usdDelta"] = FormatUsd((d.self ? d.self->usd : 0) - (d.other ? d.other->usd : 0));
    const std::optional<DiffSide>& replayed = replay_side == ReplaySide::kOther ? d.other : d.self;
    const std::optional<DiffSide>& original = replay_side == ReplaySide::kOther ? d.self : d.other;
    if (replay_side == ReplaySide::kNone || !replayed) e["reuse"] = nullptr;
    else if (replayed->copied) e["reuse"] = "reused";
    else if (original) e["reuse"] = "recomputed";
    else e["reuse"] = "new";  // live in the replay, never run by the source
    items.push_back(e);
  }
  j["checkpoints"] = items;
  j["truncated"] = more;
  const bool more_arts = static_cast<int>(arts.size()) > Limits::kDiffArtifacts;
  if (more_arts) arts.resize(Limits::kDiffArtifacts);
  json aj = json::array();
  for (const auto& a : arts) {
    std::string state = !a.other_version ? "onlyInThis"
                        : !a.self_version ? "onlyInOther"
                        : (a.self_sha256 == a.other_sha256 ? "same" : "changed");
    aj.push_back({{"name", a.name}, {"state", state},
                  {"thisVersion", a.self_version ? json(*a.self_version) : json(nullptr)},
                  {"otherVersion", a.other_version ? json(*a.other_version) : json(nullptr)},
                  {"thisSha256", a.self_sha256 ? json(*a.self_sha256) : json(nullptr)},
                  {"otherSha256", a.other_sha256 ? json(*a.other_sha256) : json(nullptr)}});
  }
  j["artifacts"] = aj;
  j["artifactsTruncated"] = more_arts;
  return JsonResponse(j);
}

}  // namespace flowrun::query
