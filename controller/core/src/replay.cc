// Preparing a replay: the pure checks and the status they write (replay.h).
#include "flowrun/controller/replay.h"

#include "flowrun/json_fields.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

SecretKeyRef DatabaseOf(const FlowRunSpec& spec, const ControllerConfig& config) {
  return spec.database_secret.value_or(config.database_secret);
}

}  // namespace

std::variant<ReplayRequest, ReplayRefusal> ResolveReplay(const FlowRunView& replay, const std::optional<json>& source,
                                                         const std::map<std::string, ConfigMapText>& output_from,
                                                         const ControllerConfig& config) {
  if (!replay.spec.replay) return ReplayRefusal{kReasonInvalidReplay, "the FlowRun has no spec.replay"};
  const ReplaySpec& rs = *replay.spec.replay;
  const std::string ns = replay.meta.namespace_.empty() ? config.default_namespace : replay.meta.namespace_;
  const std::string who = "source FlowRun " + ns + "/" + rs.run;
  if (!source) return ReplayRefusal{kReasonSourceNotFound, who + " not found; the replay starts once it exists"};
  auto src = ParseFlowRun(*source);
  if (!src.ok())
    return ReplayRefusal{kReasonSourceNotFound, who + " is unusable: " + src.status().message()};
  if (src->meta.uid == replay.meta.uid)
    return ReplayRefusal{kReasonInvalidReplay, "spec.replay.from.run names this FlowRun itself: a replay needs another run"};
  if (!rs.uid.empty() && src->meta.uid != rs.uid)
    return ReplayRefusal{kReasonSourceUidMismatch, who + " has uid " + src->meta.uid + ", not " + rs.uid +
                                                       " (spec.replay.from.uid): it was deleted and created again; "
                                                       "the run to replay is gone"};
  SecretKeyRef mine = DatabaseOf(replay.spec, config), theirs = DatabaseOf(src->spec, config);
  if (!(mine == theirs))
    return ReplayRefusal{kReasonOtherDatabase, who + " keeps its checkpoints in the database of Secret " + theirs.name +
                                                   " (key " + theirs.key + "), this replay in " + mine.name + " (key " +
                                                   mine.key + "): a replay must use its source's database"};
  ReplayRequest req;
  req.run_uid = replay.meta.uid;
  req.namespace_ = ns;
  req.name = replay.meta.name;
  req.flow = replay.spec.flow.empty() ? "default" : replay.spec.flow;
  req.source_run_uid = src->meta.uid;
  req.source_name = rs.run;
  req.cut.name = rs.checkpoint;
  req.cut.occurrence = rs.occurrence;
  req.output_overrides = rs.outputs;
  req.answers = rs.answers;
  for (const auto& [checkpoint, ref] : rs.output_from) {
    const std::string what = "spec.replay.outputFrom." + checkpoint + ": ConfigMap " + ref.name + " key " + ref.key;
    auto it = output_from.find(checkpoint);
    if (it == output_from.end() || !it->second.ok())
      return ReplayRefusal{kReasonInvalidReplay,
                           what + " not found" +
                               (it == output_from.end() ? "" : " (" + it->second.status().message() + ")")};
    json value = json::parse(*it->second, nullptr, false);
    if (value.is_discarded())
      return ReplayRefusal{kReasonInvalidReplay, what + " is not JSON text (write the output as JSON, e.g. \"notes\")"};
    req.output_overrides[checkpoint] = std::move(value);
  }
  return req;
}

std::optional<ReplayRefusal> RefusalOfPrepareError(const Status& error, const std::string& source_name) {
  switch (error.code()) {
    case StatusCode::kNotFound:
      return ReplayRefusal{kReasonSourceNotPrepared, "source FlowRun " + source_name +
                                                         " has no run in the database yet (it has not started): "
                                                         "the replay is prepared once it has"};
    case StatusCode::kInvalidArgument:
      return ReplayRefusal{kReasonInvalidReplay, "the replay was refused: " + error.message()};
    case StatusCode::kAlreadyExists:
      return ReplayRefusal{kReasonInvalidReplay,
                           "this FlowRun's run already exists and is no replay of " + source_name + ": " + error.message()};
    default:
      return std::nullopt;
  }
}

json ReplayRefusalPatch(const json& flowrun, const ReplayRefusal& refusal, TimePoint now, const ControllerConfig& config,
                        bool* changed) {
  const json& st = JsonField(flowrun, "status");
  FlowRunStatus status = ParseStatus(st);
  int64_t generation = JsonInt(JsonField(flowrun, "metadata"), "generation");
  const std::string message = TruncateUtf8(refusal.message, config.max_condition_message_bytes);
  bool found = false, diff = true;
  for (auto& c : status.conditions) {
    if (c.type != kCondReplay) continue;
    found = true;
    diff = c.status != "False" || c.reason != refusal.reason || c.message != message;
    if (c.status != "False") c.last_transition_time = FormatTime(now);
    c.status = "False";
    c.reason = refusal.reason;
    c.message = message;
    c.observed_generation = generation;
  }
  if (!found) status.conditions.push_back({kCondReplay, "False", refusal.reason, message, FormatTime(now), generation});
  if (changed) *changed = diff;
  json conditions = json::array();
  for (const auto& c : status.conditions) conditions.push_back(c.ToJson());
  json patch = {{"conditions", conditions}, {"message", TruncateUtf8(refusal.message, config.max_message_bytes)}};
  if (status.phase.empty()) patch["phase"] = kPending;
  return {{"status", patch}};
}

json ReplayStatusOf(const ReplayInfo& info, const std::map<std::string, json>& answers) {
  json outputs = json::array(), waits = json::array();
  for (const auto& [name, value] : info.output_overrides) outputs.push_back(name);
  for (const auto& [name, value] : answers) waits.push_back(name);
  json j = {{"sourceName", info.source_name},
            {"sourceUid", info.source_run_uid},
            {"cut", {{"checkpoint", info.cut.name}, {"occurrence", info.cut.occurrence}}},
            {"snapshotCheckpoints", info.snapshot_checkpoints},
            {"copiedCheckpoints", info.copied_checkpoints},
            {"inheritedUsd", DecimalUsd(info.inherited.cost_usd)},
            {"cutReached", info.cut_reached},
            {"outputs", outputs},
            {"answers", waits}};
  if (info.prepared_at != TimePoint{}) j["preparedAt"] = FormatTime(info.prepared_at);
  return j;
}

}  // namespace flowrun::controller
