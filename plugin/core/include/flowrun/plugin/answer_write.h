// Writing an answer and reading what became of it — the pure part of
// `kubectl flowrun answer`:
//
//  - OpenWaitOf: the question a FlowRun asks (status.wait), or why there is
//    none to answer (not Waiting, a different wait, already answered).
//  - AnswerPatch: the JSON Patch (RFC 6902) for the status subresource that
//    sets status.answers[<wait>] to the answer, replacing a previous
//    (rejected) answer as a whole. A merge patch would merge a corrected
//    object answer into the rejected one and keep its extra keys, so the
//    correction would be rejected again (docs/kubectl-flowrun.md).
//  - Progress: after the write, whether the controller accepted the answer
//    (condition AnswerAccepted=True naming the wait; the resumed Job), or
//    rejected it (AnswerAccepted=False with its reason and message), or has
//    not looked yet.
//  - ExplainRefusal: an apiserver refusal (admission policy, RBAC) as a
//    sentence with what to do about it.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::plugin {

struct OpenWait {
  std::string name;      // the key of status.answers ("proceed", "review#2")
  std::string question;
  nlohmann::json schema;  // null when the status carries none (too big)
  std::string asked_at, deadline, on_timeout;
  bool previous_rejected = false;  // status.answers[name] exists and the controller said InvalidAnswer
  nlohmann::json previous;         // that answer (null when none)
};

// The open wait of `flowrun`. `wanted` (may be empty) must name it.
// kFailedPrecondition when the run does not wait (its phase and message say
// why), when `wanted` is another wait, or when the wait was already answered
// and not rejected (answers are final once given).
StatusOr<OpenWait> OpenWaitOf(const nlohmann::json& flowrun, const std::string& wanted);

// JSON Patch ops that set status.answers[key] = answer on `flowrun` (an
// "add" of the member when status.answers exists — which replaces the value
// whole — else an "add" of status.answers itself).
nlohmann::json AnswerPatch(const nlohmann::json& flowrun, const std::string& key, const nlohmann::json& answer);
// RFC 6901 escaping of one token ("~" → "~0", "/" → "~1").
std::string PointerToken(const std::string& token);

// The AnswerAccepted condition before the write, to tell a new verdict from
// an old one.
struct Verdict {
  std::string status, reason, message, last_transition_time;
  bool operator==(const Verdict&) const = default;
};
std::optional<Verdict> AnswerCondition(const nlohmann::json& flowrun);

struct Progress {
  enum Kind { kPending, kAccepted, kRejected } kind = kPending;
  std::string reason, message;  // of the AnswerAccepted condition
  std::string job;              // the resumed attempt's Job (accepted; may be "" until created)
  int attempt = 0;
  std::string phase;
};
// What became of the answer to `key`, given the condition before the write.
Progress AnswerProgress(const nlohmann::json& flowrun, const std::string& key, const std::optional<Verdict>& before);

// A refusal of the status write as a person-readable text: the admission
// policy's own message (the part after "denied request: "), plus who may
// answer when the approvers are the reason.
std::string ExplainRefusal(int http_status, const std::string& message, const nlohmann::json& flowrun);
// "alice, bob and members of research-leads", "anyone RBAC allows to patch
// flowruns/status", "nobody (the wait ends only by its deadline)".
std::string WhoMayAnswer(const nlohmann::json& flowrun);

}  // namespace flowrun::plugin
