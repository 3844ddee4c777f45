#include "flowrun/plugin/answer_write.h"

#include <vector>

#include "flowrun/json_fields.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

const json& StatusOf(const json& fr) { return JsonField(fr, "status"); }

bool Mentions(const std::string& message, const std::string& key) {
  return message.find("'" + key + "'") != std::string::npos;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : (i + 1 == names.size() ? " and " : ", ")) + names[i];
  return s;
}

std::vector<std::string> Strings(const json& a) {
  std::vector<std::string> out;
  if (a.is_array())
    for (const auto& x : a)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

}  // namespace

std::optional<Verdict> AnswerCondition(const json& fr) {
  const json& conds = JsonField(StatusOf(fr), "conditions");
  if (!conds.is_array()) return std::nullopt;
  for (const auto& c : conds)
    if (JsonString(c, "type") == "AnswerAccepted")
      return Verdict{JsonString(c, "status"), JsonString(c, "reason"), JsonString(c, "message"),
                     JsonString(c, "lastTransitionTime")};
  return std::nullopt;
}

StatusOr<OpenWait> OpenWaitOf(const json& fr, const std::string& wanted) {
  const json& st = StatusOf(fr);
  const std::string name = JsonString(fr, "metadata", "name");
  const std::string phase = JsonString(st, "phase");
  const json& wait = JsonField(st, "wait");
  if (phase != "Waiting" || !wait.is_object() || JsonString(wait, "name").empty()) {
    std::string msg = JsonString(st, "message");
    return FailedPrecondition("FlowRun " + name + " is not waiting for an answer (phase " +
                              (phase.empty() ? "unknown" : phase) + (msg.empty() ? "" : ": " + msg) + ")");
  }
  OpenWait w;
  w.name = JsonString(wait, "name");
  if (!wanted.empty() && wanted != w.name)
    return FailedPrecondition("FlowRun " + name + " waits for '" + w.name + "', not '" + wanted +
                              "' (people may answer only the open wait)");
  w.question = JsonString(wait, "question");
  w.schema = JsonField(wait, "schema");
  w.asked_at = JsonString(wait, "askedAt");
  w.deadline = JsonString(wait, "deadline");
  w.on_timeout = JsonString(wait, "onTimeout");
  const json& answers = JsonField(st, "answers");
  if (answers.is_object() && answers.contains(w.name)) {
    w.previous = answers[w.name];
    auto c = AnswerCondition(fr);
    w.previous_rejected = c && c->status == "False" && c->reason == "InvalidAnswer" && Mentions(c->message, w.name);
    if (!w.previous_rejected)
      return FailedPrecondition("FlowRun " + name + ": '" + w.name + "' was already answered (" + w.previous.dump() +
                                ") and an answer is final once given; it can be replaced only after the controller "
                                "rejected it (condition AnswerAccepted, reason InvalidAnswer)");
  }
  return w;
}

std::string PointerToken(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

json AnswerPatch(const json& fr, const std::string& key, const json& answer) {
  const json& answers = JsonField(StatusOf(fr), "answers");
  if (answers.is_object())
    return json::array({{{"op", "add"}, {"path", "/status/answers/" + PointerToken(key)}, {"value", answer}}});
  return json::array({{{"op", "add"}, {"path", "/status/answers"}, {"value", {{key, answer}}}}});
}

Progress AnswerProgress(const json& fr, const std::string& key, const std::optional<Verdict>& before) {
  Progress p;
  const json& st = StatusOf(fr);
  p.phase = JsonString(st, "phase");
  auto c = AnswerCondition(fr);
  bool changed = c && (!before || !(*c == *before));
  const json& wait = JsonField(st, "wait");
  bool still_asked = p.phase == "Waiting" && JsonString(wait, "name") == key;
  if (c && c->status == "True" && Mentions(c->message, key) && (changed || !still_asked)) {
    p.kind = Progress::kAccepted;
    p.reason = c->reason;
    p.message = c->message;
    p.job = JsonString(st, "currentJob");
    p.attempt = static_cast<int>(JsonInt(st, "attempt"));
    // A quick attempt may have ended already (no currentJob): the newest attempt names its Job.
    const json& attempts = JsonField(st, "attempts");
    if (p.job.empty() && attempts.is_array())
      for (const auto& a : attempts)
        if (JsonInt(a, "attempt") >= p.attempt && !JsonString(a, "job").empty()) {
          p.attempt = static_cast<int>(JsonInt(a, "attempt"));
          p.job = JsonString(a, "job");
        }
    return p;
  }
  if (c && c->status == "False" && Mentions(c->message, key) && changed) {
    p.kind = Progress::kRejected;
    p.reason = c->reason;
    p.message = c->message;
    return p;
  }
  if (p.phase == "Failed" || p.phase == "Cancelled" || p.phase == "Succeeded") {
    p.kind = p.phase == "Succeeded" ? Progress::kAccepted : Progress::kRejected;
    p.reason = p.phase;
    p.message = JsonString(st, "message");
  }
  return p;
}

std::string WhoMayAnswer(const json& fr) {
  const json& spec = JsonField(fr, "spec");
  if (!spec.is_object() || !spec.contains("approvers")) return "anyone RBAC allows to patch flowruns/status";
  const json& a = spec["approvers"];
  auto users = Strings(JsonField(a, "users"));
  auto groups = Strings(JsonField(a, "groups"));
  if (users.empty() && groups.empty()) return "nobody (spec.approvers is empty: the wait ends only at its deadline)";
  std::string s = JoinNames(users);
  if (!groups.empty()) s += (s.empty() ? "members of " : " and members of ") + JoinNames(groups);
  return s;
}

std::string ExplainRefusal(int http_status, const std::string& message, const json& fr) {
  // The client's message is "<METHOD> <path>: HTTP <code> <reason>: <API message>".
  std::string api = message;
  if (auto p = api.find("HTTP "); p != std::string::npos)
    if (auto q = api.find(": ", p); q != std::string::npos) api = api.substr(q + 2);
  const std::string denied = "denied request: ";
  std::string why = api;
  std::string policy;
  if (auto p = api.find(denied); p != std::string::npos) {
    why = api.substr(p + denied.size());
    auto q = api.find("ValidatingAdmissionPolicy '");
    if (q != std::string::npos) {
      auto start = q + std::string("ValidatingAdmissionPolicy '").size();
      policy = api.substr(start, api.find('\'', start) - start);
    }
  }
  std::string out = why;
  if (!policy.empty()) out += "\n(refused by the admission policy " + policy + ")";
  if (policy == "flowrun.dev-answers" && why.find("approvers") != std::string::npos)
    out += "\nwho may answer: " + WhoMayAnswer(fr);
  else if (http_status == 403 && policy.empty())
    out += "\nRBAC: answering needs 'patch' on flowruns/status (the chart's ClusterRole flowrun-approver)";
  return out;
}

}  // namespace flowrun::plugin
