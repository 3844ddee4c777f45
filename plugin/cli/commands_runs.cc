// list, status, budget, cancel, logs: commands on FlowRuns and their pods.
#include <algorithm>
#include <csignal>
#include <map>
#include <set>
#include <thread>

#include "command.h"
#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"
#include "flowrun/plugin/format.h"
#include "flowrun/plugin/inbox.h"
#include "flowrun/plugin/logs.h"
#include "flowrun/plugin/status_screen.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

StatusOr<json> GetRun(Session& s, const std::string& name) {
  auto fr = s.client().Get(kube::resources::FlowRuns(), s.ns(), name);
  if (!fr.ok() && kube::IsNotFound(fr.status()))
    return NotFound("FlowRun " + name + " not found in namespace " + s.ns());
  return fr;
}

// Begin, then the FlowRun `name` into *fr; nullptr (the error printed,
// *exit_code set) when any step fails.
std::unique_ptr<Session> BeginOnRun(Env& env, const std::string& name, OutputFormat* fmt, json* fr, int* exit_code) {
  auto s = Begin(env, fmt, exit_code);
  if (!s) return nullptr;
  auto got = GetRun(*s, name);
  if (!got.ok()) {
    *exit_code = Fail(env, got.status());
    return nullptr;
  }
  *fr = std::move(got).value();
  return s;
}

int RunList(Env& env, bool waiting, const std::string& selector, bool watch) {
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  const std::string ns = env.global.all_namespaces ? "" : s->ns();
  kube::ListOptions lo;
  lo.label_selector = selector;
  lo.limit = 500;
  lo.drop_managed_fields = true;
  auto list = s->client().ListAll(kube::resources::FlowRuns(), ns, lo);
  if (!list.ok()) return Fail(env, list.status());
  ListOptions o{waiting, env.global.all_namespaces, format == OutputFormat::kWide};
  json rows = ListRows(list->items, o);
  if (IsMachine(format)) {
    *env.out << MachineText({{"items", rows}}, format);
  } else {
    std::string table = RenderList(rows, o, env.clock->Now());
    if (table.empty())
      *env.err << (waiting ? "no open questions" : "no FlowRuns") << (ns.empty() ? "" : " in namespace " + ns) << "\n";
    *env.out << table;
  }
  env.out->flush();
  if (!watch) return kExitOk;
  // -w: one line (or JSON document) per change, until interrupted.
  std::string rv = list->resource_version;
  for (;;) {
    kube::WatchOptions wo;
    wo.label_selector = selector;
    wo.resource_version = rv;
    auto r = s->client().Watch(
        kube::resources::FlowRuns(), ns, wo,
        [&](const kube::WatchEvent& ev) {
          if (ev.type == "BOOKMARK") return true;
          if (IsMachine(format)) {
            json row = ListRows({ev.object}, {false, true, false});
            *env.out << MachineText({{"type", ev.type}, {"object", row.empty() ? json(nullptr) : row[0]}}, format);
          } else {
            std::string line = RenderListRow(ev.object, o, env.clock->Now());
            if (ev.type == "DELETED" && !line.empty()) line = line.substr(0, line.size() - 1) + "   (deleted)\n";
            *env.out << line;
          }
          env.out->flush();
          return true;
        },
        nullptr);
    if (r.ok()) {
      rv = *r;
      continue;
    }
    if (kube::IsGone(r.status())) {
      auto again = s->client().List(kube::resources::FlowRuns(), ns, {.label_selector = selector, .limit = 1});
      if (!again.ok()) return Fail(env, again.status());
      rv = again->resource_version;
      continue;
    }
    return Fail(env, r.status());
  }
}

int RunStatus(Env& env, const std::string& name, size_t events) {
  int code = 0;
  OutputFormat format;
  json fr;
  auto s = BeginOnRun(env, name, &format, &fr, &code);
  if (!s) return code;
  StatusInput in;
  in.flowrun = fr;
  if (in.flowrun.contains("metadata")) in.flowrun["metadata"].erase("managedFields");
  kube::ListOptions lo;
  lo.field_selector = "involvedObject.name=" + name + ",involvedObject.kind=FlowRun";
  auto ev = s->client().List(kube::resources::Events(), s->ns(), lo);
  if (ev.ok()) in.events = ev->items;
  auto summary = s->client().Raw("GET", s->QueryPath(name, "summary"));
  if (summary.ok() && summary->is_object()) {
    in.summary = *summary;
  } else if (!summary.ok()) {
    int http = kube::HttpStatusOf(summary.status());
    in.summary_note = http == 404 ? "no read API summary" : http == 403 ? "no permission for flowruns/summary"
                                                                        : "read API unavailable";
  }
  if (IsMachine(format)) *env.out << MachineText(StatusDocument(in, events), format);
  else *env.out << RenderStatus(in, env.clock->Now(), format == OutputFormat::kWide, events);
  return kExitOk;
}

int RunBudget(Env& env, const std::string& name, const std::string& usd) {
  json value;
  if (usd == "none") {
    value = nullptr;
  } else {
    auto v = ParseUsd(usd);
    if (!v) {
      *env.err << "error: '" << usd << "' is not an amount in USD (e.g. 2.50) or 'none'\n";
      return kExitUsage;
    }
    value = *v;
  }
  int code = 0;
  OutputFormat format;
  json fr;
  auto s = BeginOnRun(env, name, &format, &fr, &code);
  if (!s) return code;
  auto r = s->client().MergePatch(kube::resources::FlowRuns(), s->ns(), name, {{"spec", {{"budgetUSD", value}}}});
  if (!r.ok()) return Fail(env, r.status(), kube::IsForbidden(r.status()) ? "changing the budget needs 'patch' on flowruns" : "");
  const json& st = JsonField(*r, "status");
  json result = {{"name", name}, {"budgetUSD", value}, {"spentUSD", JsonField(JsonField(st, "cost"), "usd")},
                 {"phase", JsonString(st, "phase")}};
  if (IsMachine(format)) {
    *env.out << MachineText(result, format);
    return kExitOk;
  }
  *env.out << "FlowRun " << name << ": budget " << (value.is_null() ? "removed" : "set to " + FormatUsd(value))
           << " (spent so far " << FormatUsd(JsonField(JsonField(st, "cost"), "usd")) << ")\n";
  if (JsonString(st, "phase") == "BudgetExceeded") *env.out << "the run is BudgetExceeded; it resumes once the budget covers its spend\n";
  return kExitOk;
}

int RunCancel(Env& env, const std::string& name, bool wait, int timeout_s) {
  int code = 0;
  OutputFormat format;
  json fr;
  auto s = BeginOnRun(env, name, &format, &fr, &code);
  if (!s) return code;
  std::string phase = JsonString(JsonField(fr, "status"), "phase");
  if (phase == "Succeeded" || phase == "Failed" || phase == "Cancelled") {
    *env.err << "FlowRun " << name << " has already finished (" << phase << "); nothing to cancel\n";
    return phase == "Cancelled" ? kExitOk : kExitNotWaiting;
  }
  auto r = s->client().MergePatch(kube::resources::FlowRuns(), s->ns(), name, {{"spec", {{"cancel", true}}}});
  if (!r.ok()) return Fail(env, r.status(), kube::IsForbidden(r.status()) ? "cancelling needs 'patch' on flowruns" : "");
  if (wait) {
    auto deadline = env.clock->MonotonicNow() + std::chrono::seconds(timeout_s);
    for (;;) {
      auto cur = GetRun(*s, name);
      if (!cur.ok()) return Fail(env, cur.status());
      phase = JsonString(JsonField(*cur, "status"), "phase");
      if (phase == "Cancelled" || phase == "Succeeded" || phase == "Failed") break;
      if (env.clock->MonotonicNow() >= deadline) {
        *env.err << "error: FlowRun " << name << " is still " << phase << " after " << timeout_s << "s\n";
        return kExitTimeout;
      }
      env.clock->SleepFor(std::chrono::milliseconds(300));
    }
  }
  if (IsMachine(format)) *env.out << MachineText({{"name", name}, {"cancel", true}, {"phase", phase}}, format);
  else *env.out << "FlowRun " << name << (wait ? " is " + phase : ": cancel requested (spec.cancel: true)") << "\n";
  return kExitOk;
}

// Pods of an attempt, oldest first.
StatusOr<std::vector<json>> PodsOf(Session& s, const std::string& run, int attempt) {
  kube::ListOptions lo;
  lo.label_selector = "flowrun.dev/run=" + run + ",flowrun.dev/attempt=" + std::to_string(attempt);
  FLOWRUN_ASSIGN_OR_RETURN(kube::ObjectList l, s.client().List(kube::resources::Pods(), s.ns(), lo));
  std::sort(l.items.begin(), l.items.end(), [](const json& a, const json& b) {
    return JsonString(a, "metadata", "creationTimestamp") < JsonString(b, "metadata", "creationTimestamp");
  });
  return l.items;
}

bool PodFinished(const json& pod) {
  std::string p = JsonString(JsonField(pod, "status"), "phase");
  return p == "Succeeded" || p == "Failed";
}

int RunLogs(Env& env, const std::string& name, int attempt, bool all, bool follow, bool timestamps) {
  int code = 0;
  auto s = OpenSession(env, &code);
  if (!s) return code;
  auto fr = GetRun(*s, name);
  if (!fr.ok()) return Fail(env, fr.status());
  const json& st = JsonField(*fr, "status");
  int latest = static_cast<int>(JsonInt(st, "attempt"));
  if (latest == 0) {
    *env.err << "error: FlowRun " << name << " has not started an attempt yet\n";
    return kExitNotFound;
  }
  if (attempt > latest) {
    *env.err << "error: FlowRun " << name << " has " << latest << (latest == 1 ? " attempt" : " attempts")
             << " so far; there is no attempt " << attempt << "\n";
    return kExitNotFound;
  }
  std::vector<int> attempts;
  if (all) for (int i = 1; i <= latest; ++i) attempts.push_back(i);
  else attempts.push_back(attempt > 0 ? attempt : latest);
  if (follow && attempts.size() > 1) {
    *env.err << "error: -f follows one attempt; drop --all\n";
    return kExitUsage;
  }
  int found = 0;
  for (int a : attempts) {
    auto pods = PodsOf(*s, name, a);
    if (!pods.ok()) return Fail(env, pods.status());
    if (pods->empty()) {
      *env.err << "attempt " << a << ": no pod any more (logs live only as long as the attempt's pod; "
               << "status.attempts keeps its outcome)\n";
      continue;
    }
    for (const auto& pod : *pods) {
      ++found;
      std::string pod_name = JsonString(pod, "metadata", "name");
      if (attempts.size() > 1 || pods->size() > 1) *env.out << "==> attempt " << a << ", pod " << pod_name << " <==\n";
      LogCursor cursor;
      std::string base = "/api/v1/namespaces/" + UrlEscape(s->ns()) + "/pods/" + UrlEscape(pod_name) +
                         "/log?container=agent&timestamps=true";
      for (;;) {
        std::string path = base + (cursor.since().empty() ? "" : "&sinceTime=" + UrlEscape(cursor.since()));
        auto body = s->GetBytes(path, "*/*");
        if (!body.ok()) {
          // A pod that has not started its container yet has no log.
          if (follow && kube::HttpStatusOf(body.status()) == 400) {
            env.clock->SleepFor(std::chrono::seconds(1));
            continue;
          }
          return Fail(env, body.status());
        }
        *env.out << cursor.Take(body->body, timestamps);
        env.out->flush();
        if (!follow) break;
        auto cur = s->client().Get(kube::resources::Pods(), s->ns(), pod_name);
        if (!cur.ok() || PodFinished(*cur)) {
          // One last read: lines written between the previous read and the end.
          auto last = s->GetBytes(base + (cursor.since().empty() ? "" : "&sinceTime=" + UrlEscape(cursor.since())), "*/*");
          if (last.ok()) *env.out << cursor.Take(last->body, timestamps);
          break;
        }
        env.clock->SleepFor(std::chrono::seconds(1));
      }
    }
  }
  return found > 0 ? kExitOk : kExitNotFound;
}

}  // namespace

void AddRunCommands(CLI::App& app, Env& env, int& exit_code) {
  {
    struct Opts { bool waiting = false, watch = false; std::string selector; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("list", "FlowRuns, or with --waiting the inbox of open questions");
    c->add_flag("--waiting", o->waiting, "only runs that wait for an answer: question, age, deadline, who may answer");
    c->add_option("-l,--selector", o->selector, "label selector (e.g. flowrun.dev/flow=research)");
    c->add_flag("-w,--watch", o->watch, "after listing, print a line for every change");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n"
              "  kubectl flowrun list                      # runs in the current namespace\n"
              "  kubectl flowrun list --waiting -A         # every open question you may be asked\n"
              "  kubectl flowrun list --waiting -o json    # the inbox for a script");
    c->callback([&, o] { exit_code = RunList(env, o->waiting, o->selector, o->watch); });
  }
  {
    struct Opts { std::string run; size_t events = 10; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("status", "one screen about a run: phase, attempts, open wait, cost, events");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("--events", o->events, "how many recent Events to show (default 10)");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n"
              "  kubectl flowrun status research-1\n"
              "  kubectl flowrun status research-1 -o json | jq .summary.totals");
    c->callback([&, o] { exit_code = RunStatus(env, o->run, o->events); });
  }
  {
    struct Opts { std::string run, usd; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("budget", "set (raise, lower) or remove a run's budget in USD");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("usd", o->usd, "the new budget in USD, or 'none'")->required();
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n"
              "  kubectl flowrun budget research-1 2.50    # a BudgetExceeded run resumes\n"
              "  kubectl flowrun budget research-1 none");
    c->callback([&, o] { exit_code = RunBudget(env, o->run, o->usd); });
  }
  {
    struct Opts { std::string run; bool wait = false; int timeout = 60; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("cancel", "cancel a run (spec.cancel: true; it cannot be undone)");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_flag("--wait", o->wait, "wait until the run is Cancelled");
    c->add_option("--timeout", o->timeout, "seconds to wait with --wait (default 60)");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n  kubectl flowrun cancel research-1 --wait");
    c->callback([&, o] { exit_code = RunCancel(env, o->run, o->wait, o->timeout); });
  }
  {
    struct Opts { std::string run; int attempt = 0; bool all = false, follow = false, timestamps = false; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("logs", "the agent's log of an attempt, from its pod while the pod exists");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("--attempt", o->attempt, "attempt number (default: the latest)");
    c->add_flag("--all", o->all, "every attempt whose pod still exists, oldest first");
    c->add_flag("-f,--follow", o->follow, "keep printing until the pod ends");
    c->add_flag("--timestamps", o->timestamps, "prefix each line with its RFC 3339 time");
    AddGlobalFlags(c, env.global, false);
    c->footer("Examples:\n"
              "  kubectl flowrun logs research-1 -f\n"
              "  kubectl flowrun logs research-1 --attempt 1");
    c->callback([&, o] { exit_code = RunLogs(env, o->run, o->attempt, o->all, o->follow, o->timestamps); });
  }
}

}  // namespace flowrun::plugin
