#include "flowrun/query/http_message.h"

namespace flowrun::query {

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool PercentDecode(const std::string& in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool ParseQuery(const std::string& raw, std::map<std::string, std::string>* out) {
  size_t start = 0;
  while (start <= raw.size()) {
    size_t amp = raw.find('&', start);
    if (amp == std::string::npos) amp = raw.size();
    std::string part = raw.substr(start, amp - start);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string k, v;
      if (!PercentDecode(part.substr(0, eq), true, &k)) return false;
      if (eq != std::string::npos && !PercentDecode(part.substr(eq + 1), true, &v)) return false;
      out->emplace(k, v);  // first value wins
    }
    start = amp + 1;
  }
  return true;
}

}  // namespace flowrun::query
