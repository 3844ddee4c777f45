#include "flowrun/metrics/db_totals.h"

#include <algorithm>

namespace flowrun::metrics {

DbTotals::DbTotals(std::unique_ptr<MetricsSource> source, DbTotalsOptions options)
    : source_(std::move(source)),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : DefaultClock()) {}

DbTotals::~DbTotals() { Stop(); }

void DbTotals::Start() { thread_ = std::thread([this] { Loop(); }); }

void DbTotals::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool DbTotals::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return !clock_->WaitFor(l, cv_, d, [this] { return stopping_; });
}

uint64_t DbTotals::reads_started() const {
  std::lock_guard<std::mutex> l(mu_);
  return reads_started_;
}

bool DbTotals::WaitForReads(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout, [&] { return stopping_ || reads_.load() >= n; }) && reads_.load() >= n;
}

void DbTotals::Publish(const DbSnapshot& s) {
  auto fams = std::make_shared<const std::vector<prometheus::MetricFamily>>(DbFamilies(s));
  double now = std::chrono::duration<double>(clock_->Now().time_since_epoch()).count();
  std::lock_guard<std::mutex> l(mu_);
  families_ = std::move(fams);
  last_success_ = now;
}

void DbTotals::Loop() {
  auto backoff = options_.backoff_initial;
  auto fail = [&](const Status& st) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++errors_;
    }
    if (options_.on_error) options_.on_error(st);
    bool go_on = SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.backoff_max);
    return go_on;
  };
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return;
    }
    // (Re)connect: LISTEN before the full read, so nothing committed after
    // the read's snapshot goes unnoticed.
    if (Status st = source_->Connect(); !st.ok()) {
      if (!fail(st)) return;
      continue;
    }
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_) return;
        ++reads_started_;
      }
      auto t0 = clock_->MonotonicNow();
      StatusOr<DbSnapshot> snap = source_->Read();
      auto took = clock_->MonotonicNow() - t0;
      if (options_.on_read) options_.on_read(took, snap.ok());
      if (!snap.ok()) {
        if (!fail(snap.status())) return;
        break;  // reconnect
      }
      Publish(*snap);
      reads_.fetch_add(1);
      cv_.notify_all();
      backoff = options_.backoff_initial;
      // Debounce, then wait for a change (in slices, so Stop() is prompt).
      // A read costs O(rows) in PostgreSQL: pausing `read_load_factor` times
      // its duration caps the database time spent on metrics at
      // 1/(1+factor) of one core however busy the runs are.
      auto pause = std::max<std::chrono::milliseconds>(
          options_.min_interval,
          std::chrono::duration_cast<std::chrono::milliseconds>(took * options_.read_load_factor));
      if (!SleepFor(pause)) return;
      auto deadline = clock_->MonotonicNow() + options_.max_interval;
      bool lost = false;
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_->MonotonicNow());
        if (left.count() <= 0) break;
        StatusOr<bool> changed = source_->AwaitChange(std::min(left, std::chrono::milliseconds(250)));
        if (!changed.ok()) {
          lost = true;
          if (!fail(changed.status())) return;
          break;
        }
        if (*changed) break;
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_) return;
      }
      if (lost) break;
    }
  }
}

std::vector<prometheus::MetricFamily> DbTotals::Collect() const {
  std::shared_ptr<const std::vector<prometheus::MetricFamily>> fams;
  double last;
  uint64_t errors;
  {
    std::lock_guard<std::mutex> l(mu_);
    fams = families_;
    last = last_success_;
    errors = errors_;
  }
  std::vector<prometheus::MetricFamily> out;
  if (fams) out = *fams;
  prometheus::MetricFamily ts{"flowrun_metrics_last_refresh_timestamp_seconds",
                              "when the totals were last read from PostgreSQL (0: never)",
                              prometheus::MetricType::Gauge, {}};
  prometheus::ClientMetric m;
  m.gauge.value = last;
  ts.metric.push_back(m);
  out.push_back(std::move(ts));
  prometheus::MetricFamily er{"flowrun_metrics_refresh_errors_total",
                              "failed connections or reads of the totals from PostgreSQL",
                              prometheus::MetricType::Counter, {}};
  prometheus::ClientMetric e;
  e.counter.value = static_cast<double>(errors);
  er.metric.push_back(e);
  out.push_back(std::move(er));
  return out;
}

}  // namespace flowrun::metrics
