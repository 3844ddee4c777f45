#include "support/postgres_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace flowrun::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSuperuser[] = "flowrun";
constexpr char kSystemUser[] = "postgres";

// libpq environment variables that would silently redirect or alter the
// connections our tools make; the server must be found only via arguments.
std::vector<std::string> PgEnvVars() {
  return {
      "PGHOST",     "PGHOSTADDR",     "PGPORT",     "PGDATABASE",    "PGUSER",
      "PGPASSWORD", "PGPASSFILE",     "PGSERVICE",  "PGSERVICEFILE", "PGOPTIONS",
      "PGSSLMODE",  "PGAPPNAME",      "PGDATA",     "PGCONNECT_TIMEOUT",
      "PGTZ",       "PGDATESTYLE",    "PGCLIENTENCODING", "PGTARGETSESSIONATTRS",
      "PGREQUIRESSL", "PGGSSENCMODE", "PGSYSCONFDIR", "PSQLRC"};
}

std::string LastLines(const std::string& text, int lines) {
  if (lines <= 0) return text;
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (int i = 0; i < lines && pos != std::string::npos && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
  }
  return (pos == std::string::npos || pos == 0) ? text : text.substr(pos + 1);
}

// Runs a short-lived tool to completion; throws if it outlives `timeout`.
struct ToolResult {
  ExitStatus status;
  std::string out;
  std::string err;
};
ToolResult RunTool(std::vector<std::string> argv, ChildProcess::Options opts,
                   std::map<std::string, std::string> env, milliseconds timeout) {
  std::string what = argv[0];
  auto child = ChildProcess::Spawn(std::move(argv), std::move(env), std::move(opts));
  auto status = child->Wait(timeout);
  if (!status) {
    // The destructor SIGKILLs the group.
    throw std::runtime_error("PostgresServer: " + what + " did not finish within " +
                             std::to_string(timeout.count()) + " ms; output:\n" +
                             LastLines(child->Output(), 40));
  }
  return ToolResult{*status, child->Output(), child->ErrorOutput()};
}

bool IsPgBinDir(const fs::path& dir) {
  return access((dir / "postgres").c_str(), X_OK) == 0 &&
         access((dir / "initdb").c_str(), X_OK) == 0;
}

std::string FindBinDir() {
  if (const char* env = std::getenv("FLOWRUN_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (!IsPgBinDir(env)) {
      throw std::runtime_error(std::string("PostgresServer: FLOWRUN_PG_BINDIR=") + env +
                               " has no postgres/initdb");
    }
    return env;
  }
  // Debian installs each major version side by side; take the newest.
  int best = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    int major = std::stoi(name);
    if (major > best && IsPgBinDir(entry.path() / "bin")) best = major;
  }
  if (best >= 0) return "/usr/lib/postgresql/" + std::to_string(best) + "/bin";
  try {
    ChildProcess::Options opts;
    opts.separate_stderr = true;
    auto r = RunTool({"pg_config", "--bindir"}, opts, {}, seconds(10));
    std::string dir = r.out.substr(0, r.out.find('\n'));
    if (r.status.ok() && IsPgBinDir(dir)) return dir;
  } catch (const std::exception&) {
    // Fall through to the error below: a missing pg_config says the same.
  }
  throw std::runtime_error(
      "PostgresServer: no PostgreSQL server binaries found (looked in "
      "$FLOWRUN_PG_BINDIR, /usr/lib/postgresql/*/bin, pg_config --bindir); "
      "install the postgresql package (scripts/install-deps.sh)");
}

// True if every directory from / down to `dir` can be traversed by others,
// i.e. by the postgres user when we run as root.
bool WorldSearchable(const fs::path& dir) {
  std::error_code ec;
  fs::path p = fs::canonical(dir, ec);
  if (ec) return false;
  for (;;) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    if (p == p.root_path()) return true;
    p = p.parent_path();
  }
}

struct UserIds {
  uid_t uid;
  gid_t gid;
};
UserIds LookupUser(const std::string& name) {
  struct passwd pw_storage;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw_storage, buf.data(), buf.size(), &pw) != 0 || pw == nullptr) {
    throw std::runtime_error(
        "PostgresServer: running as root, but there is no '" + name +
        "' system user to run PostgreSQL as (PostgreSQL refuses to run as root; the "
        "Debian postgresql package creates that user)");
  }
  return {pw->pw_uid, pw->pw_gid};
}

// Creates the private directory. The unix socket lives in it, and socket
// paths are limited to ~107 bytes, so long TMPDIRs fall back to /tmp.
std::string MakeRootDir(const std::string& run_as) {
  std::string base = "/tmp";
  if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') base = t;
  if (base.size() > 60 || (!run_as.empty() && !WorldSearchable(base))) base = "/tmp";
  std::string templ = base + "/flowrun-pg-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("PostgresServer: mkdtemp in " + base + ": " + std::strerror(errno));
  }
  if (!run_as.empty()) {
    UserIds ids = LookupUser(run_as);
    if (chown(templ.c_str(), ids.uid, ids.gid) != 0) {
      int saved = errno;
      rmdir(templ.c_str());
      throw std::runtime_error("PostgresServer: chown " + templ + ": " + std::strerror(saved));
    }
  }
  return templ;
}

// Asks the kernel for a currently free port. Another process can grab it
// before postgres binds; StartProcess() detects that and Start() retries.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("PostgresServer: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int saved = errno;
    close(fd);
    throw std::runtime_error(std::string("PostgresServer: bind: ") + std::strerror(saved));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string SqlLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string SqlIdentifier(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Quotes a libpq keyword/value connection-string value when needed.
std::string ConnValue(const std::string& v) {
  bool plain = !v.empty() && std::none_of(v.begin(), v.end(), [](char c) {
    return c == ' ' || c == '\'' || c == '\\' || c == '=' || std::isspace(static_cast<unsigned char>(c));
  });
  if (plain) return v;
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

PostgresServer::PostgresServer(Options options, std::string root_dir, std::string bin_dir)
    : options_(std::move(options)),
      root_dir_(std::move(root_dir)),
      data_dir_(root_dir_ + "/data"),
      bin_dir_(std::move(bin_dir)),
      run_as_(geteuid() == 0 ? kSystemUser : "") {}

std::unique_ptr<PostgresServer> PostgresServer::Start(Options options) {
  std::string bin_dir = FindBinDir();
  std::string run_as = geteuid() == 0 ? kSystemUser : "";
  std::string root = MakeRootDir(run_as);
  // From here on the destructor owns (and removes) the directory.
  std::unique_ptr<PostgresServer> server(new PostgresServer(std::move(options), root, bin_dir));
  server->InitDb();
  constexpr int kAttempts = 5;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    server->port_ = FreePort();
    if (server->StartProcess()) return server;
  }
  throw std::runtime_error("PostgresServer: could not bind a free port in " +
                           std::to_string(kAttempts) + " attempts; log:\n" + server->LogTail());
}

PostgresServer::~PostgresServer() {
  try {
    Stop(StopMode::kImmediate);
  } catch (const std::exception&) {
    // Stop() only throws from ChildProcess on resource exhaustion; the
    // ChildProcess destructor still SIGKILLs the group, so carry on cleaning.
  }
  std::error_code ec;
  fs::remove_all(root_dir_, ec);
}

std::unique_ptr<ChildProcess> PostgresServer::Spawn(const std::vector<std::string>& argv,
                                                    bool die_with_parent) const {
  ChildProcess::Options opts;
  opts.unset_env = PgEnvVars();
  opts.working_dir = root_dir_;  // the postgres user may not be able to read our cwd
  opts.run_as_user = run_as_;
  opts.die_with_parent = die_with_parent;
  // SIGQUIT is the postmaster's immediate shutdown: it also stops backends.
  opts.parent_death_signal = SIGQUIT;
  return ChildProcess::Spawn(argv, {{"LC_ALL", "C"}, {"LANG", "C"}}, opts);
}

void PostgresServer::InitDb() {
  std::vector<std::string> argv = {bin_dir_ + "/initdb", "-D", data_dir_, "-U", kSuperuser,
                                   "--auth=trust", "-E", "UTF8", "--locale=C"};
  if (!options_.durable) argv.push_back("--no-sync");
  auto child = Spawn(argv, /*die_with_parent=*/false);
  auto status = child->Wait(seconds(180));
  if (!status || !status->ok()) {
    throw std::runtime_error("PostgresServer: initdb " +
                             (status ? status->ToString() : std::string("timed out")) +
                             "; output:\n" + LastLines(child->Output(), 40));
  }

  std::ostringstream conf;
  conf << "\n# --- flowrun::testing::PostgresServer ---\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "unix_socket_directories = " << SqlLiteral(root_dir_) << "\n"
       << "max_connections = 100\n"
       << "logging_collector = off\n"
       << "log_line_prefix = '%m [%p] %q%a@%d '\n"
       // JIT compilation only adds latency to the tiny queries tests run.
       << "jit = off\n";
  if (!options_.durable) {
    conf << "fsync = off\n"
         << "synchronous_commit = off\n"
         << "full_page_writes = off\n";
  }
  if (!options_.extra_conf.empty()) {
    conf << "# --- Options::extra_conf ---\n" << options_.extra_conf << "\n";
  }
  // As root we write into the postgres-owned file; ownership is unchanged.
  std::ofstream out(data_dir_ + "/postgresql.conf", std::ios::app);
  out << conf.str();
  out.close();
  if (!out) throw std::runtime_error("PostgresServer: cannot append to postgresql.conf");
}

bool PostgresServer::StartProcess() {
  auto proc = Spawn({bin_dir_ + "/postgres", "-D", data_dir_, "-p", std::to_string(port_)},
                    /*die_with_parent=*/true);
  ChildProcess* p = proc.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = std::move(proc);
  }
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  for (;;) {
    if (!p->Running()) {
      std::string log = p->Output();
      {
        std::lock_guard<std::mutex> lock(mu_);
        previous_log_ += log;
        server_.reset();
      }
      if (log.find("could not bind") != std::string::npos ||
          log.find("Address already in use") != std::string::npos) {
        return false;
      }
      throw std::runtime_error("PostgresServer: postgres exited during startup on port " +
                               std::to_string(port_) + "; log:\n" + LastLines(log, 40));
    }
    ChildProcess::Options opts;
    opts.unset_env = PgEnvVars();
    opts.separate_stderr = true;
    auto ready = RunTool({bin_dir_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                          std::to_string(port_), "-U", kSuperuser, "-d", "postgres", "-t", "2"},
                         opts, {}, seconds(10));
    if (ready.status.ok()) return true;
    if (std::chrono::steady_clock::now() > deadline) {
      std::string tail = LogTail();
      Stop(StopMode::kImmediate);
      throw std::runtime_error("PostgresServer: not accepting connections on port " +
                               std::to_string(port_) + " after 60 s; log:\n" + tail);
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

bool PostgresServer::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return server_ != nullptr && server_->Running();
}

std::string PostgresServer::ConnectionString(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + kSuperuser +
         " dbname=" + ConnValue(db);
}

std::string PostgresServer::Psql(const std::string& db, const std::string& sql) const {
  ChildProcess::Options opts;
  opts.unset_env = PgEnvVars();
  opts.separate_stderr = true;  // NOTICEs must not end up in the result
  auto r = RunTool({bin_dir_ + "/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d",
                    ConnectionString(db) + " connect_timeout=10", "-c", sql},
                   opts, {{"LC_ALL", "C"}}, seconds(60));
  if (!r.status.ok()) {
    throw std::runtime_error("PostgresServer::Psql(" + db + ") failed (" + r.status.ToString() +
                             "): " + r.err + "\nSQL: " + sql);
  }
  std::string out = std::move(r.out);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void PostgresServer::CreateDatabase(const std::string& name) {
  Psql("postgres", "CREATE DATABASE " + SqlIdentifier(name));
}

void PostgresServer::DropDatabase(const std::string& name) {
  Psql("postgres", "DROP DATABASE IF EXISTS " + SqlIdentifier(name) + " WITH (FORCE)");
}

int PostgresServer::TerminateConnections(const std::string& db,
                                         const std::string& application_name_like) {
  // pg_terminate_backend(pid, timeout) (PostgreSQL 14+) waits until the
  // backend is gone, so the caller's next query already sees the lost link.
  // The victims are selected in a MATERIALIZED CTE because PostgreSQL does
  // not evaluate WHERE conditions in written order: in a single WHERE it may
  // call pg_terminate_backend() before the filters, even on its own backend.
  std::string sql =
      "WITH victims AS MATERIALIZED ("
      "SELECT a.pid FROM pg_stat_activity a "
      "WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' "
      "AND a.application_name LIKE " + SqlLiteral(application_name_like) +
      (db.empty() ? std::string() : " AND a.datname = " + SqlLiteral(db)) +
      ") SELECT count(*) FROM victims WHERE pg_terminate_backend(victims.pid, 5000)";
  return std::stoi(Psql("postgres", sql));
}

void PostgresServer::Stop(StopMode mode) {
  std::unique_ptr<ChildProcess> proc;
  {
    std::lock_guard<std::mutex> lock(mu_);
    proc = std::move(server_);
  }
  if (!proc) return;
  proc->Kill(mode == StopMode::kFast ? SIGINT : SIGQUIT);
  if (!proc->Wait(seconds(60))) {
    proc->Kill(SIGQUIT);
    if (!proc->Wait(seconds(10))) {
      // The postmaster is stuck; take its backends down with it.
      proc->KillGroup(SIGKILL);
      proc->Wait(seconds(10));
    }
  }
  std::string log = proc->Output();
  std::lock_guard<std::mutex> lock(mu_);
  previous_log_ += log;
}

void PostgresServer::Restart() {
  Stop(StopMode::kFast);
  if (!StartProcess()) {
    throw std::runtime_error("PostgresServer::Restart: port " + std::to_string(port_) +
                             " was taken while the server was stopped; log:\n" + LogTail());
  }
}

std::string PostgresServer::LogTail(int lines) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string log = previous_log_;
  if (server_ != nullptr) {
    try {
      log += server_->Output();
    } catch (const std::exception&) {
      // Capture file gone: report what we have.
    }
  }
  return LastLines(log, lines);
}

// ---------------------------------------------------------------------------

PostgresEnvironment* PostgresEnvironment::instance_ = nullptr;

PostgresEnvironment::PostgresEnvironment(PostgresServer::Options options)
    : options_(std::move(options)) {
  instance_ = this;
}

PostgresEnvironment::~PostgresEnvironment() {
  if (instance_ == this) instance_ = nullptr;
}

void PostgresEnvironment::SetUp() {}

void PostgresEnvironment::TearDown() {
  std::lock_guard<std::mutex> lock(mu_);
  server_.reset();
}

PostgresServer& PostgresEnvironment::GetOrStart() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!server_) server_ = PostgresServer::Start(options_);
  return *server_;
}

PostgresServer& PostgresEnvironment::Server() {
  if (instance_ == nullptr) {
    throw std::logic_error(
        "PostgresEnvironment::Server(): no PostgresEnvironment registered; call "
        "::testing::AddGlobalTestEnvironment(new PostgresEnvironment()) in main()");
  }
  return instance_->GetOrStart();
}

std::string PostgresEnvironment::CreateDatabaseForCurrentTest() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) {
    throw std::logic_error("PostgresEnvironment::CreateDatabaseForCurrentTest(): not inside a test");
  }
  std::string raw = std::string(info->test_suite_name()) + "_" + info->name();
  std::string name = "t_";
  for (char c : raw) {
    name += std::isalnum(static_cast<unsigned char>(c))
                ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                : '_';
  }
  // PostgreSQL truncates identifiers to 63 bytes; keep long names distinct.
  if (name.size() > 63) {
    char hash[17];
    std::snprintf(hash, sizeof(hash), "%016zx", std::hash<std::string>{}(raw));
    name = name.substr(0, 46) + "_" + hash;
  }
  PostgresServer& server = Server();
  server.DropDatabase(name);
  server.CreateDatabase(name);
  return name;
}

}  // namespace flowrun::testing
