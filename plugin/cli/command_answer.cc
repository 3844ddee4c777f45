// answer: schema-aware, validated locally, written through the status
// subresource as the user (so spec.approvers and the write-once rules of
// the admission policies apply), then the controller's verdict.
#include <sstream>

#include "command.h"
#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"
#include "flowrun/plugin/answer_input.h"
#include "flowrun/plugin/answer_write.h"
#include "flowrun/plugin/json_value.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

struct AnswerOptions {
  std::string run;
  std::vector<std::string> words;  // [wait] key=value...
  std::vector<std::string> sets;
  std::string file;
  bool interactive = false, dry_run = false, no_wait = false;
  int timeout = 120;
};

int Answer(Env& env, AnswerOptions o) {
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  auto fr = s->client().Get(kube::resources::FlowRuns(), s->ns(), o.run);
  if (!fr.ok()) {
    if (kube::IsNotFound(fr.status())) return Fail(env, NotFound("FlowRun " + o.run + " not found in namespace " + s->ns()));
    return Fail(env, fr.status());
  }
  // The first word names the wait when it has no '=' and the schema cannot
  // take it as a bare value (an object), or when it is the open wait's name.
  const json& st = JsonField(*fr, "status");
  std::string open = JsonString(JsonField(st, "wait"), "name");
  json schema = JsonField(JsonField(st, "wait"), "schema");
  std::string wanted;
  if (!o.words.empty() && o.words[0].find('=') == std::string::npos &&
      (o.words[0] == open || IsObjectSchema(schema) || o.words.size() > 1)) {
    wanted = o.words[0];
    o.words.erase(o.words.begin());
  }
  auto wait = OpenWaitOf(*fr, wanted);
  if (!wait.ok()) return Fail(env, wait.status());
  if (wait->schema.is_null())
    *env.err << "note: status.wait carries no schema (too big for the status); the controller validates the answer\n";

  json answer;
  if (o.interactive) {
    if (!o.words.empty() || !o.sets.empty() || !o.file.empty()) {
      *env.err << "error: -i asks for every value; do not combine it with key=value, --set or -f\n";
      return kExitUsage;
    }
    for (;;) {
      auto a = PromptAnswer(wait->schema, wait->name, wait->question, *env.in, *env.err);
      if (!a.ok()) return Fail(env, a.status());
      Status v = ValidateAnswer(wait->schema, *a);
      if (v.ok()) {
        answer = *a;
        break;
      }
      *env.err << "that answer does not match the schema:\n" << v.message() << "\nagain:\n";
    }
  } else {
    AnswerInput in;
    in.words = o.words;
    in.sets = o.sets;
    if (!o.file.empty()) {
      auto text = ReadTextFile(o.file, *env.in);
      if (!text.ok()) return Fail(env, text.status());
      auto f = ParseJsonText(*text, o.file);
      if (!f.ok()) return Fail(env, f.status());
      in.file = *f;
    }
    auto a = BuildAnswer(wait->schema, wait->name, in);
    if (!a.ok()) {
      *env.err << "error: " << a.status().message() << "\n";
      return a.status().message().rfind("no answer given", 0) == 0 ? kExitUsage : kExitInvalidAnswer;
    }
    answer = *a;
  }
  Status valid = ValidateAnswer(wait->schema, answer);
  if (!valid.ok()) {
    *env.err << "error: the answer " << answer.dump() << " to '" << wait->name
             << "' does not match its schema; nothing was written:\n"
             << valid.message() << "\nthe wait asks for " << DescribeSchema(wait->schema) << "\n";
    return kExitInvalidAnswer;
  }
  json patch = AnswerPatch(*fr, wait->name, answer);
  if (o.dry_run) {
    json doc = {{"run", o.run}, {"wait", wait->name}, {"answer", answer}, {"patch", patch}};
    if (IsMachine(format)) *env.out << MachineText(doc, format);
    else *env.out << "would answer '" << wait->name << "' with " << answer.dump() << "\nJSON patch of "
                  << o.run << "/status: " << patch.dump() << "\n";
    return kExitOk;
  }
  auto before = AnswerCondition(*fr);
  std::string path = kube::resources::FlowRuns().CollectionPath(s->ns()) + "/" + UrlEscape(o.run) +
                     "/status?fieldManager=kubectl-flowrun";
  auto written = s->client().Raw("PATCH", path, patch, "application/json-patch+json");
  if (!written.ok()) {
    int http = kube::HttpStatusOf(written.status());
    *env.err << "error: the answer was refused: " << ExplainRefusal(http, written.status().message(), *fr) << "\n";
    if (http == 403) return kExitForbidden;
    if (http == 409) return kExitNotWaiting;
    return ExitCodeFor(written.status());
  }
  if (wait->previous_rejected)
    *env.err << "replaced the rejected answer " << wait->previous.dump() << " with " << answer.dump() << "\n";
  json doc = {{"run", o.run}, {"wait", wait->name}, {"answer", answer}};
  if (o.no_wait) {
    doc["verdict"] = "written";
    if (IsMachine(format)) *env.out << MachineText(doc, format);
    else *env.out << "answered '" << wait->name << "' with " << answer.dump() << " (not waiting for the controller)\n";
    return kExitOk;
  }
  // The controller's verdict: AnswerAccepted, then the resumed attempt's Job.
  auto deadline = env.clock->MonotonicNow() + std::chrono::seconds(o.timeout);
  Progress p;
  json last;
  for (;;) {
    auto cur = s->client().Get(kube::resources::FlowRuns(), s->ns(), o.run);
    if (cur.ok()) {
      last = *cur;
      p = AnswerProgress(*cur, wait->name, before);
      bool job_known = !p.job.empty() || p.phase == "Succeeded" || p.phase == "Failed";
      if (p.kind == Progress::kRejected || (p.kind == Progress::kAccepted && job_known)) break;
    }
    if (env.clock->MonotonicNow() >= deadline) break;
    env.clock->SleepFor(std::chrono::milliseconds(250));
  }
  doc["reason"] = p.reason;
  doc["message"] = p.message;
  doc["phase"] = p.phase;
  int rc = kExitOk;
  std::ostringstream text;
  if (p.kind == Progress::kAccepted) {
    doc["verdict"] = "accepted";
    doc["job"] = p.job;
    doc["attempt"] = p.attempt;
    text << "answer accepted: " << p.message << "\n";
    if (!p.job.empty()) text << "resumed: attempt " << p.attempt << ", Job " << p.job << " (phase " << p.phase << ")\n";
    else text << "phase " << p.phase << "\n";
  } else if (p.kind == Progress::kRejected) {
    doc["verdict"] = "rejected";
    text << "the controller rejected the answer (" << p.reason << "): " << p.message << "\n"
         << "answer again with a corrected value: the new answer replaces the rejected one\n";
    rc = kExitRejected;
  } else {
    doc["verdict"] = "timeout";
    auto c = AnswerCondition(last);
    text << "the answer was written, but the controller gave no verdict within " << o.timeout << "s (phase "
         << p.phase << (c ? ", AnswerAccepted " + c->status + "/" + c->reason + ": " + c->message : "") << ")\n"
         << "is the flowrun controller running? `kubectl flowrun status " << o.run << "` shows what happens next\n";
    rc = kExitTimeout;
  }
  if (IsMachine(format)) *env.out << MachineText(doc, format);
  else (rc == kExitOk ? *env.out : *env.err) << text.str();
  return rc;
}

}  // namespace

void AddAnswerCommand(CLI::App& app, Env& env, int& exit_code) {
  auto o = std::make_shared<AnswerOptions>();
  auto* c = app.add_subcommand("answer", "answer a run's open question (checked against its schema first)");
  c->add_option("run", o->run, "the FlowRun")->required();
  c->add_option("words", o->words, "[wait] then key=value... (or one bare value for a non-object answer)");
  c->add_option("--set", o->sets, "path=value inside an object answer (review.score=3, tags[0]=a); repeatable")
      ->allow_extra_args(false);
  c->add_option("-f,--filename", o->file, "the whole answer as JSON from a file ('-' for stdin)");
  c->add_flag("-i,--interactive", o->interactive, "ask for each property (type, allowed values, default) on the terminal");
  c->add_flag("--dry-run", o->dry_run, "convert and validate only; print the JSON patch that would be sent");
  c->add_flag("--no-wait", o->no_wait, "do not wait for the controller's verdict");
  c->add_option("--timeout", o->timeout, "seconds to wait for the verdict (default 120)");
  AddGlobalFlags(c, env.global);
  c->footer(
      "Values are converted by the wait's schema (status.wait.schema): true/false/yes/no for booleans,\n"
      "numbers, a,b,c or JSON for arrays, JSON for objects; then validated with the controller's own\n"
      "validator, so an invalid answer is refused here with the schema's reasons and nothing is written.\n"
      "The answer goes through the status subresource as you, so spec.approvers applies. An answer the\n"
      "controller rejected (AnswerAccepted=False, InvalidAnswer) is replaced as a whole by a new one.\n\n"
      "Examples:\n"
      "  kubectl flowrun answer research-1 true                        # a yes/no question\n"
      "  kubectl flowrun answer research-1 proceed=true                # the same, naming the wait\n"
      "  kubectl flowrun answer review-7 review approve=false comment='cite sources'\n"
      "  kubectl flowrun answer review-7 --set score=4 --set tags=a,b  # nested paths: --set a.b[0]=x\n"
      "  kubectl flowrun answer review-7 -f answer.json\n"
      "  kubectl flowrun answer review-7 -i                            # prompts per property\n\n"
      "Exit codes: 0 accepted, 4 refused (RBAC, approvers, write-once), 5 invalid (refused locally),\n"
      "6 rejected by the controller, 7 no verdict within --timeout, 9 nothing to answer.");
  c->callback([&, o] { exit_code = Answer(env, *o); });
}

}  // namespace flowrun::plugin
