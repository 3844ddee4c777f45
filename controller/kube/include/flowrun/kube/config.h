// Where the API server is and how to authenticate: from a kubeconfig file or
// from inside a pod. Keys and tokens stay in memory; nothing is written to
// temporary files.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flowrun/status.h"

namespace flowrun::kube {

// An exec credential plugin (client.authentication.k8s.io): run without a
// shell; its ExecCredential's status.token / clientCertificateData is used
// until status.expirationTimestamp or a 401, then it is run again.
struct ExecPlugin {
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string api_version = "client.authentication.k8s.io/v1";
};

struct ClusterConfig {
  std::string server;  // https://host:port
  std::string ca_pem;  // empty: system CAs
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem, client_key_pem;  // mutual TLS
  std::string bearer_token;                     // static token
  std::string token_file;  // re-read when it changes (in-cluster tokens rotate)
  std::optional<ExecPlugin> exec;
  std::string namespace_ = "default";  // the context's namespace
  std::string context_name;
};

// Loads `path` (default: $KUBECONFIG, then ~/.kube/config) and resolves
// `context` (default: current-context). Relative file paths resolve against
// the kubeconfig's directory. kInvalidArgument names what is wrong.
StatusOr<ClusterConfig> LoadKubeconfig(const std::string& path = "", const std::string& context = "");

// In a pod: KUBERNETES_SERVICE_HOST/PORT, the service-account token file
// (re-read as it rotates), its CA and namespace under `sa_dir`.
StatusOr<ClusterConfig> InClusterConfig(const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

}  // namespace flowrun::kube
