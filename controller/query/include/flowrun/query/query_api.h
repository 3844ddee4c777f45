// QueryApi: the read API's pure request -> response core (docs/read-api.md).
// Routes a request, serves discovery/OpenAPI/health without identity, and
// for data requests: refuses an unauthenticated caller (401), authorizes the
// identity for the path's subresource (403), validates the query (400), reads
// through the QueryStore and answers bounded JSON (or artifact bytes).
//
// The transport (tls_server.h) authenticates (authentication.h) and passes
// the result in; nothing here touches sockets, TLS or the database.
// Ownership: store and authorizer are not owned and must outlive the API.
// Thread safety: Handle may be called concurrently (if store and authorizer
// allow it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "flowrun/query/authentication.h"
#include "flowrun/query/authorizer.h"
#include "flowrun/query/http_message.h"
#include "flowrun/query/query_store.h"
#include "flowrun/status.h"

namespace flowrun::query {

struct QueryApiOptions {
  int64_t max_output_bytes = 4 << 20;
  int64_t max_artifact_bytes = 16 << 20;
  // Called for every 5xx with the underlying error (the body carries none).
  std::function<void(const std::string& path, const Status& error)> on_error;
};

// Page sizes (docs/read-api.md, "Pagination").
struct Limits {
  static constexpr int kCheckpointsDefault = 500, kCheckpointsMax = 1000;
  static constexpr int kCallsDefault = 100, kCallsMax = 500;
  static constexpr int kArtifactsDefault = 100, kArtifactsMax = 500;
  static constexpr int kByCheckpointDefault = 100, kByCheckpointMax = 500;
  static constexpr int kDiffDefault = 500, kDiffMax = 1000;
  static constexpr int kDiffArtifacts = 500;
  static constexpr int kByModel = 100;
  static constexpr int kSummaryAttempts = 50;
};

class QueryApi {
 public:
  QueryApi(QueryStore* store, Authorizer* authorizer, QueryApiOptions options = {});

  // identity: what Authenticate() returned for this request.
  HttpResponse Handle(const HttpRequest& request, const StatusOr<Identity>& identity);

 private:
  struct Target;
  HttpResponse Data(const HttpRequest& request, const Identity& who, const Target& t);
  StatusOr<HttpResponse> Serve(const HttpRequest& request, const Identity& who, const Target& t);

  QueryStore* store_;
  Authorizer* authorizer_;
  QueryApiOptions options_;
};

}  // namespace flowrun::query
