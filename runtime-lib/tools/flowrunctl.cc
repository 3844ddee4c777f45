// flowrunctl: the store API on the command line. Answers waits, sets budgets,
// shows runs, their checkpoints, costs and artifacts. The connection string
// comes from --db or FLOWRUN_DATABASE_URL (or the PG* variables) and is never
// printed.
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "flowrun/postgres.h"
#include "flowrun/rfc3339.h"

namespace {

using flowrun::Status;

std::string Usd(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.6f", v);
  return buf;
}

nlohmann::json UsageJson(const flowrun::Usage& u) {
  return {{"llmCalls", u.llm_calls}, {"inputTokens", u.input_tokens}, {"outputTokens", u.output_tokens},
          {"cachedTokens", u.cached_tokens}, {"usd", u.cost_usd}, {"unpricedCalls", u.unknown_cost_calls},
          {"unfinishedCalls", u.unfinished_calls}};
}

nlohmann::json RunJson(const flowrun::RunState& s) {
  nlohmann::json j = {{"uid", s.uid}, {"namespace", s.namespace_}, {"name", s.name}, {"flow", s.flow},
                      {"status", std::string(flowrun::RunStatusName(s.status))}, {"attempt", s.attempt}, {"epoch", s.epoch},
                      {"spent", UsageJson(s.spent)}, {"saved", UsageJson(s.saved)},
                      {"checkpoints", {{"completed", s.checkpoints_completed}, {"live", s.live_checkpoints},
                                       {"cached", s.cached_checkpoints}, {"reexecuted", s.reexecuted_checkpoints}}}};
  if (s.budget_usd) j["budgetUSD"] = *s.budget_usd;
  if (s.result) j["result"] = *s.result;
  if (!s.error.empty()) j["error"] = s.error;
  if (s.failure_reason != flowrun::FailureReason::kNone)
    j["failureReason"] = std::string(flowrun::FailureReasonName(s.failure_reason));
  if (s.open_wait) {
    j["openWait"] = {{"name", s.open_wait->name}, {"question", s.open_wait->question},
                     {"schema", s.open_wait->schema}, {"askedAt", flowrun::FormatTime(s.open_wait->asked_at)}};
    if (s.open_wait->deadline) j["openWait"]["deadline"] = flowrun::FormatTime(*s.open_wait->deadline);
  }
  if (s.replay) {
    const flowrun::ReplayInfo& r = *s.replay;
    j["replay"] = {{"sourceRunUid", r.source_run_uid}, {"sourceName", r.source_name},
                   {"cut", {{"name", r.cut.name}, {"occurrence", r.cut.occurrence}}},
                   {"preparedAt", flowrun::FormatTime(r.prepared_at)}, {"snapshotCheckpoints", r.snapshot_checkpoints},
                   {"copiedCheckpoints", r.copied_checkpoints}, {"inherited", UsageJson(r.inherited)},
                   {"cutReached", r.cut_reached}, {"overrides", nlohmann::json::array()}};
    for (const auto& [name, output] : r.output_overrides) j["replay"]["overrides"].push_back(name);
  }
  j["attempts"] = nlohmann::json::array();
  for (const auto& a : s.attempts) {
    nlohmann::json aj = {{"attempt", a.attempt}, {"epoch", a.epoch}, {"outcome", a.outcome ? std::string(flowrun::OutcomeKindName(*a.outcome)) : "running"},
                         {"startedAt", flowrun::FormatTime(a.started_at)}, {"live", a.live_checkpoints},
                         {"cached", a.cached_checkpoints}, {"savedUSD", a.saved.cost_usd}};
    if (a.finished_at) aj["finishedAt"] = flowrun::FormatTime(*a.finished_at);
    if (!a.error.empty()) aj["error"] = a.error;
    if (a.reason != flowrun::FailureReason::kNone) aj["reason"] = std::string(flowrun::FailureReasonName(a.reason));
    j["attempts"].push_back(aj);
  }
  return j;
}

int Fail(const Status& s) {
  std::cerr << "flowrunctl: " << s.ToString() << std::endl;
  switch (s.code()) {
    case flowrun::StatusCode::kInvalidArgument: return 2;
    case flowrun::StatusCode::kNotFound: return 3;
    case flowrun::StatusCode::kAlreadyExists:
    case flowrun::StatusCode::kFailedPrecondition: return 4;
    case flowrun::StatusCode::kUnavailable: return 5;
    default: return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowrunctl: inspect flowrun runs and answer their waits"};
  app.require_subcommand(1);
  std::string db;
  app.add_option("--db", db, "PostgreSQL connection string (default: $FLOWRUN_DATABASE_URL, then PG* variables)");
  bool as_json = false;
  app.add_flag("--json", as_json, "print JSON");

  std::string run, run_b, wait_name, answer_text, by = "flowrunctl", budget_text, reason = "cancelled by flowrunctl",
                                                  artifact_name;
  int version = 0;
  bool no_early = false;

  auto* show = app.add_subcommand("show", "show a run's state, spend and savings");
  show->add_option("run", run, "run uid")->required();
  auto* cps = app.add_subcommand("checkpoints", "list a run's checkpoints with duration and cost");
  cps->add_option("run", run, "run uid")->required();
  auto* costs = app.add_subcommand("costs", "a run's LLM spend per model and per checkpoint");
  costs->add_option("run", run, "run uid")->required();
  auto* answer = app.add_subcommand("answer", "answer a run's wait; validated against the wait's schema");
  answer->add_option("run", run, "run uid")->required();
  answer->add_option("wait", wait_name, "the wait's name")->required();
  answer->add_option("answer", answer_text, "the answer as JSON, e.g. true or '{\"ok\":1}'")->required();
  answer->add_option("--by", by, "who answers (recorded)");
  answer->add_flag("--no-early", no_early, "refuse unless the run is waiting for this wait now");
  auto* budget = app.add_subcommand("budget", "set a run's budget in USD ('none' removes it)");
  budget->add_option("run", run, "run uid")->required();
  budget->add_option("usd", budget_text, "USD, or none")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a run: no execution may write to it again");
  cancel->add_option("run", run, "run uid")->required();
  cancel->add_option("--reason", reason, "why");
  auto* del = app.add_subcommand("delete", "delete every row of a run");
  del->add_option("run", run, "run uid")->required();
  auto* arts = app.add_subcommand("artifacts", "list a run's artifacts");
  arts->add_option("run", run, "run uid")->required();
  auto* art = app.add_subcommand("artifact", "print an artifact (latest version unless --version)");
  art->add_option("run", run, "run uid")->required();
  art->add_option("name", artifact_name, "artifact name")->required();
  art->add_option("--version", version, "version (default: latest)");
  auto* diff = app.add_subcommand("diff", "compare an artifact across two runs (a JSON Patch for JSON artifacts)");
  diff->add_option("run_a", run, "first run uid")->required();
  diff->add_option("run_b", run_b, "second run uid")->required();
  diff->add_option("name", artifact_name, "artifact name")->required();
  auto* migrate = app.add_subcommand("migrate", "create or upgrade the flowrun schema");
  // What the controller does for a FlowRun with spec.replay, before its first
  // attempt (RunAdmin::PrepareReplay): for running a replay by hand.
  std::string source, source_name, cut_text;
  std::vector<std::string> output_texts, replay_answer_texts;
  auto* replay = app.add_subcommand("replay", "prepare a run (not started yet) as a replay of another run");
  replay->add_option("run", run, "the replay's run uid")->required();
  replay->add_option("--from", source, "the source run's uid")->required();
  replay->add_option("--cut", cut_text, "the first checkpoint to run live: NAME or NAME#OCCURRENCE")->required();
  replay->add_option("--source-name", source_name, "the source's name, for status");
  replay->add_option("--output", output_texts, "NAME=JSON: the output a reused checkpoint returns instead");
  replay->add_option("--answer", replay_answer_texts, "NAME=JSON: an early answer for a wait after the cut");

  CLI11_PARSE(app, argc, argv);

  flowrun::PostgresOptions opts;
  opts.conninfo = !db.empty() ? db : (std::getenv("FLOWRUN_DATABASE_URL") ? std::getenv("FLOWRUN_DATABASE_URL") : "");
  opts.application_name = "flowrunctl";
  opts.connect_attempts = 3;
  if (migrate->parsed()) {
    Status st = flowrun::Migrate(opts);
    if (!st.ok()) return Fail(st);
    std::cout << "schema at version " << flowrun::CurrentSchemaVersion() << std::endl;
    return 0;
  }
  auto admin_or = flowrun::OpenPostgresRunAdmin(opts);
  if (!admin_or.ok()) return Fail(admin_or.status());
  auto& admin = *admin_or.value();

  if (replay->parsed()) {
    flowrun::ReplayRequest req;
    req.run_uid = run;
    req.source_run_uid = source;
    req.source_name = source_name;
    req.cut.name = cut_text;
    if (auto hash = cut_text.rfind('#'); hash != std::string::npos) {
      const std::string occ = cut_text.substr(hash + 1);
      char* end = nullptr;
      long n = std::strtol(occ.c_str(), &end, 10);
      if (occ.empty() || *end != '\0' || n < 1)
        return Fail(flowrun::InvalidArgument("--cut: the occurrence after '#' must be a number of at least 1"));
      req.cut.name = cut_text.substr(0, hash);
      req.cut.occurrence = static_cast<int>(n);
    }
    auto pairs = [](const std::vector<std::string>& texts, const char* what,
                    std::map<std::string, nlohmann::json>& out) -> Status {
      for (const std::string& t : texts) {
        auto eq = t.find('=');
        if (eq == std::string::npos || eq == 0)
          return flowrun::InvalidArgument(std::string(what) + " must be NAME=JSON, got '" + t + "'");
        auto value = nlohmann::json::parse(t.substr(eq + 1), nullptr, false);
        if (value.is_discarded())
          return flowrun::InvalidArgument(std::string(what) + " " + t.substr(0, eq) + ": the value is not valid JSON");
        out[t.substr(0, eq)] = std::move(value);
      }
      return Status::Ok();
    };
    if (Status st = pairs(output_texts, "--output", req.output_overrides); !st.ok()) return Fail(st);
    if (Status st = pairs(replay_answer_texts, "--answer", req.answers); !st.ok()) return Fail(st);
    auto info = admin.PrepareReplay(req);
    if (!info.ok()) return Fail(info.status());
    std::cout << "run " << run << " prepared as a replay of " << info->source_run_uid << ": "
              << info->snapshot_checkpoints << " checkpoints snapshotted, cut at " << info->cut.name << "#"
              << info->cut.occurrence << std::endl;
    return 0;
  }
  if (show->parsed()) {
    auto s = admin.GetRun(run);
    if (!s.ok()) return Fail(s.status());
    nlohmann::json j = RunJson(*s);
    if (as_json) {
      std::cout << j.dump(2) << std::endl;
      return 0;
    }
    std::cout << "run " << s->uid << " (" << s->namespace_ << "/" << s->name << ", flow " << s->flow << ")\n"
              << "  status:      " << flowrun::RunStatusName(s->status) << " (attempt " << s->attempt << ")\n"
              << "  spent:       " << Usd(s->spent.cost_usd) << " in " << s->spent.llm_calls << " LLM calls ("
              << s->spent.input_tokens << " in / " << s->spent.output_tokens << " out tokens)"
              << (s->spent.unknown_cost_calls ? " + " + std::to_string(s->spent.unknown_cost_calls) + " unpriced" : "")
              << (s->spent.unfinished_calls ? " + " + std::to_string(s->spent.unfinished_calls) +
                                                  " unfinished (started, never completed: cost unknown)"
                                            : "")
              << "\n  saved:       " << Usd(s->saved.cost_usd) << " (" << s->saved.llm_calls
              << " LLM calls not repeated thanks to the cache)\n"
              << "  checkpoints: " << s->checkpoints_completed << " completed; over all attempts "
              << s->live_checkpoints << " ran live, " << s->cached_checkpoints << " came from the cache\n";
    if (s->budget_usd) std::cout << "  budget:      " << Usd(*s->budget_usd) << "\n";
    if (s->replay) {
      const flowrun::ReplayInfo& r = *s->replay;
      std::cout << "  replay of:   " << (r.source_name.empty() ? r.source_run_uid : r.source_name + " (" + r.source_run_uid + ")")
                << ", cut at " << r.cut.name << "#" << r.cut.occurrence << (r.cut_reached ? " (reached)" : "")
                << "; " << r.copied_checkpoints << " of " << r.snapshot_checkpoints
                << " snapshot checkpoints copied, inherited " << Usd(r.inherited.cost_usd) << " in "
                << r.inherited.llm_calls << " LLM calls";
      if (!r.output_overrides.empty()) std::cout << "; " << r.output_overrides.size() << " outputs overridden";
      std::cout << "\n";
    }
    if (s->open_wait)
      std::cout << "  waiting for: " << s->open_wait->name << ": " << s->open_wait->question
                << "\n               schema " << s->open_wait->schema.dump() << "\n";
    if (!s->error.empty()) std::cout << "  error:       " << s->error << "\n";
    if (s->result) std::cout << "  result:      " << s->result->dump() << "\n";
    return 0;
  }
  if (cps->parsed() || costs->parsed()) {
    auto list = admin.ListCheckpoints(run);
    if (!list.ok()) return Fail(list.status());
    if (costs->parsed()) {
      auto models = admin.UsageByModel(run);
      if (!models.ok()) return Fail(models.status());
      std::cout << std::left << std::setw(28) << "MODEL" << std::setw(8) << "CALLS" << std::setw(12) << "IN"
                << std::setw(12) << "OUT" << std::setw(12) << "UNFINISHED" << "USD\n";
      for (const auto& m : *models)
        std::cout << std::setw(28) << m.model << std::setw(8) << m.usage.llm_calls << std::setw(12)
                  << m.usage.input_tokens << std::setw(12) << m.usage.output_tokens << std::setw(12)
                  << m.usage.unfinished_calls << Usd(m.usage.cost_usd)
                  << (m.usage.unknown_cost_calls || m.usage.unfinished_calls ? " (+unknown)" : "") << "\n";
      std::cout << "\n";
    }
    std::cout << std::left << std::setw(28) << "CHECKPOINT" << std::setw(6) << "KIND" << std::setw(11) << "STATUS"
              << std::setw(9) << "ATTEMPT" << std::setw(12) << "MS" << std::setw(7) << "CALLS" << "USD\n";
    for (const auto& c : *list) {
      std::string name = c.key.name + (c.key.occurrence > 1 ? "#" + std::to_string(c.key.occurrence) : "");
      char ms[32];
      std::snprintf(ms, sizeof ms, "%.1f", c.duration_ms.value_or(0));
      std::cout << std::setw(28) << name << std::setw(6) << flowrun::CheckpointKindName(c.kind) << std::setw(11)
                << c.status << std::setw(9) << c.attempt << std::setw(12) << ms << std::setw(7)
                << c.usage.llm_calls << Usd(c.usage.cost_usd)
                << (c.copied ? "  copied (inherited from the replay's source, not spent)" : "") << "\n";
    }
    return 0;
  }
  if (answer->parsed()) {
    auto value = nlohmann::json::parse(answer_text, nullptr, false);
    if (value.is_discarded()) return Fail(flowrun::InvalidArgument("the answer is not valid JSON: " + answer_text));
    flowrun::AnswerOptions ao;
    ao.allow_early = !no_early;
    ao.answered_by = by;
    auto r = admin.RecordAnswer(run, wait_name, value, ao);
    if (!r.ok()) return Fail(r.status());
    std::cout << "answer recorded for wait '" << r->wait_name << "'" << (r->early ? " (early: the run has not asked yet)" : "")
              << std::endl;
    return 0;
  }
  if (budget->parsed()) {
    std::optional<double> usd;
    if (budget_text != "none") {
      char* end = nullptr;
      double v = std::strtod(budget_text.c_str(), &end);
      if (end == budget_text.c_str() || *end != '\0') return Fail(flowrun::InvalidArgument("budget must be a number or 'none'"));
      usd = v;
    }
    Status st = admin.SetBudget(run, usd);
    if (!st.ok()) return Fail(st);
    std::cout << "budget set to " << (usd ? Usd(*usd) : "none") << std::endl;
    return 0;
  }
  if (cancel->parsed()) {
    Status st = admin.CancelRun(run, reason);
    if (!st.ok()) return Fail(st);
    std::cout << "run cancelled" << std::endl;
    return 0;
  }
  if (del->parsed()) {
    Status st = admin.DeleteRun(run);
    if (!st.ok()) return Fail(st);
    std::cout << "run deleted" << std::endl;
    return 0;
  }
  if (arts->parsed()) {
    auto list = admin.ListArtifacts(run);
    if (!list.ok()) return Fail(list.status());
    for (const auto& a : *list)
      std::cout << a.name << " v" << a.version << "  " << a.content_type << "  " << a.size_bytes << " bytes  sha256:"
                << a.sha256.substr(0, 12) << "  " << a.checkpoint << "\n";
    return 0;
  }
  if (art->parsed()) {
    auto a = admin.LoadArtifact(run, artifact_name, version);
    if (!a.ok()) return Fail(a.status());
    std::cout << a->data;
    if (a->info.content_type == "application/json") std::cout << std::endl;
    return 0;
  }
  if (diff->parsed()) {
    auto a = admin.LoadArtifact(run, artifact_name, 0);
    if (!a.ok()) return Fail(a.status());
    auto b = admin.LoadArtifact(run_b, artifact_name, 0);
    if (!b.ok()) return Fail(b.status());
    if (a->info.sha256 == b->info.sha256) {
      std::cout << "identical (sha256 " << a->info.sha256.substr(0, 12) << ")" << std::endl;
      return 0;
    }
    if (a->info.content_type == "application/json" && b->info.content_type == "application/json") {
      std::cout << nlohmann::json::diff(nlohmann::json::parse(a->data), nlohmann::json::parse(b->data)).dump(2)
                << std::endl;
    } else {
      std::cout << "differ: " << a->info.size_bytes << " bytes (sha256 " << a->info.sha256.substr(0, 12) << ") vs "
                << b->info.size_bytes << " bytes (sha256 " << b->info.sha256.substr(0, 12) << ")" << std::endl;
    }
    return 1;
  }
  return 0;
}
