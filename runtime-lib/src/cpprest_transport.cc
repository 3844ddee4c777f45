// The cpprestsdk adapter behind HttpTransport. Everything cpprestsdk-specific
// stays in this file (see shared notes: it is archived upstream).
//
// What this adapter does about cpprestsdk 2.10.18's known problems:
//  - TLS material (client certificate, key, CA) is loaded from memory in the
//    ssl_context callback, which runs for every new connection; nothing is
//    written to a file.
//  - TCP_NODELAY: the asio client enables it after connect; the nativehandle
//    callback (called before every request, with the connection's socket, or
//    its ssl::stream for https) re-applies TransportOptions::tcp_no_delay to
//    an open socket, so the option can also be switched off (benchmarks).
//  - The config timeout is an idle timer (reset on every chunk). Clients are
//    kept per authority + timeout, so a stream can use a longer one.
//  - A pooled keep-alive connection the server closed fails the next request:
//    idempotent requests (GET, HEAD, PUT, DELETE) are retried once, and so is
//    any request whose writing failed (the server never got it whole).
//  - Unobserved task exceptions abort the process: every task is either
//    .get() on the calling thread inside try/catch or ends in a task-based
//    continuation that reads its exception.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

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

bool IsTimeout(const std::string& what, int code) {
  return code == static_cast<int>(std::errc::timed_out) || what.find("timed out") != std::string::npos ||
         what.find("timeout") != std::string::npos;
}

bool IsIdempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS";
}

// The request never reached the server whole: writing it failed (typically
// on a pooled connection the server had closed), so the server cannot have
// acted on it and any method may be sent again.
bool NotSent(const std::string& what) {
  return what.find("Failed to write request") != std::string::npos;
}

// Builds a cpprestsdk request from ours (a fresh one per attempt: the body
// stream is consumed by sending).
web::http::http_request BuildRequest(const HttpRequest& request, const web::uri& uri) {
  web::http::http_request req(web::http::method(request.method));
  std::string path_query = uri.resource().to_string();
  req.set_request_uri(path_query.empty() ? "/" : path_query);
  std::string content_type = "application/json";
  for (const auto& [k, v] : request.headers) {
    if (k.size() == 12 && std::equal(k.begin(), k.end(), "content-type", [](char a, char b) {
          return std::tolower(a) == b;
        }))
      content_type = v;
    else
      req.headers().add(k, v);
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH")
    req.set_body(request.body, content_type);
  return req;
}

class CppRestStream final : public HttpStream {
 public:
  CppRestStream(web::http::http_response resp, std::shared_ptr<pplx::cancellation_token_source> cts)
      : resp_(std::move(resp)), body_(resp_.body()), cts_(std::move(cts)) {
    status_ = resp_.status_code();
    for (const auto& [k, v] : resp_.headers()) headers_.emplace_back(k, v);
    // The body's completion may fail (connection closed, cancelled): read
    // that exception here, or cpprestsdk aborts the process when the task dies.
    resp_.content_ready().then([](pplx::task<web::http::http_response> t) {
      try {
        t.wait();
      } catch (...) {
      }
    });
  }

  ~CppRestStream() override {
    if (!eof_) Cancel();
  }

  int status() const override { return status_; }
  const std::vector<std::pair<std::string, std::string>>& headers() const override { return headers_; }

  StatusOr<bool> ReadLine(std::string* line, size_t max_bytes) override {
    for (;;) {
      if (cancelled_.load()) return Aborted("stream cancelled");
      size_t nl = buf_.find('\n', scanned_);
      if (nl != std::string::npos) {
        line->assign(buf_, 0, nl);
        if (!line->empty() && line->back() == '\r') line->pop_back();
        buf_.erase(0, nl + 1);
        scanned_ = 0;
        return true;
      }
      scanned_ = buf_.size();
      if (buf_.size() > max_bytes)
        return ResourceExhausted("line longer than " + std::to_string(max_bytes) + " bytes");
      if (eof_) {
        if (buf_.empty()) return false;
        line->swap(buf_);
        buf_.clear();
        scanned_ = 0;
        return true;
      }
      Status st = Fill();
      if (!st.ok()) return st;
    }
  }

  void Cancel() override {
    cancelled_.store(true);
    // Closes the connection: a pending read completes (with an error).
    cts_->cancel();
  }

 private:
  // Waits for at least one byte (or the end), then takes all that is buffered.
  Status Fill() {
    try {
      auto sb = body_.streambuf();
      auto c = sb.getc().get();
      if (cancelled_.load()) return Aborted("stream cancelled");
      if (c == concurrency::streams::istream::traits::eof()) {
        if (sb.exception() != nullptr) std::rethrow_exception(sb.exception());
        eof_ = true;
        return Status::Ok();
      }
      size_t avail = std::max<size_t>(1, sb.in_avail());
      size_t old = buf_.size();
      buf_.resize(old + avail);
      size_t n = sb.getn(reinterpret_cast<uint8_t*>(&buf_[old]), avail).get();
      buf_.resize(old + n);
      if (n == 0) eof_ = true;
      return Status::Ok();
    } catch (const std::exception& e) {
      eof_ = true;
      if (cancelled_.load()) return Aborted("stream cancelled");
      std::string what = e.what();
      int code = 0;
      if (auto* he = dynamic_cast<const web::http::http_exception*>(&e)) code = he->error_code().value();
      if (IsTimeout(what, code)) return DeadlineExceeded("stream idle timeout: " + what);
      return Unavailable("stream broken: " + what);
    }
  }

  web::http::http_response resp_;
  concurrency::streams::istream body_;
  std::shared_ptr<pplx::cancellation_token_source> cts_;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string buf_;
  size_t scanned_ = 0;
  bool eof_ = false;
  std::atomic<bool> cancelled_{false};
};

class CppRestTransport final : public HttpTransport {
 public:
  explicit CppRestTransport(TransportOptions options) : options_(std::move(options)) {}

  ~CppRestTransport() override {
    std::lock_guard<std::mutex> lock(mu_);
    clients_.clear();  // before main returns: cpprestsdk crashes at exit otherwise
  }

  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    return WithStaleConnectionRetry<HttpResponse>(
        request, [&](http_client& client, const web::uri& uri) -> StatusOr<HttpResponse> {
          web::http::http_request req = BuildRequest(request, uri);
          // One blocking get() on this thread: no continuation chains whose
          // exceptions could go unobserved (cpprestsdk aborts on those).
          web::http::http_response resp = client.request(req).get();
          HttpResponse out;
          out.status = resp.status_code();
          for (const auto& [k, v] : resp.headers()) out.headers.emplace_back(k, v);
          std::vector<unsigned char> body = resp.extract_vector().get();
          out.body.assign(body.begin(), body.end());
          return out;
        });
  }

  StatusOr<std::unique_ptr<HttpStream>> OpenStream(const HttpRequest& request) override {
    return WithStaleConnectionRetry<std::unique_ptr<HttpStream>>(
        request, [&](http_client& client, const web::uri& uri) -> StatusOr<std::unique_ptr<HttpStream>> {
          auto cts = std::make_shared<pplx::cancellation_token_source>();
          web::http::http_request req = BuildRequest(request, uri);
          // The task completes once the status line and headers arrived; the
          // body keeps streaming into the response's buffer.
          web::http::http_response resp = client.request(req, cts->get_token()).get();
          return std::unique_ptr<HttpStream>(std::make_unique<CppRestStream>(std::move(resp), std::move(cts)));
        });
  }

 private:
  // Runs `send` with the pooled client for the request's authority and maps
  // cpprestsdk's exceptions to a Status. A transport failure drops the pool
  // (its sibling connections are likely stale too, e.g. after a server
  // restart) and retries once: idempotent requests always, others only when
  // the request was not sent whole.
  template <typename T, typename F>
  StatusOr<T> WithStaleConnectionRetry(const HttpRequest& request, F&& send) {
    web::uri uri;
    try {
      uri = web::uri(utility::conversions::to_string_t(request.url));
    } catch (const std::exception& e) {
      return InvalidArgument("malformed URL: " + std::string(e.what()));
    }
    std::string authority = Authority(uri);
    Status last;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::shared_ptr<http_client> client = ClientFor(uri, authority, request.timeout);
      try {
        return send(*client, uri);
      } catch (const web::http::http_exception& e) {
        std::string what = e.what();
        if (IsTimeout(what, e.error_code().value()))
          return DeadlineExceeded("HTTP " + request.method + " " + authority + ": " + what);
        last = Unavailable("HTTP " + request.method + " " + authority + ": " + what);
        DropClient(client);
        if (!IsIdempotent(request.method) && !NotSent(what)) return last;
      } catch (const std::exception& e) {
        return Unavailable("HTTP " + request.method + " " + authority + ": " + e.what());
      }
    }
    return last;
  }

  static std::string Authority(const web::uri& uri) {
    return uri.scheme() + "://" + uri.host() + ":" + std::to_string(uri.port());
  }

  // Forgets `client` (and its connection pool) if it is still the current
  // one for its key; requests in flight on it finish normally.
  void DropClient(const std::shared_ptr<http_client>& client) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end(); ++it) {
      if (it->second == client) {
        clients_.erase(it);
        return;
      }
    }
  }

  std::shared_ptr<http_client> ClientFor(const web::uri& uri, const std::string& authority,
                                         std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = authority + "#" + std::to_string(timeout.count());
    auto it = clients_.find(key);
    if (it == clients_.end()) {
      http_client_config config;
      // cpprestsdk's timeout is an idle timer reset on every chunk.
      config.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
      const bool https = uri.scheme() == "https";
      if (https) {
        config.set_validate_certificates(!options_.tls.insecure_skip_verify);
        TlsOptions tls = options_.tls;
        // Called for every new connection, before the handshake. Throws
        // (boost::system::system_error) on bad PEM: the request then fails.
        config.set_ssl_context_callback([tls](boost::asio::ssl::context& ctx) {
          if (!tls.ca_pem.empty()) {
            // Trust exactly these CAs, not the system's.
            SSL_CTX_set_cert_store(ctx.native_handle(), X509_STORE_new());
            ctx.add_certificate_authority(boost::asio::buffer(tls.ca_pem.data(), tls.ca_pem.size()));
          }
          if (!tls.client_cert_pem.empty())
            ctx.use_certificate_chain(boost::asio::buffer(tls.client_cert_pem.data(), tls.client_cert_pem.size()));
          if (!tls.client_key_pem.empty())
            ctx.use_private_key(boost::asio::buffer(tls.client_key_pem.data(), tls.client_key_pem.size()),
                                boost::asio::ssl::context::pem);
        });
      }
      const bool no_delay = options_.tcp_no_delay;
      config.set_nativehandle_options([https, no_delay](web::http::client::native_handle h) {
        if (h == nullptr) return;
        boost::asio::ip::tcp::socket* sock;
        if (https)
          sock = &static_cast<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>*>(h)->next_layer();
        else
          sock = static_cast<boost::asio::ip::tcp::socket*>(h);
        // A new connection is not open yet here (cpprestsdk sets TCP_NODELAY
        // itself after connect); a pooled one is.
        if (sock->is_open()) {
          boost::system::error_code ec;
          sock->set_option(boost::asio::ip::tcp::no_delay(no_delay), ec);
        }
      });
      it = clients_.emplace(key, std::make_shared<http_client>(authority, config)).first;
    }
    return it->second;
  }

  TransportOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<http_client>> clients_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeCppRestTransport(const TransportOptions& options) {
  return std::make_unique<CppRestTransport>(options);
}

}  // namespace flowrun
