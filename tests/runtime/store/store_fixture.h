// The fixture every PostgresRunStore / PostgresRunAdmin test shares: a real
// private PostgreSQL server (tests/support/postgres_server.h), a database of
// its own per test, and direct queries on a separate connection so what the
// store claims is checked against the tables themselves.
//
// The tests are split by concept, one file each (migrations_test.cc,
// checkpoints_test.cc, waits_test.cc, ...), and each file derives its own
// suite from StoreTest (StoreCheckpoints, StoreWaits, ...), so a failing
// test's name and file say what broke. main.cc starts the server.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "support/expect_contains.h"
#include "flowrun/flow.h"
#include "flowrun/postgres.h"
#include "flowrun/run_admin.h"
#include "flowrun/run_store.h"
#include "flowrun/status.h"
#include "support/postgres_server.h"


namespace flowrun::store_test {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::flowrun::testing::PostgresEnvironment;
using ::flowrun::testing::PostgresServer;

// Unwraps a StatusOr or fails the test (gtest reports the exception).
template <typename T>
T Must(StatusOr<T> s, const std::string& what = "") {
  if (!s.ok()) throw std::runtime_error("unexpected error" + (what.empty() ? "" : " in " + what) + ": " +
                                        s.status().ToString());
  return std::move(s).value();
}
inline void MustOk(const Status& s, const std::string& what = "") {
  if (!s.ok()) throw std::runtime_error("unexpected error" + (what.empty() ? "" : " in " + what) + ": " +
                                        s.ToString());
}

inline RunIdentity Ident(const std::string& uid) { return RunIdentity{uid, uid + "-name", "team-a", "research"}; }

inline std::string Fp(const std::string& name) {
  return CheckpointFingerprint(CheckpointKind::kStep, name, std::nullopt);
}

inline PricedLlmCall Priced(const std::string& model, int64_t in, int64_t out, std::optional<double> cost,
                            const std::string& source) {
  LlmCall c;
  c.model = model;
  c.input_tokens = in;
  c.output_tokens = out;
  c.latency = milliseconds(12);
  c.cost_usd = source == "reported" ? cost : std::nullopt;
  return PricedLlmCall{c, cost, source};
}

inline WaitRequest MakeWait(const std::string& name, json schema, std::optional<seconds> timeout = std::nullopt,
                            OnTimeout on_timeout = OnTimeout::kFail,
                            std::optional<json> default_answer = std::nullopt, int occurrence = 1) {
  WaitRequest r;
  r.key = CheckpointKey{name, occurrence};
  r.fingerprint = CheckpointFingerprint(CheckpointKind::kWait, name, schema);
  r.question = "Question for " + name + "?";
  r.schema = std::move(schema);
  r.timeout = timeout;
  r.on_timeout = on_timeout;
  r.default_answer = std::move(default_answer);
  return r;
}

inline const json kBool = {{"type", "boolean"}};
inline const json kString = {{"type", "string"}};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = PostgresEnvironment::CreateDatabaseForCurrentTest(); }

  static PostgresServer& Server() { return PostgresEnvironment::Server(); }

  PostgresOptions Options(const std::string& application_name = "flowrun-test") const {
    PostgresOptions o;
    o.conninfo = Server().ConnectionString(db_);
    o.application_name = application_name;
    o.connect_attempts = 3;
    o.initial_backoff = milliseconds(50);
    return o;
  }

  // Opening never migrates (the controller and `flowrunctl migrate` do): the
  // test database is migrated first, as the controller would have.
  std::unique_ptr<RunStore> Store(const PostgresOptions& o) {
    MustOk(Migrate(o), "Migrate");
    return Must(OpenPostgresRunStore(o), "OpenPostgresRunStore");
  }
  std::unique_ptr<RunStore> Store() { return Store(Options()); }
  std::unique_ptr<RunAdmin> Admin() {
    MustOk(Migrate(Options("flowrun-admin")), "Migrate");
    return Must(OpenPostgresRunAdmin(Options("flowrun-admin")), "OpenPostgresRunAdmin");
  }

  ExecutionStart Begin(RunStore& store, const std::string& uid, int attempt = 1,
                       std::optional<double> budget = std::nullopt) {
    return Must(store.Begin(Ident(uid), attempt, json{{"topic", "llamas"}}, budget), "Begin");
  }

  // One execution of `uid` that asks `req` and ends Waiting on it, as an
  // agent does before its pod exits.
  void LeaveWaiting(const std::string& uid, const WaitRequest& req) {
    auto store = Store();
    Begin(*store, uid, 1);
    ASSERT_EQ(Must(store->ResolveWait(req)).kind, WaitResolution::Kind::kPending);
    FinishRequest f;
    f.outcome = OutcomeKind::kWaiting;
    f.open_wait = req.key.name;
    MustOk(store->Finish(f));
  }

  // Direct queries, on a connection of their own (never the store's).
  template <typename... Args>
  pqxx::result Query(const std::string& sql, Args&&... args) const {
    pqxx::connection c(Server().ConnectionString(db_) + " application_name=flowrun-verify");
    pqxx::nontransaction tx(c);
    return tx.exec_params(sql, std::forward<Args>(args)...);
  }
  template <typename... Args>
  int64_t Count(const std::string& sql, Args&&... args) const {
    return Query(sql, std::forward<Args>(args)...)[0][0].template as<int64_t>();
  }
  // Rows of `uid` in every table of the flowrun schema that has a run_uid column.
  std::vector<std::pair<std::string, int64_t>> RowsPerTable(const std::string& uid) const {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const auto& t : Query("SELECT table_name FROM information_schema.columns"
                               " WHERE table_schema = 'flowrun' AND column_name = 'run_uid' ORDER BY 1")) {
      std::string table = t[0].as<std::string>();
      out.emplace_back(table, Count("SELECT count(*) FROM flowrun." + table + " WHERE run_uid = $1", uid));
    }
    return out;
  }

  std::string db_;
};

}  // namespace flowrun::store_test
