#include "flowrun/query/continue_token.h"

namespace flowrun::query {

std::string EncodeContinue(const ContinueToken& t) {
  const std::string text = nlohmann::json{{"l", t.list}, {"s", t.sort}, {"u", t.uid}, {"k", t.key}}.dump();
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

StatusOr<ContinueToken> DecodeContinue(const std::string& text, const std::string& list, const std::string& sort,
                                       const std::string& uid) {
  const Status bad = InvalidArgument("continue: not a token of this list (take metadata.continue of the previous page)");
  if (text.size() % 2 != 0 || text.size() > 4096) return bad;
  std::string raw;
  raw.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    auto v = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = v(text[i]), lo = v(text[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    raw.push_back(static_cast<char>(hi * 16 + lo));
  }
  nlohmann::json j = nlohmann::json::parse(raw, nullptr, false);
  if (!j.is_object() || !j.contains("l") || !j["l"].is_string() || !j.contains("s") || !j["s"].is_string() ||
      !j.contains("u") || !j["u"].is_string() || !j.contains("k") || !j["k"].is_array())
    return bad;
  ContinueToken t{j["l"].get<std::string>(), j["s"].get<std::string>(), j["u"].get<std::string>(), j["k"]};
  if (t.list != list) return bad;
  if (t.sort != sort) return InvalidArgument("continue: the token was issued for sort=" + t.sort + ", not sort=" + sort);
  if (t.uid != uid)
    return InvalidArgument("continue: the token belongs to another execution of this run (it was re-created)");
  return t;
}

}  // namespace flowrun::query
