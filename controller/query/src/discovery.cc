#include "flowrun/query/discovery.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "flowrun/query/api_status.h"
#include "flowrun/query/authorizer.h"

namespace flowrun::query {

namespace {

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string GroupVersion() { return std::string(kGroup) + "/" + kVersion; }

nlohmann::json GroupDoc() {
  nlohmann::json v = {{"groupVersion", GroupVersion()}, {"version", kVersion}};
  return {{"kind", "APIGroup"}, {"apiVersion", "v1"}, {"name", kGroup}, {"versions", nlohmann::json::array({v})},
          {"preferredVersion", v}};
}

nlohmann::json ResourceList() {
  nlohmann::json resources = nlohmann::json::array();
  resources.push_back({{"name", "flowruns"}, {"singularName", "flowrun"}, {"namespaced", true},
                       {"kind", "FlowRunQuery"}, {"verbs", nlohmann::json::array()}});
  auto sub = [&](const char* name, const char* kind) {
    resources.push_back({{"name", std::string("flowruns/") + name}, {"singularName", ""}, {"namespaced", true},
                         {"kind", kind}, {"verbs", {"get"}}});
  };
  sub("summary", "FlowRunSummary");
  sub("checkpoints", "FlowRunCheckpointList");
  sub("calls", "FlowRunCallList");
  sub("costs", "FlowRunCosts");
  sub("diff", "FlowRunDiff");
  sub("artifacts", "FlowRunArtifactList");
  sub("outputs", "FlowRunOutput");
  return {{"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", GroupVersion()},
          {"resources", resources}};
}

HttpResponse Json(const nlohmann::json& j) {
  HttpResponse r;
  r.body = j.dump();
  return r;
}

}  // namespace

bool AcceptsPlainJson(const std::string& accept) {
  if (Trim(accept).empty()) return true;
  size_t start = 0;
  while (start <= accept.size()) {
    size_t comma = accept.find(',', start);
    if (comma == std::string::npos) comma = accept.size();
    std::string range = accept.substr(start, comma - start);
    start = comma + 1;
    size_t semi = range.find(';');
    std::string type = Lower(Trim(range.substr(0, semi)));
    bool has_as = false, q_zero = false;
    while (semi != std::string::npos) {
      size_t next = range.find(';', semi + 1);
      std::string param = Lower(Trim(range.substr(semi + 1, next == std::string::npos ? std::string::npos : next - semi - 1)));
      if (param.rfind("as=", 0) == 0) has_as = true;
      if (param == "q=0" || param == "q=0.0" || param == "q=0.00" || param == "q=0.000") q_zero = true;
      semi = next;
    }
    if (q_zero) continue;
    if (type == "*/*" || type == "application/*") return true;
    if (type == "application/json" && !has_as) return true;
  }
  return false;
}

std::optional<HttpResponse> DiscoveryResponse(const std::string& raw_path, const std::string& accept) {
  std::string path = raw_path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string gv = "/apis/" + std::string(kGroup) + "/" + kVersion;
  const bool known = path == "/apis" || path == "/apis/" + std::string(kGroup) || path == gv || path == "/openapi/v2" ||
                     path == "/openapi/v3" || path == "/openapi/v3" + gv;
  if (!known) return std::nullopt;
  if (!AcceptsPlainJson(accept))
    return StatusResponse(Status(StatusCode::kFailedPrecondition,
                                 "only application/json is served (no aggregated discovery, no protobuf); Accept was: " +
                                     accept));
  if (path == "/apis")
    return Json({{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", nlohmann::json::array({GroupDoc()})}});
  if (path == "/apis/" + std::string(kGroup)) return Json(GroupDoc());
  if (path == gv) return Json(ResourceList());
  if (path == "/openapi/v2")
    return Json({{"swagger", "2.0"},
                 {"info", {{"title", "flowrun read API"}, {"version", kVersion}}},
                 {"paths", nlohmann::json::object()},
                 {"definitions", nlohmann::json::object()}});
  if (path == "/openapi/v3")
    return Json({{"paths", {{"apis/" + std::string(kGroup) + "/" + kVersion,
                             {{"serverRelativeURL", "/openapi/v3/apis/" + std::string(kGroup) + "/" + kVersion}}}}}});
  return Json({{"openapi", "3.0.0"},
               {"info", {{"title", "flowrun read API"}, {"version", kVersion}}},
               {"paths", nlohmann::json::object()},
               {"components", {{"schemas", nlohmann::json::object()}}}});
}

}  // namespace flowrun::query
