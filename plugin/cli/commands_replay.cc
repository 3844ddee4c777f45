// replay: a new FlowRun that reuses a source run's completed prefix
// (docs/replay.md). Reads the source as the user, builds the new FlowRun
// (flowrun/plugin/replay_flowrun.h), and creates it with strict field
// validation, so a cluster whose CRD predates spec.replay refuses the
// request instead of silently dropping the replay and running from scratch.
// --dry-run prints the reuse plan from the read API (the source's
// checkpoints) and sends the create with ?dryRun=All, so admission answers
// without anything being created. Bulk (-l): one replay per selected source,
// all labelled with one batch id.
#include <random>
#include <set>

#include "command.h"
#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"
#include "flowrun/plugin/json_value.h"
#include "flowrun/plugin/replay_flowrun.h"
#include "flowrun/plugin/replay_plan.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

struct ReplayCliOptions {
  std::string run, selector, phase, since, name;
  std::vector<std::string> outputs, answers;
  ReplaySpecOptions spec;
  bool dry_run = false;
};

// How many names a create tries when others take `<source>-r<N>` meanwhile.
constexpr int kNameAttempts = 20;

std::string RandomSuffix() {
  std::random_device rd;
  std::uniform_int_distribution<int> d(0, 0xffff);
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", d(rd));
  return buf;
}

std::string CreatePath(Session& s, bool dry_run) {
  return kube::resources::FlowRuns().CollectionPath(s.ns()) + "?fieldManager=kubectl-flowrun&fieldValidation=Strict" +
         (dry_run ? "&dryRun=All" : "");
}

std::string CreateHint(const Status& s) {
  int http = kube::HttpStatusOf(s);
  if (http == 403)
    return "creating a replay needs 'create' on flowruns.flowrun.dev in the namespace (and 'get' on the source; "
           "--dry-run also reads flowruns/checkpoints of query.flowrun.dev)";
  if (http == 400)
    return "if the message names an unknown field spec.replay, this cluster's FlowRun CRD predates replay: "
           "upgrade flowrun's CRD (crds/flowrun.dev_flowruns.yaml)";
  return "";
}

struct Created {
  std::string source, name, uid;
  json plan;  // dry-run only
};

// Creates (or with dry_run, submits with ?dryRun=All) the replay of `source`.
// The name is `fixed`, or the first free `<source>-r<N>` given `taken` (names
// that exist), moving on to the next N when a create answers AlreadyExists.
StatusOr<Created> CreateOne(Session& s, const json& source, ReplaySpecOptions spec, const std::string& fixed,
                            std::set<std::string>& taken, bool dry_run) {
  const std::string src = JsonString(JsonField(source, "metadata"), "name");
  int n = FirstFreeReplayNumber(src, taken);
  for (int i = 0; i < kNameAttempts; ++i) {
    std::string name = fixed.empty() ? ReplayName(src, n) : fixed;
    FLOWRUN_ASSIGN_OR_RETURN(json fr, BuildReplayFlowRun(source, spec, name));
    auto r = s.client().Raw("POST", CreatePath(s, dry_run), fr);
    if (r.ok()) {
      taken.insert(name);
      return Created{src, name, JsonString(JsonField(*r, "metadata"), "uid"), nullptr};
    }
    if (!kube::IsAlreadyExists(r.status()) || !fixed.empty()) return r.status();
    taken.insert(name);
    n = FirstFreeReplayNumber(src, taken, n + 1);
  }
  return Aborted("no free name <" + src + ">-r<N> after " + std::to_string(kNameAttempts) + " tries; name it with --name");
}

int Replay(Env& env, ReplayCliOptions o) {
  // Everything that needs no cluster first: bad input loses nothing.
  const bool bulk = !o.selector.empty();
  if (bulk == !o.run.empty()) {
    *env.err << "error: name one source run, or select several with -l (not both)\n";
    return kExitUsage;
  }
  if (bulk && !o.name.empty()) {
    *env.err << "error: --name names one replay; a bulk replay names each <source>-r<N>\n";
    return kExitUsage;
  }
  if (!bulk && (!o.phase.empty() || !o.since.empty())) {
    *env.err << "error: --phase and --since filter a bulk replay (-l)\n";
    return kExitUsage;
  }
  if (!o.phase.empty()) {
    auto phase = CanonicalPhase(o.phase);
    if (!phase) {
      *env.err << "error: --phase takes a FlowRun phase (" << PhaseList() << "), not '" << o.phase << "'\n";
      return kExitUsage;
    }
    o.phase = *phase;
  }
  SourceFilter filter{o.phase, std::nullopt};
  if (!o.since.empty()) {
    filter.since = ParseSince(o.since);
    if (!filter.since) {
      *env.err << "error: --since takes a duration like 30m, 2h, 1d or 1h30m, not '" << o.since << "'\n";
      return kExitUsage;
    }
  }
  auto read = [&](const std::string& path) { return ReadTextFile(path, *env.in); };
  for (const auto& [flag, words, into] :
       {std::tuple<const char*, std::vector<std::string>*, std::map<std::string, json>*>{"--output", &o.outputs,
                                                                                         &o.spec.outputs},
        {"--answer", &o.answers, &o.spec.answers}}) {
    for (const auto& w : *words) {
      auto kv = ParseNamedJson(w, flag, read);
      if (!kv.ok()) {
        *env.err << "error: " << kv.status().message() << "\n";
        return kExitUsage;
      }
      (*into)[kv->first] = kv->second;
    }
  }
  if (Status v = ValidateReplayOptions(o.spec); !v.ok()) {
    *env.err << "error: " << v.message() << "\n";
    return kExitUsage;
  }

  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  std::vector<json> sources;
  if (bulk) {
    kube::ListOptions lo;
    lo.label_selector = o.selector;
    lo.limit = 500;
    lo.drop_managed_fields = true;
    auto l = s->client().ListAll(kube::resources::FlowRuns(), s->ns(), lo);
    if (!l.ok()) return Fail(env, l.status());
    sources = SelectSources(l->items, filter, env.clock->Now());
    if (sources.empty()) {
      *env.err << "no FlowRun in namespace " << s->ns() << " matches -l " << o.selector
               << (o.phase.empty() ? "" : " --phase " + o.phase) << (o.since.empty() ? "" : " --since " + o.since)
               << "; nothing replayed\n";
      return kExitNotFound;
    }
    o.spec.batch = BatchId(env.clock->Now(), RandomSuffix());
  } else {
    auto fr = s->client().Get(kube::resources::FlowRuns(), s->ns(), o.run);
    if (!fr.ok()) {
      if (kube::IsNotFound(fr.status()))
        return Fail(env, NotFound("FlowRun " + o.run + " not found in namespace " + s->ns() +
                                  " (a replay's source must be in the replay's namespace)"));
      return Fail(env, fr.status());
    }
    sources.push_back(*fr);
  }
  // The names in use, for <source>-r<N> (a create that races another still
  // answers AlreadyExists and moves on).
  std::set<std::string> taken;
  {
    kube::ListOptions lo;
    lo.limit = 500;
    lo.drop_managed_fields = true;
    auto all = s->client().ListAll(kube::resources::FlowRuns(), s->ns(), lo);
    if (!all.ok()) return Fail(env, all.status());
    for (const auto& fr : all->items) taken.insert(JsonString(JsonField(fr, "metadata"), "name"));
  }

  json results = json::array();
  std::string text;
  int rc = kExitOk;
  for (const auto& src : sources) {
    const std::string src_name = JsonString(JsonField(src, "metadata"), "name");
    Created c;
    if (o.dry_run) {
      auto cps = GetQueryList(*s, src_name, "checkpoints", "limit=1000", true);
      if (!cps.ok()) {
        *env.err << "the reuse plan of " << src_name << " needs the read API:\n";
        return FailQuery(env, cps.status());
      }
      json plan = PlanReplay(*cps, src_name, o.spec.checkpoint, o.spec.occurrence > 0 ? o.spec.occurrence : 1);
      auto made = CreateOne(*s, src, o.spec, o.name, taken, true);
      if (!made.ok()) return Fail(env, made.status(), CreateHint(made.status()));
      c = *made;
      c.plan = plan;
      text += (text.empty() ? "" : "\n") + RenderReplayPlan(plan, format == OutputFormat::kWide) +
              "\nwould create FlowRun " + c.name + " (server-side dry run accepted it; nothing was created)\n";
    } else {
      auto made = CreateOne(*s, src, o.spec, o.name, taken, false);
      if (!made.ok()) {
        // In bulk, the replays created so far stay (each is a run of its own); say which.
        if (!results.empty()) *env.err << "created before the error: " << results.size() << " replay(s), batch "
                                       << o.spec.batch << "\n";
        rc = Fail(env, made.status(), CreateHint(made.status()));
        break;
      }
      c = *made;
      text += "flowrun.flowrun.dev/" + c.name + " created (replay of " + c.source + " from " + o.spec.checkpoint +
              (o.spec.occurrence > 1 ? "#" + std::to_string(o.spec.occurrence) : "") + ")\n";
    }
    json r = {{"source", c.source}, {"name", c.name}, {"dryRun", o.dry_run}};
    if (!c.uid.empty() && !o.dry_run) r["uid"] = c.uid;
    if (o.dry_run) r["plan"] = c.plan;
    results.push_back(r);
  }
  if (IsMachine(format)) {
    json doc = {{"items", results}};
    if (bulk) doc["batch"] = o.spec.batch;
    *env.out << MachineText(doc, format);
  } else {
    if (bulk) *env.out << "batch " << o.spec.batch << " (label " << kReplayBatchLabel << "=" << o.spec.batch << "): "
                       << results.size() << " of " << sources.size() << " source(s)\n";
    *env.out << text;
    if (bulk && !o.dry_run && rc == kExitOk)
      *env.out << "follow them with: kubectl flowrun list -l " << kReplayBatchLabel << "=" << o.spec.batch << "\n";
  }
  return rc;
}

}  // namespace

void AddReplayCommand(CLI::App& app, Env& env, int& exit_code) {
  auto o = std::make_shared<ReplayCliOptions>();
  auto* c = app.add_subcommand("replay", "a new run that reuses a run's completed checkpoints up to a cut, then runs live");
  c->add_option("run", o->run, "the source FlowRun (or select several with -l)");
  c->add_option("--from", o->spec.checkpoint, "the cut: the checkpoint from which everything runs live")->required();
  c->add_option("--occurrence", o->spec.occurrence, "the cut's occurrence when the checkpoint runs in a loop (default 1)")
      ->check(CLI::PositiveNumber);
  c->add_option("--image", o->spec.image, "the new code: replaces spec.template.image");
  c->add_option("--set-param", o->spec.set_params, "parameters path=value (converted like answer --set); repeatable")
      ->allow_extra_args(false);
  c->add_option("--output", o->outputs, "name=<json> or name=@file.json: the output a reused checkpoint returns; repeatable")
      ->allow_extra_args(false);
  c->add_option("--answer", o->answers, "name=<json> or name=@file.json: an answer to a wait after the cut; repeatable")
      ->allow_extra_args(false);
  c->add_option("--name", o->name, "the new FlowRun's name (default: <source>-r<N>, the first free N)");
  c->add_option("-l,--selector", o->selector, "bulk: replay every FlowRun matching this label selector");
  c->add_option("--phase", o->phase, "bulk: only sources in this phase (e.g. Failed; a FlowRun phase, any case)");
  c->add_option("--since", o->since, "bulk: only sources created or finished within this span (30m, 2h, 1d)");
  c->add_flag("--dry-run", o->dry_run, "print what would be reused and what would run live; create nothing");
  // --output is the issue's name for an output override, so the output
  // format is -o alone here (-o json|yaml|wide as everywhere else).
  AddGlobalFlags(c, env.global, false);
  c->add_option("-o", env.global.output, "output format: json, yaml or wide (here -o only: --output sets an output)");
  c->footer(
      "The replay is a new FlowRun: the source's spec (template, parameters, flow, budget, database, ...) with\n"
      "spec.replay {from: {run, checkpoint, occurrence, uid}} and labels flowrun.dev/replay-of=<source> (bulk:\n"
      "flowrun.dev/replay-batch=<id>). Until the new run asks for the cut, each checkpoint the source completed\n"
      "with the same identity and fingerprint is copied (its cost inherited, not spent); from the cut on\n"
      "everything runs live. Values of --output/--answer are JSON: a string needs quotes (--output k='\"text\"').\n"
      "Each value is at most 256 KiB. A replay of a replay is allowed: it reuses what the replay completed.\n"
      "Needs 'create' on flowruns; --dry-run also reads flowruns/checkpoints of the read API.\n\n"
      "Examples:\n"
      "  kubectl flowrun replay research-1 --from analyze --image flowrun/research-agent:0.2.0\n"
      "  kubectl flowrun replay research-1 --from analyze --dry-run        # the reuse plan, nothing created\n"
      "  kubectl flowrun replay research-1 --from analyze --output research=@notes.json --answer proceed=true\n"
      "  kubectl flowrun replay -l flowrun.dev/flow=research --phase Failed --since 2h --from analyze\n"
      "  kubectl flowrun diff research-1 research-1-r1                      # reused vs recomputed, cost delta\n\n"
      "Docs: docs/replay.md");
  c->callback([&, o] { exit_code = Replay(env, *o); });
}

}  // namespace flowrun::plugin
