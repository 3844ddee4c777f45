// The cpprestsdk adapter behind HttpTransport. Everything cpprestsdk-specific
// stays in this file (see shared notes: it is archived upstream).
#include <cctype>
#include <map>
#include <mutex>

#include <cpprest/http_client.h>

#include "flowrun/http_transport.h"

namespace flowrun {

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return v;
  }
  return "";
}

namespace {

using web::http::client::http_client;
using web::http::client::http_client_config;

class CppRestTransport final : public HttpTransport {
 public:
  ~CppRestTransport() override {
    std::lock_guard<std::mutex> lock(mu_);
    clients_.clear();  // before main returns: cpprestsdk crashes at exit otherwise
  }

  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    web::uri uri;
    try {
      uri = web::uri(utility::conversions::to_string_t(request.url));
    } catch (const std::exception& e) {
      return InvalidArgument("malformed URL: " + std::string(e.what()));
    }
    std::string authority = uri.scheme() + "://" + uri.host() + ":" + std::to_string(uri.port());
    try {
      http_client& client = ClientFor(authority, request.timeout);
      web::http::http_request req(web::http::method(request.method));
      std::string path_query = uri.resource().to_string();
      req.set_request_uri(path_query.empty() ? "/" : path_query);
      std::string content_type = "application/json";
      for (const auto& [k, v] : request.headers) {
        if (k == "Content-Type") content_type = v;
        else req.headers().add(k, v);
      }
      if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
          request.method == "PATCH")
        req.set_body(request.body, content_type);
      // One blocking get() on this thread: no continuation chains whose
      // exceptions could go unobserved (cpprestsdk aborts on those).
      web::http::http_response resp = client.request(req).get();
      HttpResponse out;
      out.status = resp.status_code();
      for (const auto& [k, v] : resp.headers()) out.headers.emplace_back(k, v);
      std::vector<unsigned char> body = resp.extract_vector().get();
      out.body.assign(body.begin(), body.end());
      return out;
    } catch (const web::http::http_exception& e) {
      std::string what = e.what();
      if (what.find("timed out") != std::string::npos || what.find("timeout") != std::string::npos)
        return DeadlineExceeded("HTTP " + request.method + " " + authority + ": " + what);
      return Unavailable("HTTP " + request.method + " " + authority + ": " + what);
    } catch (const std::exception& e) {
      return Unavailable("HTTP " + request.method + " " + authority + ": " + e.what());
    }
  }

 private:
  http_client& ClientFor(const std::string& authority, std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = authority + "#" + std::to_string(timeout.count());
    auto it = clients_.find(key);
    if (it == clients_.end()) {
      http_client_config config;
      // cpprestsdk's timeout is an idle timer reset on every chunk.
      config.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
      it = clients_.emplace(key, std::make_unique<http_client>(authority, config)).first;
    }
    return *it->second;
  }

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<http_client>> clients_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeCppRestTransport(const TransportOptions& /*options*/) { return std::make_unique<CppRestTransport>(); }

}  // namespace flowrun
