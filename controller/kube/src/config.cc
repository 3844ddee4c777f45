// Kubeconfig and in-cluster configuration. yaml-cpp is read through const
// references only: its non-const operator[] inserts missing keys.
#include "flowrun/kube/config.h"

#include <sys/stat.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "internal.h"

namespace flowrun::kube {
namespace internal {

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Unavailable("error reading " + path);
  return ss.str();
}

StatusOr<std::string> Base64Decode(const std::string& in) {
  static const auto kTable = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(chars[i])] = i;
    t['-'] = 62;  // URL-safe alphabet too
    t['_'] = 63;
    return t;
  }();
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = kTable[static_cast<unsigned char>(c)];
    if (v < 0 || padding) return InvalidArgument("invalid base64 data");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace internal

namespace {

std::string Dirname(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  if (p[0] == '~' && (p.size() == 1 || p[1] == '/')) {
    const char* home = std::getenv("HOME");
    if (home != nullptr) return std::string(home) + p.substr(1);
  }
  return dir + "/" + p;
}

// A scalar child as a string, or "" when absent. `n` is const: no insertion.
std::string Str(const YAML::Node& n, const char* key) {
  if (!n.IsMap()) return "";
  const YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return "";
  return v.Scalar();
}

bool Bool(const YAML::Node& n, const char* key) {
  std::string s = Str(n, key);
  return s == "true" || s == "True" || s == "TRUE" || s == "yes";
}

// The entry named `name` of a list like `clusters:`, its inner node `inner`.
StatusOr<YAML::Node> FindNamed(const YAML::Node& root, const char* list, const char* inner, const std::string& name) {
  const YAML::Node items = root[list];
  if (items && items.IsSequence()) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const YAML::Node item = items[i];
      if (Str(item, "name") == name) {
        const YAML::Node v = item[inner];
        if (!v || !v.IsMap()) return InvalidArgument(std::string(list) + " entry \"" + name + "\" has no " + inner + " map");
        return v;
      }
    }
  }
  return InvalidArgument(std::string("no ") + inner + " named \"" + name + "\" in " + list);
}

// `<key>-data` (base64) wins over `<key>` (a file relative to dir).
StatusOr<std::string> DataOrFile(const YAML::Node& n, const std::string& key, const std::string& dir) {
  std::string data = Str(n, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = internal::Base64Decode(data);
    if (!decoded.ok()) return InvalidArgument(key + "-data: " + decoded.status().message());
    return decoded;
  }
  std::string file = Str(n, key.c_str());
  if (file.empty()) return std::string();
  auto content = internal::ReadFileToString(Resolve(dir, file));
  if (!content.ok()) return InvalidArgument(key + ": " + content.status().message());
  return content;
}

}  // namespace

StatusOr<ClusterConfig> LoadKubeconfig(const std::string& path_in, const std::string& context_in) {
  std::string path = path_in;
  if (path.empty()) {
    const char* env = std::getenv("KUBECONFIG");
    if (env != nullptr && *env != '\0') {
      // A list: the first file that exists (no merging of several files).
      std::string list = env;
      std::size_t start = 0;
      while (start <= list.size()) {
        std::size_t colon = list.find(':', start);
        std::string p = list.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        struct stat st {};
        if (!p.empty() && ::stat(p.c_str(), &st) == 0) {
          path = p;
          break;
        }
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
    }
    if (path.empty()) {
      const char* home = std::getenv("HOME");
      if (home == nullptr) return NotFound("no kubeconfig: KUBECONFIG and HOME are unset");
      path = std::string(home) + "/.kube/config";
    }
  }
  auto text = internal::ReadFileToString(path);
  if (!text.ok()) return NotFound("kubeconfig " + path + ": " + text.status().message());
  const std::string where = "kubeconfig " + path + ": ";

  YAML::Node loaded;
  try {
    loaded = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(where + "malformed YAML: " + e.what());
  }
  const YAML::Node& root = loaded;
  if (!root.IsMap()) return InvalidArgument(where + "not a YAML map (is it a kubeconfig?)");
  const std::string dir = Dirname(path);

  try {
    std::string context_name = context_in.empty() ? Str(root, "current-context") : context_in;
    if (context_name.empty()) return InvalidArgument(where + "no current-context and no context given");
    auto ctx = FindNamed(root, "contexts", "context", context_name);
    if (!ctx.ok()) return InvalidArgument(where + ctx.status().message());
    const YAML::Node& context = *ctx;

    ClusterConfig out;
    out.context_name = context_name;
    std::string ns = Str(context, "namespace");
    if (!ns.empty()) out.namespace_ = ns;

    std::string cluster_name = Str(context, "cluster");
    if (cluster_name.empty()) return InvalidArgument(where + "context \"" + context_name + "\" names no cluster");
    auto cl = FindNamed(root, "clusters", "cluster", cluster_name);
    if (!cl.ok()) return InvalidArgument(where + cl.status().message());
    const YAML::Node& cluster = *cl;
    out.server = Str(cluster, "server");
    if (out.server.empty()) return InvalidArgument(where + "cluster \"" + cluster_name + "\" has no server");
    while (!out.server.empty() && out.server.back() == '/') out.server.pop_back();
    out.insecure_skip_tls_verify = Bool(cluster, "insecure-skip-tls-verify");
    auto ca = DataOrFile(cluster, "certificate-authority", dir);
    if (!ca.ok()) return InvalidArgument(where + "cluster \"" + cluster_name + "\": " + ca.status().message());
    out.ca_pem = *ca;

    std::string user_name = Str(context, "user");
    if (!user_name.empty()) {
      auto us = FindNamed(root, "users", "user", user_name);
      if (!us.ok()) return InvalidArgument(where + us.status().message());
      const YAML::Node& user = *us;
      const std::string uwhere = where + "user \"" + user_name + "\": ";
      auto cert = DataOrFile(user, "client-certificate", dir);
      if (!cert.ok()) return InvalidArgument(uwhere + cert.status().message());
      auto key = DataOrFile(user, "client-key", dir);
      if (!key.ok()) return InvalidArgument(uwhere + key.status().message());
      out.client_cert_pem = *cert;
      out.client_key_pem = *key;
      if (out.client_cert_pem.empty() != out.client_key_pem.empty())
        return InvalidArgument(uwhere + "client-certificate and client-key must be given together");
      out.bearer_token = Str(user, "token");
      std::string token_file = Str(user, "tokenFile");
      if (!token_file.empty()) out.token_file = Resolve(dir, token_file);
      const YAML::Node exec = user["exec"];
      if (exec && exec.IsMap()) {
        ExecPlugin plugin;
        plugin.command = Str(exec, "command");
        if (plugin.command.empty()) return InvalidArgument(uwhere + "exec has no command");
        // A relative path with a separator is relative to the kubeconfig; a
        // bare name is looked up in PATH.
        if (plugin.command.find('/') != std::string::npos) plugin.command = Resolve(dir, plugin.command);
        std::string api = Str(exec, "apiVersion");
        if (!api.empty()) plugin.api_version = api;
        const YAML::Node args = exec["args"];
        if (args && args.IsSequence())
          for (std::size_t i = 0; i < args.size(); ++i) plugin.args.push_back(args[i].as<std::string>());
        const YAML::Node env = exec["env"];
        if (env && env.IsSequence())
          for (std::size_t i = 0; i < env.size(); ++i) {
            const YAML::Node e = env[i];
            std::string name = Str(e, "name");
            if (name.empty()) return InvalidArgument(uwhere + "exec env entry without a name");
            plugin.env[name] = Str(e, "value");
          }
        out.exec = std::move(plugin);
      } else if (exec) {
        return InvalidArgument(uwhere + "exec is not a map");
      }
      const YAML::Node auth_provider = user["auth-provider"];
      if (auth_provider && !out.exec && out.bearer_token.empty() && out.token_file.empty() &&
          out.client_cert_pem.empty())
        return InvalidArgument(uwhere + "auth-provider plugins are not supported (use exec)");
    }
    return out;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(where + "unexpected structure: " + e.what());
  }
}

StatusOr<ClusterConfig> InClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0')
    return FailedPrecondition("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are unset");
  ClusterConfig out;
  std::string h = host;
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6
  out.server = "https://" + h + ":" + port;
  out.token_file = sa_dir + "/token";
  auto token = internal::ReadFileToString(out.token_file);
  if (!token.ok()) return FailedPrecondition("in-cluster: " + token.status().message());
  auto ca = internal::ReadFileToString(sa_dir + "/ca.crt");
  if (!ca.ok()) return FailedPrecondition("in-cluster: " + ca.status().message());
  out.ca_pem = *ca;
  auto ns = internal::ReadFileToString(sa_dir + "/namespace");
  if (ns.ok()) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    if (!n.empty()) out.namespace_ = n;
  }
  out.context_name = "in-cluster";
  return out;
}

}  // namespace flowrun::kube
