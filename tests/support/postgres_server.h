// PostgresServer is a private, real PostgreSQL server for one test process.
//
// Start() runs initdb into a fresh mkdtemp directory (trust auth, superuser
// "flowrun", UTF8, C locale), picks a free TCP port on 127.0.0.1, starts the
// `postgres` binary directly (listening on 127.0.0.1 only, unix socket inside
// the temp dir), and returns once the server accepts connections. Several
// test binaries can do this at once (ctest -j): each gets its own directory
// and port, and nothing touches /var/run/postgresql or the system cluster.
//
// Root: PostgreSQL refuses to run as root and CI runs as root. When
// geteuid()==0 the directory is chowned to the `postgres` system user (created
// by Debian's postgresql package) and initdb/postgres run as that user; the
// directory is then created under a path that user can traverse (TMPDIR if it
// is world-searchable, else /tmp).
//
// Binaries come from $FLOWRUN_PG_BINDIR if set, else the newest
// /usr/lib/postgresql/<major>/bin, else `pg_config --bindir`.
//
// Ownership: the object owns the server process and the directory. The
// destructor stops the server (immediate shutdown, then SIGKILL of its
// process group if it does not go) and removes the directory. The server is
// also started with a parent-death signal, so a crashed test binary does not
// leak it; that signal follows the *thread* that started the server, so call
// Start() (and Restart()) from a thread that outlives the server, normally
// the main thread.
//
// Thread safety: ConnectionString(), port(), data_dir(), Psql(),
// CreateDatabase() and TerminateConnections() may be called concurrently from
// any thread (each runs its own psql process). Stop() and Restart() must not
// run concurrently with each other or with the destructor.
//
// Errors: every method that fails throws std::runtime_error whose message
// includes the relevant output (psql's stderr, or the tail of the server log).
#ifndef FLOWRUN_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define FLOWRUN_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>

#include "support/child_process.h"

namespace flowrun::testing {

class PostgresServer {
 public:
  struct Options {
    // false (tests): fsync=off, synchronous_commit=off, full_page_writes=off
    // and initdb --no-sync, for speed. Consequences: a fast Stop() loses
    // nothing; an immediate stop (StopMode::kImmediate, or the server being
    // killed) may lose the last ~0.6 s of commits, which synchronous_commit=off
    // leaves in WAL buffers (3 x wal_writer_delay); a machine crash may
    // corrupt the cluster. Use durable=true for tests that crash the server
    // and then expect every acknowledged commit. true: PostgreSQL's defaults.
    bool durable = false;
    // Appended verbatim to postgresql.conf after flowrun's settings, so it
    // wins for any setting except `port` (always passed on the command line).
    std::string extra_conf;
  };

  // How Stop() shuts the server down.
  enum class StopMode {
    kFast,       // SIGINT: clients are disconnected, a checkpoint is written
    kImmediate,  // SIGQUIT: like a crash; the next start runs WAL recovery
                 // (see Options::durable for what can be lost)
  };

  // Starts a server as described above. Throws std::runtime_error (with the
  // initdb output or the server log tail) if it cannot.
  static std::unique_ptr<PostgresServer> Start(Options options);
  static std::unique_ptr<PostgresServer> Start() { return Start(Options{}); }

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  ~PostgresServer();

  // libpq keyword/value connection string, e.g.
  // "host=127.0.0.1 port=54321 user=flowrun dbname=postgres".
  // Database names with spaces or quotes are quoted per libpq rules.
  std::string ConnectionString(const std::string& db = "postgres") const;
  int port() const { return port_; }
  // The PostgreSQL data directory (inside the temp dir).
  const std::string& data_dir() const { return data_dir_; }
  // Directory holding the postgres binaries in use.
  const std::string& bin_dir() const { return bin_dir_; }
  // True between a successful start and Stop().
  bool running() const;

  // CREATE DATABASE "name" (owner flowrun). Throws if it exists.
  void CreateDatabase(const std::string& name);
  // DROP DATABASE IF EXISTS "name" WITH (FORCE), i.e. disconnecting users.
  void DropDatabase(const std::string& name);

  // Runs `sql` (one or more statements) with `psql -X -At -v ON_ERROR_STOP=1`
  // against `db` and returns stdout without its final newline: rows are
  // separated by '\n', columns by '|'. Throws on any SQL or connection error,
  // or if psql takes longer than 60 s.
  std::string Psql(const std::string& db, const std::string& sql) const;

  // Stops the server; the data directory and port are kept for Restart().
  // Tests use it to make the database unreachable. No-op when stopped.
  void Stop(StopMode mode = StopMode::kFast);
  // Stop() if running, then start again on the same port with the same data.
  // Throws if the port was taken by someone else in the meantime.
  void Restart();

  // Terminates every backend connected to `db` (any database when empty)
  // whose application_name matches the SQL LIKE pattern
  // `application_name_like`, waiting up to 5 s for each to exit, so that
  // "connection lost" is observable by the client right after the call.
  // Never terminates the psql session doing the work. Returns how many
  // backends were terminated.
  int TerminateConnections(const std::string& db, const std::string& application_name_like);

  // The server's log (stdout+stderr of every run of this server, including
  // those before Stop()/Restart()); only the last `lines` lines when > 0.
  std::string LogTail(int lines = 40) const;

 private:
  PostgresServer(Options options, std::string root_dir, std::string bin_dir);

  void InitDb();
  // Starts postgres on port_ and waits for readiness. Returns false (with
  // the server stopped) only when the port turned out to be taken.
  bool StartProcess();
  std::unique_ptr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                      bool die_with_parent) const;

  const Options options_;
  const std::string root_dir_;    // mkdtemp'd; holds data/ and the socket
  const std::string data_dir_;    // root_dir_/data
  const std::string bin_dir_;
  const std::string run_as_;      // "postgres" when we are root, else ""
  int port_ = 0;

  mutable std::mutex mu_;  // guards server_ and previous_log_
  std::unique_ptr<ChildProcess> server_;  // the postmaster, null when stopped
  std::string previous_log_;              // output of finished runs; guarded by mu_
};

// A GoogleTest global environment owning one PostgresServer for the whole
// test binary. Register it from main() (or a static initializer in the test
// file) with
//   ::testing::AddGlobalTestEnvironment(new PostgresEnvironment());
// and use PostgresEnvironment::Server() in tests. The server starts lazily on
// the first Server() call (so tests that do not need PostgreSQL, and test
// listing via --gtest_list_tests, pay nothing) and stops in TearDown().
//
// Thread safety: Server() may be called from any thread, but the first call
// must come from the main thread (see PostgresServer's parent-death note).
class PostgresEnvironment : public ::testing::Environment {
 public:
  explicit PostgresEnvironment(PostgresServer::Options options = {});
  ~PostgresEnvironment() override;

  void SetUp() override;
  void TearDown() override;

  // The shared server, started on first use. Throws std::logic_error when no
  // PostgresEnvironment is registered, std::runtime_error if it cannot start.
  static PostgresServer& Server();

  // Drops and creates a database named after the running test
  // ("t_<suite>_<test>", lowercased, non-alphanumerics as '_', at most 63
  // bytes) and returns its name. Dropping first keeps --gtest_repeat working.
  static std::string CreateDatabaseForCurrentTest();

 private:
  PostgresServer& GetOrStart();

  const PostgresServer::Options options_;
  std::mutex mu_;
  std::unique_ptr<PostgresServer> server_;  // guarded by mu_
  // The one registered environment. A static is unavoidable here: gtest owns
  // the object and tests reach it without a handle.
  static PostgresEnvironment* instance_;
};

}  // namespace flowrun::testing

#endif  // FLOWRUN_TESTS_SUPPORT_POSTGRES_SERVER_H_
