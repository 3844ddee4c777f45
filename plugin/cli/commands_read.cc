// checkpoints, costs, artifacts, artifact, diff: the read API
// (query.flowrun.dev/v1alpha1, docs/read-api.md) through the apiserver, as
// the user — RBAC decides (flowrun-viewer; payloads: flowrun-payload-reader).
#include <unistd.h>

#include <fstream>

#include "command.h"
#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"
#include "flowrun/plugin/read_views.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

std::string LimitQuery(int limit) { return limit > 0 ? "limit=" + std::to_string(limit) : ""; }

int Checkpoints(Env& env, const std::string& run, int limit, bool all) {
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  auto l = GetQueryList(*s, run, "checkpoints", LimitQuery(limit), all);
  if (!l.ok()) return FailQuery(env, l.status());
  if (IsMachine(format)) *env.out << MachineText(*l, format);
  else *env.out << RenderCheckpoints(*l, format == OutputFormat::kWide, env.clock->Now());
  return kExitOk;
}

int Costs(Env& env, const std::string& run, const std::string& by_flag, int top) {
  auto by = ParseCostsBy(by_flag);
  if (!by) {
    *env.err << "error: --by takes model, checkpoint or call, not '" << by_flag << "'\n";
    return kExitUsage;
  }
  if (top < 0) {
    *env.err << "error: --top must be >= 1\n";
    return kExitUsage;
  }
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  json costs, calls;
  if (*by != CostsBy::kCall) {
    auto c = s->client().Raw("GET", s->QueryPath(run, "costs") + (top > 0 ? "?limit=" + std::to_string(top) : ""));
    if (!c.ok()) return FailQuery(env, c.status());
    costs = *c;
  }
  if (*by == CostsBy::kAll || *by == CostsBy::kCall) {
    int n = top > 0 ? top : (*by == CostsBy::kCall ? 20 : 3);
    auto c = s->client().Raw("GET", s->QueryPath(run, "calls") + "?sort=cost&limit=" + std::to_string(n));
    if (!c.ok()) return FailQuery(env, c.status());
    calls = *c;
    if (*by == CostsBy::kCall) {
      auto t = s->client().Raw("GET", s->QueryPath(run, "costs") + "?limit=1");
      if (t.ok()) costs = *t;
    }
  }
  if (IsMachine(format)) {
    json doc = costs.is_null() ? json::object() : costs;
    if (!calls.is_null()) doc["topCalls"] = JsonField(calls, "items");
    *env.out << MachineText(doc, format);
  } else {
    *env.out << RenderCosts(costs, calls, *by, static_cast<size_t>(top), format == OutputFormat::kWide);
  }
  return kExitOk;
}

int Artifacts(Env& env, const std::string& run, int limit, bool all) {
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  auto l = GetQueryList(*s, run, "artifacts", LimitQuery(limit), all);
  if (!l.ok()) return FailQuery(env, l.status());
  if (IsMachine(format)) *env.out << MachineText(*l, format);
  else *env.out << RenderArtifacts(*l, format == OutputFormat::kWide, env.clock->Now());
  return kExitOk;
}

bool IsText(const std::string& content_type) {
  return content_type.rfind("text/", 0) == 0 || content_type.find("json") != std::string::npos ||
         content_type.find("yaml") != std::string::npos || content_type.find("xml") != std::string::npos;
}

int Artifact(Env& env, const std::string& run, const std::string& name, int version, const std::string& file) {
  int code = 0;
  auto s = OpenSession(env, &code);
  if (!s) return code;
  std::string path = s->QueryPath(run, "artifacts/" + UrlEscape(name)) + (version > 0 ? "?version=" + std::to_string(version) : "");
  auto r = s->GetBytes(path, "*/*");
  if (!r.ok()) return FailQuery(env, r.status());
  std::string type = r->Header("Content-Type");
  if (file == "json" || file == "yaml") {
    json meta = {{"name", name},
                 {"version", r->Header("X-Flowrun-Artifact-Version")},
                 {"sha256", r->Header("X-Flowrun-Artifact-Sha256")},
                 {"contentType", type},
                 {"sizeBytes", r->body.size()}};
    *env.out << MachineText(meta, file == "json" ? OutputFormat::kJson : OutputFormat::kYaml);
    return kExitOk;
  }
  if (file.empty() || file == "-") {
    if (file.empty() && !IsText(type) && isatty(STDOUT_FILENO)) {
      *env.err << "error: " << name << " is " << (type.empty() ? "binary" : type) << " (" << r->body.size()
               << " bytes); write it to a file with -o <file> (or -o - to force stdout)\n";
      return kExitUsage;
    }
    env.out->write(r->body.data(), static_cast<std::streamsize>(r->body.size()));
    env.out->flush();
    return kExitOk;
  }
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  f.write(r->body.data(), static_cast<std::streamsize>(r->body.size()));
  f.close();
  if (!f) {
    *env.err << "error: cannot write " << file << "\n";
    return kExitError;
  }
  *env.err << "wrote " << r->body.size() << " bytes of " << name << " (version "
           << r->Header("X-Flowrun-Artifact-Version") << ", " << (type.empty() ? "no content type" : type) << ") to "
           << file << "\n";
  return kExitOk;
}

int Diff(Env& env, const std::string& a, const std::string& b, int limit) {
  int code = 0;
  OutputFormat format;
  auto s = Begin(env, &format, &code);
  if (!s) return code;
  auto d = s->client().Raw("GET", s->QueryPath(a, "diff") + "?other=" + UrlEscape(b) +
                                      (limit > 0 ? "&limit=" + std::to_string(limit) : ""));
  if (!d.ok()) return FailQuery(env, d.status());
  if (IsMachine(format)) *env.out << MachineText(*d, format);
  else *env.out << RenderDiff(*d, format == OutputFormat::kWide);
  return kExitOk;
}

}  // namespace

void AddReadCommands(CLI::App& app, Env& env, int& exit_code) {
  const std::string api_note =
      "\nRead through the apiserver from the read API query.flowrun.dev/v1alpha1 (docs/read-api.md): needs the\n"
      "ClusterRole flowrun-viewer in the namespace; no database credentials.";
  {
    struct Opts { std::string run; int limit = 0; bool all = false; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("checkpoints", "the run's checkpoints across attempts: live or cached, time, tokens, cost");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("--limit", o->limit, "page size (the API's default 500, at most 1000)");
    c->add_flag("--all", o->all, "follow every page");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n  kubectl flowrun checkpoints research-1\n  kubectl flowrun checkpoints research-1 -o wide" + api_note);
    c->callback([&, o] { exit_code = Checkpoints(env, o->run, o->limit, o->all); });
  }
  {
    struct Opts { std::string run, by; int top = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("costs", "what the run cost: by model, by checkpoint, the most expensive calls");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("--by", o->by, "model, checkpoint or call (default: all three)");
    c->add_option("--top", o->top, "at most N rows per table (calls: the N most expensive)");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n"
              "  kubectl flowrun costs research-1\n"
              "  kubectl flowrun costs research-1 --by call --top 1   # the most expensive call\n"
              "  kubectl flowrun costs research-1 -o json | jq -r .spentUSD" + api_note);
    c->callback([&, o] { exit_code = Costs(env, o->run, o->by, o->top); });
  }
  {
    struct Opts { std::string run; int limit = 0; bool all = false; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("artifacts", "the run's artifacts and their versions (metadata only)");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("--limit", o->limit, "page size (the API's default 100, at most 500)");
    c->add_flag("--all", o->all, "follow every page");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n  kubectl flowrun artifacts research-1 -o wide\n"
              "\nNeeds the ClusterRole flowrun-payload-reader (artifact names can carry customer data).");
    c->callback([&, o] { exit_code = Artifacts(env, o->run, o->limit, o->all); });
  }
  {
    struct Opts { std::string run, name, file; int version = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("artifact", "one artifact's bytes (a version, default the latest)");
    c->add_option("run", o->run, "the FlowRun")->required();
    c->add_option("name", o->name, "the artifact's name")->required();
    c->add_option("--version", o->version, "version N (default: the latest)");
    c->add_option("-o,--output", o->file, "write the bytes to this file ('-': stdout); -o json|yaml: the metadata");
    AddGlobalFlags(c, env.global, false);
    c->footer("Examples:\n"
              "  kubectl flowrun artifact research-1 report.md\n"
              "  kubectl flowrun artifact research-1 chart.png --version 2 -o chart.png\n"
              "\nNeeds the ClusterRole flowrun-payload-reader.");
    c->callback([&, o] { exit_code = Artifact(env, o->run, o->name, o->version, o->file); });
  }
  {
    struct Opts { std::string a, b; int limit = 0; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("diff", "compare two runs checkpoint by checkpoint: state, output, cost; artifacts");
    c->add_option("runA", o->a, "this run")->required();
    c->add_option("runB", o->b, "the other run (same namespace)")->required();
    c->add_option("--limit", o->limit, "at most N checkpoints (the API's default 500)");
    AddGlobalFlags(c, env.global);
    c->footer("Examples:\n  kubectl flowrun diff run-47 run-46\n  kubectl flowrun diff run-47 run-46 -o wide   # also the same ones" +
              api_note);
    c->callback([&, o] { exit_code = Diff(env, o->a, o->b, o->limit); });
  }
}

}  // namespace flowrun::plugin
