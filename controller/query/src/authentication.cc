#include "flowrun/query/authentication.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace flowrun::query {

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

StatusOr<std::vector<std::string>> JsonStrings(const std::map<std::string, std::string>& data, const std::string& key,
                                               std::vector<std::string> fallback) {
  auto it = data.find(key);
  if (it == data.end() || Trim(it->second).empty()) return fallback;
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  if (!j.is_array()) return InvalidArgument(key + ": want a JSON array of strings");
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) return InvalidArgument(key + ": want a JSON array of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

StatusOr<Identity> Authenticate(const RequestHeaderConfig& config, const std::optional<std::string>& verified_proxy_cn,
                                const HttpRequest& request) {
  if (!verified_proxy_cn)
    return Status(StatusCode::kUnauthenticated,
                  "no client certificate verified by the requestheader client CA (requests must come through "
                  "kube-apiserver)");
  if (!config.allowed_names.empty() &&
      std::find(config.allowed_names.begin(), config.allowed_names.end(), *verified_proxy_cn) ==
          config.allowed_names.end())
    return Status(StatusCode::kUnauthenticated,
                  "client certificate CN \"" + *verified_proxy_cn + "\" is not a requestheader allowed name");
  Identity id;
  for (const auto& h : config.username_headers) {
    std::string v = Trim(request.Header(Lower(h)));
    if (!v.empty()) {
      id.user = v;
      break;
    }
  }
  if (id.user.empty()) return Status(StatusCode::kUnauthenticated, "no user in the requestheader username headers");
  for (const auto& h : config.group_headers) {
    auto range = request.headers.equal_range(Lower(h));
    for (auto it = range.first; it != range.second; ++it) {
      std::string g = Trim(it->second);
      if (!g.empty()) id.groups.push_back(g);
    }
  }
  for (const auto& p : config.extra_prefixes) {
    const std::string prefix = Lower(p);
    for (const auto& [name, value] : request.headers) {
      if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
      std::string key;
      if (!PercentDecode(name.substr(prefix.size()), false, &key)) continue;
      id.extra[Lower(key)].push_back(Trim(value));
    }
  }
  return id;
}

StatusOr<RequestHeaderConfig> RequestHeaderConfigFromConfigMap(const std::map<std::string, std::string>& data) {
  RequestHeaderConfig c;
  auto ca = data.find("requestheader-client-ca-file");
  if (ca == data.end() || Trim(ca->second).empty())
    return InvalidArgument(
        "extension-apiserver-authentication has no requestheader-client-ca-file: kube-apiserver runs without "
        "--requestheader-client-ca-file (aggregation is not configured)");
  c.client_ca_pem = ca->second;
  auto names = JsonStrings(data, "requestheader-allowed-names", {});
  if (!names.ok()) return names.status();
  c.allowed_names = *names;
  auto users = JsonStrings(data, "requestheader-username-headers", c.username_headers);
  if (!users.ok()) return users.status();
  c.username_headers = *users;
  auto groups = JsonStrings(data, "requestheader-group-headers", c.group_headers);
  if (!groups.ok()) return groups.status();
  c.group_headers = *groups;
  auto extras = JsonStrings(data, "requestheader-extra-headers-prefix", c.extra_prefixes);
  if (!extras.ok()) return extras.status();
  c.extra_prefixes = *extras;
  return c;
}

}  // namespace flowrun::query
