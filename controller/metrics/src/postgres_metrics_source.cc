#include "flowrun/metrics/postgres_metrics_source.h"

#include <pqxx/pqxx>

#include "flowrun/environment.h"

namespace flowrun::metrics {

namespace {

constexpr const char* kChannel = "flowrun_metrics";

// Counters: live contributions plus what deleted runs folded into the rollup.
constexpr const char* kCountersSql =
    "SELECT metric, namespace, flow, model, label, sum(value) FROM ("
    " SELECT metric, namespace, flow, model, label, value FROM flowrun.metric_contributions(NULL)"
    " UNION ALL SELECT metric, namespace, flow, model, label, value FROM flowrun.metric_rollup) t"
    " GROUP BY 1, 2, 3, 4, 5";
// Gauges: runs waiting now, and when their oldest question was asked.
constexpr const char* kOpenWaitsSql =
    "SELECT r.namespace, r.flow, count(*)::float8, extract(epoch FROM min(w.asked_at))::float8"
    " FROM flowrun.waits w JOIN flowrun.runs r USING (run_uid)"
    " WHERE r.status = 'waiting' AND w.question IS NOT NULL AND w.answer IS NULL AND w.consumed_at IS NULL"
    " GROUP BY 1, 2";

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, int* count) : pqxx::notification_receiver(c, kChannel), count_(count) {}
  void operator()(const std::string&, int) override { ++*count_; }

 private:
  int* count_;
};

class PostgresMetricsSource final : public MetricsSource {
 public:
  explicit PostgresMetricsSource(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~PostgresMetricsSource() override { Reset(); }

  Status Connect() override {
    Reset();
    try {
      conn_ = std::make_unique<pqxx::connection>(conninfo_);
      {
        pqxx::nontransaction tx(*conn_);
        tx.exec("SET application_name = 'flowrun-controller-metrics'");
      }
      conn_->prepare("counters", kCountersSql);
      conn_->prepare("open_waits", kOpenWaitsSql);
      // Subscribing issues LISTEN now, before the caller's first Read().
      receiver_ = std::make_unique<Receiver>(*conn_, &notified_);
      conn_->get_notifs();
      return Status();
    } catch (const std::exception& e) {
      Reset();
      return Unavailable(std::string("metrics database connection: ") + Scrub(e.what()));
    }
  }

  StatusOr<DbSnapshot> Read() override {
    if (!conn_) return Unavailable("metrics database not connected");
    try {
      DbSnapshot s;
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*conn_);
      for (const auto& r : tx.exec_prepared("counters"))
        s.rows.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                          r[3].as<std::string>(), r[4].as<std::string>(), r[5].is_null() ? 0 : r[5].as<double>()});
      for (const auto& r : tx.exec_prepared("open_waits")) {
        std::string ns = r[0].as<std::string>(), flow = r[1].as<std::string>();
        s.rows.push_back({"waits_open", ns, flow, "", "", r[2].as<double>()});
        if (!r[3].is_null()) s.rows.push_back({"wait_oldest_asked", ns, flow, "", "", r[3].as<double>()});
      }
      tx.commit();
      return s;
    } catch (const pqxx::broken_connection& e) {
      Reset();
      return Unavailable(std::string("metrics database connection lost: ") + Scrub(e.what()));
    } catch (const std::exception& e) {
      // A failed statement (e.g. schema older than version 2): reconnect too,
      // the transaction state is unknown.
      Reset();
      return Unavailable(std::string("reading metrics: ") + Scrub(e.what()));
    }
  }

  StatusOr<bool> AwaitChange(std::chrono::milliseconds timeout) override {
    if (!conn_) return Unavailable("metrics database not connected");
    try {
      notified_ = 0;
      conn_->get_notifs();  // already queued ones
      if (notified_ == 0) {
        auto us = timeout.count() * 1000;
        conn_->await_notification(static_cast<long>(us / 1000000), static_cast<long>(us % 1000000));
      }
      // await_notification returns on a closed socket too: check it.
      if (!conn_->is_open()) {
        Reset();
        return Unavailable("metrics database connection lost");
      }
      return notified_ > 0;
    } catch (const std::exception& e) {
      Reset();
      return Unavailable(std::string("metrics database connection lost: ") + Scrub(e.what()));
    }
  }

 private:
  // libpq's messages can quote the connection string: never log a password.
  static std::string Scrub(const std::string& m) { return RedactConnectionString(m); }

  void Reset() {
    receiver_.reset();
    conn_.reset();
  }

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<Receiver> receiver_;
  int notified_ = 0;
};

}  // namespace

std::unique_ptr<MetricsSource> NewPostgresMetricsSource(std::string conninfo) {
  return std::make_unique<PostgresMetricsSource>(std::move(conninfo));
}

}  // namespace flowrun::metrics
