// The FlowRun view: parsing the object (spec validation with reasons) and
// writing its status back (types.h).
#include "flowrun/controller/types.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "flowrun/json_fields.h"
#include "flowrun/money.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

std::optional<TimePoint> Time(const json& o, const char* key) { return ParseTime(JsonString(o, key)); }

std::string Quote(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return TruncateUtf8(s, 80);
}

// Spec field readers: record "<path>: <problem>" and keep the default.
struct SpecReader {
  std::vector<std::string>& errors;

  bool Present(const json& o, const char* key) {
    return o.is_object() && o.contains(key) && !o.at(key).is_null();
  }
  void String(const json& o, const char* key, const std::string& path, std::string& out) {
    if (!Present(o, key)) return;
    if (o.at(key).is_string()) out = o.at(key).get<std::string>();
    else errors.push_back(path + ": must be a string, got " + Quote(o.at(key)));
  }
  void Integer(const json& o, const char* key, const std::string& path, int64_t min, std::optional<int64_t>& out) {
    if (!Present(o, key)) return;
    const json& v = o.at(key);
    bool integral = v.is_number_integer() ||
                    (v.is_number_float() && std::isfinite(v.get<double>()) &&
                     v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 9e15);
    if (!integral) {
      errors.push_back(path + ": must be an integer, got " + Quote(v));
      return;
    }
    int64_t x = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
    if (x < min) {
      errors.push_back(path + ": must be >= " + std::to_string(min) + ", got " + std::to_string(x));
      return;
    }
    out = x;
  }
  void StringList(const json& o, const char* key, const std::string& path, std::vector<std::string>& out) {
    if (!Present(o, key)) return;
    const json& v = o.at(key);
    if (!v.is_array()) {
      errors.push_back(path + ": must be a list of strings, got " + Quote(v));
      return;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) {
        errors.push_back(path + "[" + std::to_string(i) + "]: must be a string, got " + Quote(v[i]));
        continue;
      }
      out.push_back(v[i].get<std::string>());
    }
  }
  void ObjectList(const json& o, const char* key, const std::string& path, json& out) {
    if (!Present(o, key)) return;
    const json& v = o.at(key);
    if (!v.is_array()) {
      errors.push_back(path + ": must be a list, got " + Quote(v));
      return;
    }
    for (size_t i = 0; i < v.size(); ++i)
      if (!v[i].is_object()) {
        errors.push_back(path + "[" + std::to_string(i) + "]: must be an object, got " + Quote(v[i]));
        return;
      }
    out = v;
  }
  void Object(const json& o, const char* key, const std::string& path, json& out) {
    if (!Present(o, key)) return;
    if (o.at(key).is_object()) out = o.at(key);
    else errors.push_back(path + ": must be an object, got " + Quote(o.at(key)));
  }
};

// spec.replay: the CRD validates the same rules; a FlowRun that bypassed it
// (an old CRD) gets the reasons here and starts no attempt.
void ParseReplay(const json& spec, SpecReader& r, FlowRunSpec& s) {
  if (!r.Present(spec, "replay")) return;
  const json& rp = spec.at("replay");
  if (!rp.is_object()) {
    r.errors.push_back("spec.replay: must be an object, got " + Quote(rp));
    return;
  }
  ReplaySpec out;
  const json& from = JsonField(rp, "from");
  if (!from.is_object()) {
    r.errors.push_back(from.is_null() ? "spec.replay.from: required" : "spec.replay.from: must be an object, got " + Quote(from));
  } else {
    r.String(from, "run", "spec.replay.from.run", out.run);
    if (out.run.empty()) r.errors.push_back("spec.replay.from.run: required (the source FlowRun's name)");
    else if (out.run.find('/') != std::string::npos)
      r.errors.push_back("spec.replay.from.run: a FlowRun name in this namespace, without a namespace/ prefix, got \"" +
                         TruncateUtf8(out.run, 80) + "\"");
    r.String(from, "checkpoint", "spec.replay.from.checkpoint", out.checkpoint);
    if (out.checkpoint.empty()) r.errors.push_back("spec.replay.from.checkpoint: required (the cut)");
    std::optional<int64_t> occ;
    r.Integer(from, "occurrence", "spec.replay.from.occurrence", 1, occ);
    if (occ) out.occurrence = static_cast<int>(std::min<int64_t>(*occ, 1 << 30));
    r.String(from, "uid", "spec.replay.from.uid", out.uid);
  }
  json outputs = json::object(), answers = json::object(), output_from = json::object();
  r.Object(rp, "outputs", "spec.replay.outputs", outputs);
  for (auto it = outputs.begin(); it != outputs.end(); ++it) out.outputs[it.key()] = *it;
  r.Object(rp, "answers", "spec.replay.answers", answers);
  for (auto it = answers.begin(); it != answers.end(); ++it) out.answers[it.key()] = *it;
  r.Object(rp, "outputFrom", "spec.replay.outputFrom", output_from);
  for (auto it = output_from.begin(); it != output_from.end(); ++it) {
    const std::string path = "spec.replay.outputFrom." + it.key() + ".configMapKeyRef";
    const json& ref = JsonField(*it, "configMapKeyRef");
    ConfigMapKeyRef k{JsonString(ref, "name"), JsonString(ref, "key")};
    if (k.name.empty() || k.key.empty()) {
      r.errors.push_back(path + ": needs a name and a key");
      continue;
    }
    if (out.outputs.count(it.key())) {
      r.errors.push_back(path + ": checkpoint " + it.key() + " also has an output in spec.replay.outputs");
      continue;
    }
    out.output_from[it.key()] = k;
  }
  s.replay = std::move(out);
}

FlowRunSpec ParseSpec(const json& spec, std::vector<std::string>& errors) {
  FlowRunSpec s;
  SpecReader r{errors};
  if (spec.is_null()) {
    errors.push_back("spec: missing");
    return s;
  }
  if (!spec.is_object()) {
    errors.push_back("spec: must be an object, got " + Quote(spec));
    return s;
  }
  const json& t = JsonField(spec, "template");
  if (!t.is_object()) {
    errors.push_back(t.is_null() ? "spec.template: missing" : "spec.template: must be an object, got " + Quote(t));
  } else {
    r.String(t, "image", "spec.template.image", s.pod.image);
    if (s.pod.image.empty() && (!t.contains("image") || t.at("image").is_string()))
      errors.push_back("spec.template.image: required");
    r.String(t, "imagePullPolicy", "spec.template.imagePullPolicy", s.pod.image_pull_policy);
    if (!s.pod.image_pull_policy.empty() && s.pod.image_pull_policy != "Always" &&
        s.pod.image_pull_policy != "IfNotPresent" && s.pod.image_pull_policy != "Never") {
      errors.push_back("spec.template.imagePullPolicy: must be Always, IfNotPresent or Never, got \"" +
                       s.pod.image_pull_policy + "\"");
      s.pod.image_pull_policy.clear();
    }
    r.StringList(t, "command", "spec.template.command", s.pod.command);
    r.StringList(t, "args", "spec.template.args", s.pod.args);
    r.ObjectList(t, "env", "spec.template.env", s.pod.env);
    for (size_t i = 0; i < s.pod.env.size(); ++i)
      if (JsonString(s.pod.env[i], "name").empty()) {
        errors.push_back("spec.template.env[" + std::to_string(i) + "].name: required");
        s.pod.env = json::array();
        break;
      }
    r.ObjectList(t, "envFrom", "spec.template.envFrom", s.pod.env_from);
    r.Object(t, "resources", "spec.template.resources", s.pod.resources);
    r.String(t, "serviceAccountName", "spec.template.serviceAccountName", s.pod.service_account_name);
    r.Object(t, "nodeSelector", "spec.template.nodeSelector", s.pod.node_selector);
    for (auto it = s.pod.node_selector.begin(); it != s.pod.node_selector.end(); ++it)
      if (!it->is_string()) {
        errors.push_back("spec.template.nodeSelector." + it.key() + ": must be a string, got " + Quote(*it));
        s.pod.node_selector = json::object();
        break;
      }
    r.ObjectList(t, "tolerations", "spec.template.tolerations", s.pod.tolerations);
    r.ObjectList(t, "imagePullSecrets", "spec.template.imagePullSecrets", s.pod.image_pull_secrets);
  }
  if (r.Present(spec, "parameters")) {
    if (spec.at("parameters").is_object()) s.parameters = spec.at("parameters");
    else errors.push_back("spec.parameters: must be a JSON object, got " + Quote(spec.at("parameters")));
  }
  r.String(spec, "flow", "spec.flow", s.flow);
  if (r.Present(spec, "budgetUSD")) {
    const json& b = spec.at("budgetUSD");
    if (b.is_number() && std::isfinite(b.get<double>()) && b.get<double>() >= 0) s.budget_usd = b.get<double>();
    else errors.push_back("spec.budgetUSD: must be a number >= 0, got " + Quote(b));
  }
  const json& retry = JsonField(spec, "retry");
  if (!retry.is_null() && !retry.is_object()) errors.push_back("spec.retry: must be an object, got " + Quote(retry));
  if (retry.is_object()) {
    std::optional<int64_t> v;
    r.Integer(retry, "maxAttempts", "spec.retry.maxAttempts", 1, v);
    if (v) s.retry.max_attempts = static_cast<int>(std::min<int64_t>(*v, 1000000));
    v.reset();
    r.Integer(retry, "backoffSeconds", "spec.retry.backoffSeconds", 0, v);
    if (v) s.retry.backoff_seconds = *v;
    v.reset();
    r.Integer(retry, "maxBackoffSeconds", "spec.retry.maxBackoffSeconds", 0, v);
    if (v) s.retry.max_backoff_seconds = *v;
  }
  r.Integer(spec, "attemptDeadlineSeconds", "spec.attemptDeadlineSeconds", 1, s.attempt_deadline_seconds);
  r.Integer(spec, "waitTimeoutSeconds", "spec.waitTimeoutSeconds", 1, s.wait_timeout_seconds);
  r.String(spec, "onWaitTimeout", "spec.onWaitTimeout", s.on_wait_timeout);
  if (!s.on_wait_timeout.empty() && s.on_wait_timeout != "fail" && s.on_wait_timeout != "default") {
    errors.push_back("spec.onWaitTimeout: must be fail or default, got \"" + s.on_wait_timeout + "\"");
    s.on_wait_timeout.clear();
  }
  r.Integer(spec, "ttlSecondsAfterFinished", "spec.ttlSecondsAfterFinished", 0, s.ttl_seconds_after_finished);
  const json& ap = JsonField(spec, "approvers");
  if (ap.is_object()) {
    r.StringList(ap, "users", "spec.approvers.users", s.approver_users);
    r.StringList(ap, "groups", "spec.approvers.groups", s.approver_groups);
  } else if (!ap.is_null()) {
    errors.push_back("spec.approvers: must be an object, got " + Quote(ap));
  }
  const json& db = JsonField(spec, "database");
  if (db.is_object()) {
    const json& ref = JsonField(db, "secretRef");
    if (ref.is_object()) {
      SecretKeyRef k;
      r.String(ref, "name", "spec.database.secretRef.name", k.name);
      r.String(ref, "key", "spec.database.secretRef.key", k.key);
      if (k.key.empty()) k.key = "url";
      if (k.name.empty()) errors.push_back("spec.database.secretRef.name: required");
      else s.database_secret = k;
    } else if (!ref.is_null()) {
      errors.push_back("spec.database.secretRef: must be an object, got " + Quote(ref));
    }
  } else if (!db.is_null()) {
    errors.push_back("spec.database: must be an object, got " + Quote(db));
  }
  ParseReplay(spec, r, s);
  if (r.Present(spec, "cancel")) {
    if (spec.at("cancel").is_boolean()) s.cancel = spec.at("cancel").get<bool>();
    else errors.push_back("spec.cancel: must be a boolean, got " + Quote(spec.at("cancel")));
  }
  return s;
}

}  // namespace

bool IsTerminalPhase(const std::string& p) { return p == kSucceeded || p == kFailed || p == kCancelled; }

json AttemptStatus::ToJson() const {
  json j = {{"attempt", attempt}};
  if (!job.empty()) j["job"] = job;
  if (!start_time.empty()) j["startTime"] = start_time;
  if (!end_time.empty()) j["endTime"] = end_time;
  if (!outcome.empty()) j["outcome"] = outcome;
  if (!reason.empty()) j["reason"] = reason;
  if (!message.empty()) j["message"] = message;
  return j;
}

json WaitStatus::ToJson() const {
  json j = {{"name", name}};
  if (!question.empty()) j["question"] = question;
  if (schema) j["schema"] = *schema;
  if (!asked_at.empty()) j["askedAt"] = asked_at;
  if (!deadline.empty()) j["deadline"] = deadline;
  if (!on_timeout.empty()) j["onTimeout"] = on_timeout;
  return j;
}

json Condition::ToJson() const {
  json j = {{"type", type}, {"status", status}, {"reason", reason}, {"message", message},
            {"lastTransitionTime", last_transition_time}};
  if (observed_generation) j["observedGeneration"] = observed_generation;
  return j;
}

std::string FormatUsdForDisplay(double usd) {
  if (!std::isfinite(usd) || usd < 0) return "";
  if (usd == 0) return "$0";
  if (usd < 0.000001) return "<$0.000001";
  char buf[32];
  if (usd >= 1e12) {
    std::snprintf(buf, sizeof buf, "$%.2e", usd);  // "$4.61e+18": a number that big is a bug, shown as one
  } else if (usd >= 1) {
    std::snprintf(buf, sizeof buf, "$%.2f", usd);
  } else {
    // Two significant digits: as many decimals as the leading zeros need, plus two.
    int decimals = std::max(2, 1 - static_cast<int>(std::floor(std::log10(usd))));
    std::snprintf(buf, sizeof buf, "$%.*f", decimals, usd);
  }
  return buf;
}

double StatusUsd(double usd) { return usd > 0 ? RoundUsd(usd) : 0; }

std::string DecimalUsd(double usd) { return usd > 0 ? UsdDecimal(usd) : "0"; }  // UsdDecimal rounds like RoundUsd

std::string FormatUsdInMessage(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.4f", usd);
  return buf;
}

const Condition* FlowRunStatus::FindCondition(const std::string& type) const {
  for (const auto& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

const AttemptStatus* FlowRunStatus::FindAttempt(int n) const {
  for (const auto& a : attempts)
    if (a.attempt == n) return &a;
  return nullptr;
}

json FlowRunStatus::ToJson() const {
  json j = json::object();
  if (!phase.empty()) j["phase"] = phase;
  if (attempt) j["attempt"] = attempt;
  if (!current_job.empty()) j["currentJob"] = current_job;
  if (!attempts.empty()) {
    j["attempts"] = json::array();
    for (const auto& a : attempts) j["attempts"].push_back(a.ToJson());
  }
  if (wait) j["wait"] = wait->ToJson();
  if (checkpoints.is_object()) j["checkpoints"] = checkpoints;
  if (cost.is_object()) {
    // display is derived from usd every time, so it never disagrees with it
    // and an unchanged usd leaves the status unchanged (no extra patch).
    json c = cost;
    std::string shown = c.contains("usd") && c["usd"].is_number() ? FormatUsdForDisplay(c["usd"].get<double>()) : "";
    if (shown.empty()) c.erase("display");
    else c["display"] = shown;
    j["cost"] = std::move(c);
  }
  if (replay.is_object()) j["replay"] = replay;
  if (!result.empty()) j["result"] = result;
  if (!message.empty()) j["message"] = message;
  if (!conditions.empty()) {
    j["conditions"] = json::array();
    for (const auto& c : conditions) j["conditions"].push_back(c.ToJson());
  }
  if (observed_generation) j["observedGeneration"] = observed_generation;
  return j;
}

FlowRunStatus ParseStatus(const json& st) {
  FlowRunStatus s;
  if (!st.is_object()) return s;
  s.phase = JsonString(st, "phase");
  s.attempt = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(JsonInt(st, "attempt"), 1 << 30)));
  s.current_job = JsonString(st, "currentJob");
  const json& atts = JsonField(st, "attempts");
  if (atts.is_array())
    for (const auto& a : atts) {
      if (!a.is_object()) continue;
      AttemptStatus r;
      r.attempt = static_cast<int>(std::min<int64_t>(JsonInt(a, "attempt"), 1 << 30));
      if (r.attempt <= 0) continue;
      r.job = JsonString(a, "job");
      r.start_time = JsonString(a, "startTime");
      r.end_time = JsonString(a, "endTime");
      r.outcome = JsonString(a, "outcome");
      r.reason = JsonString(a, "reason");
      r.message = JsonString(a, "message");
      s.attempts.push_back(std::move(r));
    }
  const json& w = JsonField(st, "wait");
  if (w.is_object() && !JsonString(w, "name").empty()) {
    WaitStatus ws;
    ws.name = JsonString(w, "name");
    ws.question = JsonString(w, "question");
    if (w.contains("schema") && !w.at("schema").is_null()) ws.schema = w.at("schema");
    ws.asked_at = JsonString(w, "askedAt");
    ws.deadline = JsonString(w, "deadline");
    ws.on_timeout = JsonString(w, "onTimeout");
    s.wait = std::move(ws);
  }
  if (JsonField(st, "checkpoints").is_object()) s.checkpoints = st.at("checkpoints");
  if (JsonField(st, "cost").is_object()) s.cost = st.at("cost");
  if (JsonField(st, "replay").is_object()) s.replay = st.at("replay");
  s.result = JsonString(st, "result");
  s.message = JsonString(st, "message");
  const json& conds = JsonField(st, "conditions");
  if (conds.is_array())
    for (const auto& c : conds) {
      if (JsonString(c, "type").empty()) continue;
      s.conditions.push_back({JsonString(c, "type"), JsonString(c, "status"), JsonString(c, "reason"), JsonString(c, "message"),
                              JsonString(c, "lastTransitionTime"), JsonInt(c, "observedGeneration")});
    }
  s.observed_generation = JsonInt(st, "observedGeneration");
  return s;
}

StatusOr<FlowRunView> ParseFlowRun(const json& obj) {
  if (!obj.is_object()) return InvalidArgument("FlowRun: not a JSON object");
  std::string kind = JsonString(obj, "kind");
  if (!kind.empty() && kind != kKind) return InvalidArgument("FlowRun: kind is \"" + kind + "\", want FlowRun");
  FlowRunView v;
  v.meta = ParseMeta(obj);
  if (v.meta.name.empty()) return InvalidArgument("FlowRun: metadata.name missing");
  if (v.meta.uid.empty()) return InvalidArgument("FlowRun " + v.meta.name + ": metadata.uid missing");
  v.spec = ParseSpec(JsonField(obj, "spec"), v.spec_errors);
  v.status = ParseStatus(JsonField(obj, "status"));
  const json& answers = JsonField(JsonField(obj, "status"), "answers");
  if (answers.is_object()) v.answers = answers;
  v.raw = obj;
  return v;
}

}  // namespace flowrun::controller
