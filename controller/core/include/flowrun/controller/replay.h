// Replay (spec.replay, docs/replay.md): the controller's pure decisions about
// preparing a replay, shared by the reconcile core (which decides *when* to
// prepare: PrepareReplay before the first Job) and the adapters (which fetch
// the source FlowRun and the outputFrom ConfigMaps, then ask these functions
// what to do with them, then call RunAdmin::PrepareReplay).
//
// The Replay condition (type kCondReplay):
//   True  Prepared            RunAdmin::PrepareReplay succeeded (the core sets
//                             it in the status patch that follows the action,
//                             and from RunState::replay after)
//   False SourceNotFound      no FlowRun spec.replay.from.run in the namespace
//   False SourceUidMismatch   the source's metadata.uid is not from.uid
//   False SourceNotPrepared   the source FlowRun has no run row yet (store kNotFound)
//   False OtherDatabase       the source's spec.database is not the replay's
//   False InvalidReplay       the source is this FlowRun itself, the store
//                             refused an override or answer
//                             (kInvalidArgument), the run exists and is no
//                             such replay (kAlreadyExists), or an outputFrom
//                             ConfigMap/key is missing or not JSON
//   False CutNotReached       the run ended (final phase) and the execution
//                             never asked for the cut
// Every False but CutNotReached is retried with backoff: the source may be
// created later, a ConfigMap fixed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "flowrun/controller/config.h"
#include "flowrun/controller/types.h"
#include "flowrun/replay.h"
#include "flowrun/status.h"

namespace flowrun::controller {

inline constexpr char kCondReplay[] = "Replay";
inline constexpr char kReasonPrepared[] = "Prepared";
inline constexpr char kReasonSourceNotFound[] = "SourceNotFound";
inline constexpr char kReasonSourceUidMismatch[] = "SourceUidMismatch";
inline constexpr char kReasonSourceNotPrepared[] = "SourceNotPrepared";
inline constexpr char kReasonOtherDatabase[] = "OtherDatabase";
inline constexpr char kReasonInvalidReplay[] = "InvalidReplay";
inline constexpr char kReasonCutNotReached[] = "CutNotReached";

// Why a replay cannot be prepared now: the Replay condition's reason (one of
// the constants above) and a message for people.
struct ReplayRefusal {
  std::string reason;
  std::string message;
};

// What the adapter read for one outputFrom entry: the ConfigMap key's text,
// or why it could not (kNotFound: no such ConfigMap or key; other codes are
// transient and never reach ResolveReplay).
using ConfigMapText = StatusOr<std::string>;

// Builds the RunAdmin::PrepareReplay request for `replay` (a FlowRun with
// spec.replay) from its source FlowRun as the API returned it (nullopt: 404)
// and the outputFrom texts (keyed by checkpoint name; a missing entry is
// treated as kNotFound). Checks, in order: the source exists, the uid pin,
// the database reference (spec.database, absent = the controller's default
// `config.database_secret`), each outputFrom text is present and JSON.
std::variant<ReplayRequest, ReplayRefusal> ResolveReplay(const FlowRunView& replay,
                                                         const std::optional<nlohmann::json>& source,
                                                         const std::map<std::string, ConfigMapText>& output_from,
                                                         const ControllerConfig& config);

// The refusal for a RunAdmin::PrepareReplay error, when it is one (kNotFound,
// kInvalidArgument, kAlreadyExists); nullopt for a transient error (retried
// without a condition).
std::optional<ReplayRefusal> RefusalOfPrepareError(const Status& error, const std::string& source_name);

// The /status merge patch that records a refusal on `flowrun`: condition
// Replay=False with its reason (lastTransitionTime moves only when the
// status flips), status.message, and phase Pending while there is none yet.
// `changed`: the condition's reason or message differs from the recorded one
// (an Event is due).
nlohmann::json ReplayRefusalPatch(const nlohmann::json& flowrun, const ReplayRefusal& refusal, TimePoint now,
                                  const ControllerConfig& config, bool* changed);

// status.replay from what the store holds about a prepared replay; `answers`:
// the wait names of spec.replay.answers.
nlohmann::json ReplayStatusOf(const ReplayInfo& info, const std::map<std::string, nlohmann::json>& answers);

}  // namespace flowrun::controller
