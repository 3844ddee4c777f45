// The read API's PostgreSQL adapter: QueryStore over flowrun's schema
// (runtime-lib/src/postgres/migrations.cc), parameterized prepared
// statements only, every read in a READ ONLY transaction with a statement
// timeout. A small pool of connections (opened lazily, dropped when broken)
// serves concurrent requests; a request that finds every connection busy
// waits up to 5 s, then answers kUnavailable.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "flowrun/query/query_store.h"

namespace flowrun::query {

struct PostgresQueryStoreOptions {
  std::string conninfo;  // a secret: never logged (errors are redacted)
  int max_connections = 4;
  std::chrono::milliseconds statement_timeout{5000};
};

std::unique_ptr<QueryStore> NewPostgresQueryStore(PostgresQueryStoreOptions options);

}  // namespace flowrun::query
