// `kubectl flowrun replay`: the new FlowRun a replay creates from its source
// (docs/replay.md), the replay's default name, and which FlowRuns a bulk
// replay takes. Pure functions of the source objects and the options.
//
// The new FlowRun is the source's spec (template, parameters, flow, budget,
// retry, deadlines, approvers, database, ttl) with the options applied
// (--image replaces template.image, --set-param sets parameters), never
// spec.cancel, plus spec.replay naming the source and pinning its
// metadata.uid, so a source deleted and re-created under the same name is
// refused by the controller (SourceUidMismatch). Labels: the source's own
// (so selectors that found the source find its replays), then
// flowrun.dev/replay-of=<source> and, for a bulk replay,
// flowrun.dev/replay-batch=<id>. No ownerReference to the source: deleting
// the source never deletes its replays. No annotations are copied
// (kubectl's last-applied-configuration would describe the source).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/plugin/format.h"
#include "flowrun/status.h"

namespace flowrun::plugin {

inline constexpr const char* kReplayOfLabel = "flowrun.dev/replay-of";
inline constexpr const char* kReplayBatchLabel = "flowrun.dev/replay-batch";
// Each spec.replay.outputs / answers value, as compact JSON (the store's cap).
inline constexpr size_t kMaxReplayValueBytes = 256 * 1024;

struct ReplaySpecOptions {
  std::string checkpoint;  // --from (required)
  int occurrence = 0;      // --occurrence; 0: not given (the controller's default, 1)
  std::string image;       // --image; "": the source's
  std::vector<std::string> set_params;  // --set-param path=value (converted as `answer --set` converts)
  std::map<std::string, nlohmann::json> outputs;  // --output: checkpoint -> output
  std::map<std::string, nlohmann::json> answers;  // --answer: wait -> answer
  std::string batch;       // "" unless bulk
};

// Checks what needs no cluster: a cut, occurrence >= 1 when given, each
// value within kMaxReplayValueBytes. kInvalidArgument with what to change.
Status ValidateReplayOptions(const ReplaySpecOptions& o);

// The FlowRun to create (named `name`, in the source's namespace).
// kInvalidArgument: a --set-param that does not convert, or a source without
// a metadata.uid or spec.template.
StatusOr<nlohmann::json> BuildReplayFlowRun(const nlohmann::json& source, const ReplaySpecOptions& o,
                                            const std::string& name);

// "<source>-r<n>".
std::string ReplayName(const std::string& source, int n);
// The first n >= `from` whose ReplayName is not in `taken`.
int FirstFreeReplayNumber(const std::string& source, const std::set<std::string>& taken, int from = 1);

// "2h", "30m", "90s", "1d", "1h30m" → seconds; nullopt for anything else.
std::optional<std::chrono::seconds> ParseSince(const std::string& text);

// --phase: the FlowRun phase (the CRD's enum) matching `text` regardless of
// case ("failed" → "Failed"); nullopt when no phase is named so (a typo would
// otherwise select nothing). PhaseList() names them for the message.
std::optional<std::string> CanonicalPhase(const std::string& text);
std::string PhaseList();  // "Pending, Running, ..., Cancelled"

struct SourceFilter {
  std::string phase;  // "" any; else status.phase must equal it
  std::optional<std::chrono::seconds> since;  // created or finished within this span before `now`
};
// The FlowRuns of `items` a bulk replay takes, sorted by name. A run counts
// as recent when its creationTimestamp or its latest attempt's endTime is
// within `since`. Replays are sources like any run (a replay of a replay
// reuses what the replay completed, copies included).
std::vector<nlohmann::json> SelectSources(const std::vector<nlohmann::json>& items, const SourceFilter& f,
                                          TimePoint now);

// A bulk replay's id: "<UTC yyyymmdd-hhmmss>-<suffix>" (suffix: a few random
// hex digits from the caller), a valid label value.
std::string BatchId(TimePoint now, const std::string& suffix);

}  // namespace flowrun::plugin
