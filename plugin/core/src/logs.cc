#include "flowrun/plugin/logs.h"

#include <cctype>
#include <chrono>

#include "flowrun/rfc3339.h"

namespace flowrun::plugin {

bool ParseNanos(const std::string& ts, int64_t* ns, std::string* whole_second) {
  // Split off the fraction: "<date>T<hh:mm:ss>[.<digits>]<zone>".
  auto t = ts.find('T');
  if (t == std::string::npos || ts.size() < t + 9) return false;
  size_t frac_start = t + 9;
  std::string frac;
  size_t zone = frac_start;
  if (frac_start < ts.size() && ts[frac_start] == '.') {
    zone = frac_start + 1;
    while (zone < ts.size() && std::isdigit(static_cast<unsigned char>(ts[zone]))) ++zone;
    frac = ts.substr(frac_start + 1, zone - frac_start - 1);
  }
  std::string whole = ts.substr(0, frac_start) + ts.substr(zone);
  auto tp = ParseTime(whole);
  if (!tp) return false;
  int64_t sub = 0;
  for (size_t i = 0; i < 9; ++i) sub = sub * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  *ns = std::chrono::duration_cast<std::chrono::seconds>(tp->time_since_epoch()).count() * 1000000000LL + sub;
  if (whole_second) *whole_second = FormatTime(*tp);
  return true;
}

std::string LogCursor::Take(const std::string& body, bool keep_timestamps) {
  std::string out;
  int64_t seen_at = 0;  // lines of this body with time == last_ns_ so far
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    std::string line = body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? body.size() : nl + 1;
    if (line.empty()) continue;
    auto sp = line.find(' ');
    std::string ts = line.substr(0, sp);
    std::string text = sp == std::string::npos ? "" : line.substr(sp + 1);
    int64_t ns = 0;
    std::string second;
    if (!ParseNanos(ts, &ns, &second)) {  // no timestamp: hand it out as is
      out += line + "\n";
      continue;
    }
    if (ns < last_ns_) continue;
    if (ns == last_ns_) {
      if (++seen_at <= at_last_) continue;
      ++at_last_;
    } else {
      last_ns_ = ns;
      at_last_ = 1;
      seen_at = 1;
      since_ = second;
    }
    out += (keep_timestamps ? line : text) + "\n";
  }
  return out;
}

}  // namespace flowrun::plugin
