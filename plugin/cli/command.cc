#include "command.h"

#include <fstream>
#include <sstream>

#include "flowrun/json_fields.h"
#include "flowrun/kube/errors.h"

namespace flowrun::plugin {

void AddGlobalFlags(CLI::App* cmd, GlobalOptions& g, bool output_flag) {
  cmd->add_option("-n,--namespace", g.ns, "namespace (default: the kubeconfig context's)");
  cmd->add_flag("-A,--all-namespaces", g.all_namespaces, "all namespaces (where it applies)");
  cmd->add_option("--context", g.context, "kubeconfig context (default: current-context)");
  cmd->add_option("--kubeconfig", g.kubeconfig, "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)");
  if (output_flag) cmd->add_option("-o,--output", g.output, "output format: json, yaml or wide");
}

std::unique_ptr<Session> OpenSession(Env& env, int* exit_code) {
  auto s = Session::Open({env.global.kubeconfig, env.global.context, env.global.ns});
  if (!s.ok()) {
    *exit_code = Fail(env, s.status(), "kubectl-flowrun reads the kubeconfig as kubectl does: --kubeconfig, "
                                       "$KUBECONFIG or ~/.kube/config; --context picks a context");
    return nullptr;
  }
  return std::move(s).value();
}

std::optional<OutputFormat> Format(Env& env) {
  auto f = ParseOutputFormat(env.global.output);
  if (!f.ok()) {
    *env.err << "error: " << f.status().message() << "\n";
    return std::nullopt;
  }
  return *f;
}

std::unique_ptr<Session> Begin(Env& env, OutputFormat* fmt, int* exit_code) {
  auto f = Format(env);
  if (!f) {
    *exit_code = kExitUsage;
    return nullptr;
  }
  *fmt = *f;
  return OpenSession(env, exit_code);
}

int Fail(Env& env, const Status& s, const std::string& hint) {
  *env.err << "error: " << s.message() << "\n";
  if (!hint.empty()) *env.err << hint << "\n";
  return ExitCodeFor(s);
}

int FailQuery(Env& env, const Status& s) {
  int http = kube::HttpStatusOf(s);
  std::string hint;
  if (http == 404 && s.message().find("could not find the requested resource") != std::string::npos)
    hint = "the read API query.flowrun.dev/v1alpha1 is not installed in this cluster (helm value queryApi.enabled)";
  else if (http == 503 || s.code() == StatusCode::kUnavailable)
    hint = "the read API is unavailable: is the flowrun controller running? "
           "(kubectl get apiservice v1alpha1.query.flowrun.dev)";
  else if (http == 403)
    hint = "reading runs needs the ClusterRole flowrun-viewer in the namespace (artifacts and outputs: "
           "flowrun-payload-reader)";
  return Fail(env, s, hint);
}

StatusOr<std::string> ReadTextFile(const std::string& path, std::istream& in) {
  std::ostringstream ss;
  if (path == "-") {
    ss << in.rdbuf();
    return ss.str();
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot read " + path);
  ss << f.rdbuf();
  return ss.str();
}

StatusOr<nlohmann::json> GetQueryList(Session& s, const std::string& run, const std::string& sub,
                                      const std::string& query, bool all) {
  using nlohmann::json;
  std::string cont;
  json merged;
  for (;;) {
    std::string q = query;
    if (!cont.empty()) q += std::string(q.empty() ? "" : "&") + "continue=" + UrlEscape(cont);
    FLOWRUN_ASSIGN_OR_RETURN(json page, s.client().Raw("GET", s.QueryPath(run, sub) + (q.empty() ? "" : "?" + q)));
    if (!page.is_object()) return Internal("the read API answered " + sub + " with something that is not a JSON object");
    if (merged.is_null()) merged = page;
    else for (auto& i : page["items"]) merged["items"].push_back(i);
    cont = JsonString(JsonField(page, "metadata"), "continue");
    if (!all || cont.empty()) break;
  }
  if (all && merged.contains("metadata")) merged["metadata"].erase("continue");
  return merged;
}

}  // namespace flowrun::plugin
