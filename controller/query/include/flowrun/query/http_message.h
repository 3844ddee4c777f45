// The read API's HTTP request and response, independent of the transport
// (tls_server.h parses and writes them; query_api.h maps one to the other).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace flowrun::query {

struct HttpRequest {
  std::string method;  // "GET"
  std::string path;    // raw path, percent-encoded, without the query
  std::map<std::string, std::string> query;  // decoded; a repeated key keeps its first value
  // Header names lower-cased; a repeated header keeps every value in order.
  std::multimap<std::string, std::string> headers;

  // First value of a header (name lower-case), "" when absent.
  std::string Header(const std::string& lower_name) const;
};

struct HttpResponse {
  int code = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type/Length
};

// Percent-decoding of a path segment or query component ('+' is a space only
// in queries). false for a malformed escape.
bool PercentDecode(const std::string& in, bool plus_is_space, std::string* out);
// "a=1&b=x%20y" -> {a: 1, b: "x y"}; false for a malformed escape.
bool ParseQuery(const std::string& raw, std::map<std::string, std::string>* out);

}  // namespace flowrun::query
