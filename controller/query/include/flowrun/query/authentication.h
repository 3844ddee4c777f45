// Who is asking: the requestheader authentication of an extension API
// server. kube-apiserver's front proxy presents a client certificate; the TLS
// adapter verifies it against the requestheader client CA and passes its CN
// here. Only a verified certificate whose CN is in the allowed names (an
// empty list allows any CN the CA signed) makes the X-Remote-* headers
// trustworthy; otherwise the request is unauthenticated, whatever headers it
// carries. docs/read-api.md, "Authentication and authorization".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flowrun/query/http_message.h"
#include "flowrun/status.h"

namespace flowrun::query {

// The requestheader settings (ConfigMap kube-system/extension-apiserver-
// authentication or flags). Header names are matched case-insensitively.
struct RequestHeaderConfig {
  std::string client_ca_pem;               // used by the TLS adapter, not here
  std::vector<std::string> allowed_names;  // CNs; empty: any
  std::vector<std::string> username_headers{"X-Remote-User"};
  std::vector<std::string> group_headers{"X-Remote-Group"};
  std::vector<std::string> extra_prefixes{"X-Remote-Extra-"};

  bool operator==(const RequestHeaderConfig&) const = default;
};

struct Identity {
  std::string user;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;  // keys lower-case, percent-decoded
};

// verified_proxy_cn: the CN of a client certificate that verified against the
// requestheader CA (nullopt: none presented, or it did not verify).
// Errors (kUnauthenticated, the message says which check failed): no verified
// certificate; CN not allowed; no user header.
StatusOr<Identity> Authenticate(const RequestHeaderConfig& config, const std::optional<std::string>& verified_proxy_cn,
                                const HttpRequest& request);

// The ConfigMap's data (values as kube-apiserver writes them: PEM, JSON
// arrays of strings). kInvalidArgument for a missing CA or malformed arrays.
StatusOr<RequestHeaderConfig> RequestHeaderConfigFromConfigMap(const std::map<std::string, std::string>& data);

}  // namespace flowrun::query
