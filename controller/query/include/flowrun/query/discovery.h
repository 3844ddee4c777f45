// What a well-mannered aggregated API server answers besides data: the
// discovery documents of query.flowrun.dev/v1alpha1, minimal OpenAPI v2/v3
// documents, and content negotiation. Aggregated discovery
// (as=APIGroupDiscoveryList) and protobuf are never produced: when the Accept
// list admits plain JSON (or */*), JSON is served; otherwise 406, so
// kube-apiserver falls back to the legacy documents. docs/read-api.md.
#pragma once

#include <optional>
#include <string>

#include "flowrun/query/http_message.h"

namespace flowrun::query {

// True when `accept` ("" counts as */*) admits application/json without an
// `as=` parameter, application/*, or */*.
bool AcceptsPlainJson(const std::string& accept);

// The response for a discovery/OpenAPI path, nullopt for other paths.
// Requires no authentication: these documents hold no data.
std::optional<HttpResponse> DiscoveryResponse(const std::string& path, const std::string& accept);

// The subresources and whether each is a payload (docs/read-api.md table).
inline constexpr const char* kMetadataSubresources[] = {"summary", "checkpoints", "calls", "costs", "diff"};
inline constexpr const char* kPayloadSubresources[] = {"artifacts", "outputs"};

}  // namespace flowrun::query
