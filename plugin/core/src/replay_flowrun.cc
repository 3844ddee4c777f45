#include "flowrun/plugin/replay_flowrun.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "flowrun/json_fields.h"
#include "flowrun/plugin/answer_input.h"
#include "flowrun/plugin/json_value.h"
#include "flowrun/rfc3339.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

Status CheckValues(const std::map<std::string, json>& values, const char* flag, const char* what) {
  for (const auto& [name, v] : values) {
    if (name.empty()) return InvalidArgument(std::string(flag) + ": a " + what + " needs a name");
    size_t n = CompactJsonBytes(v);
    if (n > kMaxReplayValueBytes)
      return InvalidArgument(std::string(flag) + " " + name + ": " + std::to_string(n) +
                             " bytes of JSON, above the limit of " + std::to_string(kMaxReplayValueBytes) +
                             " bytes per value (the database stores each value in a row); make it smaller, or save "
                             "the large data as an artifact and pass a reference");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateReplayOptions(const ReplaySpecOptions& o) {
  if (o.checkpoint.empty())
    return InvalidArgument("--from: name the checkpoint the replay cuts at (the first one that runs live)");
  if (o.occurrence < 0) return InvalidArgument("--occurrence: want 1 or more");
  FLOWRUN_RETURN_IF_ERROR(CheckValues(o.outputs, "--output", "checkpoint output"));
  return CheckValues(o.answers, "--answer", "wait answer");
}

StatusOr<json> BuildReplayFlowRun(const json& source, const ReplaySpecOptions& o, const std::string& name) {
  const json& meta = JsonField(source, "metadata");
  const std::string source_name = JsonString(meta, "name");
  const std::string uid = JsonString(meta, "uid");
  if (uid.empty()) return InvalidArgument("FlowRun " + source_name + " has no metadata.uid to pin");
  const json& spec = JsonField(source, "spec");
  if (!JsonField(spec, "template").is_object())
    return InvalidArgument("FlowRun " + source_name + " has no spec.template to copy");

  json new_spec = spec;
  new_spec.erase("cancel");
  new_spec.erase("replay");  // a replay of a replay names its own (direct) source
  if (!o.image.empty()) new_spec["template"]["image"] = o.image;
  if (!o.set_params.empty()) {
    AnswerInput in;
    in.sets = o.set_params;
    json params = JsonField(spec, "parameters");
    in.file = params.is_object() ? params : json::object();
    auto p = BuildAnswer({{"type", "object"}}, "parameters", in);
    if (!p.ok()) return InvalidArgument("--set-param: " + p.status().message());
    new_spec["parameters"] = *p;
  }
  json from = {{"run", source_name}, {"checkpoint", o.checkpoint}, {"uid", uid}};
  if (o.occurrence > 0) from["occurrence"] = o.occurrence;
  json replay = {{"from", from}};
  if (!o.outputs.empty()) replay["outputs"] = json(o.outputs);
  if (!o.answers.empty()) replay["answers"] = json(o.answers);
  new_spec["replay"] = replay;

  json labels = JsonField(meta, "labels").is_object() ? JsonField(meta, "labels") : json::object();
  labels.erase(kReplayBatchLabel);
  labels[kReplayOfLabel] = source_name;
  if (!o.batch.empty()) labels[kReplayBatchLabel] = o.batch;
  json m = {{"name", name}, {"labels", labels}};
  if (!JsonString(meta, "namespace").empty()) m["namespace"] = JsonString(meta, "namespace");
  return json{{"apiVersion", "flowrun.dev/v1alpha1"}, {"kind", "FlowRun"}, {"metadata", m}, {"spec", new_spec}};
}

std::string ReplayName(const std::string& source, int n) { return source + "-r" + std::to_string(n); }

int FirstFreeReplayNumber(const std::string& source, const std::set<std::string>& taken, int from) {
  int n = std::max(from, 1);
  while (taken.count(ReplayName(source, n))) ++n;
  return n;
}

std::optional<std::chrono::seconds> ParseSince(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == start || i == text.size() || i - start > 9) return std::nullopt;
    int64_t v = std::stoll(text.substr(start, i - start));
    switch (text[i++]) {
      case 's': total += v; break;
      case 'm': total += v * 60; break;
      case 'h': total += v * 3600; break;
      case 'd': total += v * 86400; break;
      default: return std::nullopt;
    }
  }
  if (total <= 0) return std::nullopt;
  return std::chrono::seconds(total);
}

namespace {
// The CRD's status.phase enum.
constexpr const char* kPhases[] = {"Pending",   "Running", "Waiting",        "Resuming",
                                   "Succeeded", "Failed",  "BudgetExceeded", "Cancelled"};
}  // namespace

std::optional<std::string> CanonicalPhase(const std::string& text) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (const char* p : kPhases)
    if (lower(p) == lower(text)) return std::string(p);
  return std::nullopt;
}

std::string PhaseList() {
  std::string out;
  for (const char* p : kPhases) out += (out.empty() ? "" : ", ") + std::string(p);
  return out;
}

std::vector<json> SelectSources(const std::vector<json>& items, const SourceFilter& f, TimePoint now) {
  std::vector<json> out;
  for (const auto& fr : items) {
    const json& st = JsonField(fr, "status");
    if (!f.phase.empty() && JsonString(st, "phase") != f.phase) continue;
    if (f.since) {
      const TimePoint oldest = now - *f.since;
      bool recent = false;
      if (auto t = ParseTime(JsonString(JsonField(fr, "metadata"), "creationTimestamp")); t && *t >= oldest) recent = true;
      const json& attempts = JsonField(st, "attempts");
      if (!recent && attempts.is_array() && !attempts.empty())
        if (auto t = ParseTime(JsonString(attempts.back(), "endTime")); t && *t >= oldest) recent = true;
      if (!recent) continue;
    }
    out.push_back(fr);
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return JsonString(JsonField(a, "metadata"), "name") < JsonString(JsonField(b, "metadata"), "name");
  });
  return out;
}

std::string BatchId(TimePoint now, const std::string& suffix) {
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return std::string(buf) + (suffix.empty() ? "" : "-" + suffix);
}

}  // namespace flowrun::plugin
