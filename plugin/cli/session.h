// Session: the plugin's one adapter to Kubernetes — the kubeconfig (the
// flags --kubeconfig/--context, else $KUBECONFIG, else ~/.kube/config), the
// project's Kubernetes client (flowrun::kube) acting as the user, the
// namespace in effect, and raw bytes for the few responses that are not
// JSON (artifacts, pod logs).
//
// The client runs over a transport this file builds from the kubeconfig's
// TLS settings and wraps, so the response body of a raw GET is available
// byte for byte (the client's Raw() parses JSON). Credentials (token, token
// file, exec plugin) are the client's; an exec plugin that hands out client
// certificates (rather than tokens) is not supported by this wrapper.
//
// Not thread-safe: one command at a time (the CLI is single-threaded).
#pragma once

#include <memory>
#include <string>

#include "flowrun/http_transport.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/status.h"

namespace flowrun::plugin {

struct SessionOptions {
  std::string kubeconfig;  // "" = $KUBECONFIG or ~/.kube/config
  std::string context;     // "" = current-context
  std::string ns;          // "" = the context's namespace
};

struct TapState;

class Session {
 public:
  static StatusOr<std::unique_ptr<Session>> Open(const SessionOptions& o);
  ~Session();

  kube::KubeClient& client() { return *client_; }
  const std::string& ns() const { return ns_; }
  const kube::ClusterConfig& config() const { return config_; }

  // GET `path` with `accept`; the whole response (2xx only; other statuses
  // are the client's error Status).
  StatusOr<HttpResponse> GetBytes(const std::string& path, const std::string& accept = "*/*");

  // /apis/query.flowrun.dev/v1alpha1/namespaces/<ns>/flowruns/<run>/<sub>
  std::string QueryPath(const std::string& run, const std::string& sub) const;

 private:
  Session() = default;
  kube::ClusterConfig config_;
  std::string ns_;
  std::shared_ptr<TapState> tap_;
  std::unique_ptr<kube::KubeClient> client_;
};

// Percent-encodes a path segment or query value.
std::string UrlEscape(const std::string& s);

}  // namespace flowrun::plugin
