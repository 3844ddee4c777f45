#include "flowrun/query/tls_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <pthread.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "flowrun/query/tcp_listener.h"

#include <cctype>
#include <cerrno>
#include <cstring>

namespace flowrun::query {

namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

int64_t MTime(const std::string& f) {
  struct stat st{};
  if (stat(f.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Ex-data slot of an SSL: set when any certificate of the client's chain
// failed verification (the verify callback accepts the handshake anyway, so
// an unauthenticated client still gets a 401 body rather than a TLS alert).
int FailedIndex() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* x) {
  if (!preverify_ok) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl) SSL_set_ex_data(ssl, FailedIndex(), reinterpret_cast<void*>(1));
  }
  return 1;
}

const char* Reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

bool WriteAll(SSL* ssl, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    int n = SSL_write(ssl, data.data() + off, static_cast<int>(std::min<size_t>(data.size() - off, 1 << 20)));
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string Head(int code, const std::string& content_type, size_t length,
                 const std::vector<std::pair<std::string, std::string>>& headers, bool close) {
  std::string h = "HTTP/1.1 " + std::to_string(code) + " " + Reason(code) + "\r\n";
  h += "Content-Type: " + content_type + "\r\n";
  h += "Content-Length: " + std::to_string(length) + "\r\n";
  h += "Cache-Control: no-store\r\n";
  for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
  h += close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
  return h;
}

}  // namespace

struct TlsServer::Context {
  SSL_CTX* ctx = nullptr;
  int64_t cert_mtime = 0, key_mtime = 0;
  std::string client_ca;
  ~Context() {
    if (ctx) SSL_CTX_free(ctx);
  }
};

TlsServer::TlsServer(TlsServerOptions options) : o_(std::move(options)) {}
TlsServer::~TlsServer() { Stop(); }

StatusOr<std::shared_ptr<TlsServer::Context>> TlsServer::Load() {
  auto c = std::make_shared<Context>();
  c->cert_mtime = MTime(o_.cert_file);
  c->key_mtime = MTime(o_.key_file);
  c->client_ca = o_.client_ca_pem ? o_.client_ca_pem() : std::string();
  c->ctx = SSL_CTX_new(TLS_server_method());
  if (!c->ctx) return Internal("SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(c->ctx, o_.cert_file.c_str()) != 1)
    return InvalidArgument("serving certificate " + o_.cert_file + ": " + OpenSslError());
  if (SSL_CTX_use_PrivateKey_file(c->ctx, o_.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return InvalidArgument("serving key " + o_.key_file + ": " + OpenSslError());
  if (SSL_CTX_check_private_key(c->ctx) != 1)
    return InvalidArgument("serving key " + o_.key_file + " does not match " + o_.cert_file);
  if (!c->client_ca.empty()) {
    BIO* bio = BIO_new_mem_buf(c->client_ca.data(), static_cast<int>(c->client_ca.size()));
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    int count = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(cert)));
      X509_free(cert);
      ++count;
    }
    ERR_clear_error();  // the loop ends with a "no start line" error
    BIO_free(bio);
    if (count == 0) {
      X509_STORE_free(store);
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      return InvalidArgument("the requestheader client CA holds no PEM certificate");
    }
    SSL_CTX_set_cert_store(c->ctx, store);  // owns it now
    SSL_CTX_set_client_CA_list(c->ctx, names);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, VerifyCallback);
    SSL_CTX_set_verify_depth(c->ctx, 5);
  } else {
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, nullptr);
  }
  return c;
}

Status TlsServer::Start() {
  auto ctx = Load();
  if (!ctx.ok()) return ctx.status();
  ctx_ = *ctx;
  auto l = ListenTcp(o_.addr, "--query-addr", 64);
  if (!l.ok()) return l.status();
  listen_fd_ = l->fd;
  port_ = l->port;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  reload_thread_ = std::thread([this] { ReloadLoop(); });
  return Status();
}

void TlsServer::Stop() {
  if (listen_fd_ < 0) return;
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> l(mu_);
    cv_.notify_all();
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (reload_thread_.joinable()) reload_thread_.join();
  std::unique_lock<std::mutex> l(mu_);
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  cv_.wait(l, [&] { return active_ == 0; });
  l.unlock();
  close(listen_fd_);
  listen_fd_ = -1;
}

void TlsServer::ReloadLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (cv_.wait_for(l, o_.reload_interval, [&] { return stop_.load(); })) return;
    }
    std::shared_ptr<Context> cur;
    {
      std::lock_guard<std::mutex> l(mu_);
      cur = ctx_;
    }
    const std::string ca = o_.client_ca_pem ? o_.client_ca_pem() : std::string();
    if (cur && MTime(o_.cert_file) == cur->cert_mtime && MTime(o_.key_file) == cur->key_mtime && ca == cur->client_ca)
      continue;
    auto next = Load();
    if (!next.ok()) {
      if (o_.on_warning) o_.on_warning("read API: reloading TLS settings failed; keeping the old ones: " +
                                       next.status().ToString());
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    ctx_ = *next;
  }
}

void TlsServer::AcceptLoop() {
  while (!stop_.load()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stop_.load()) return;
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (active_ >= o_.max_connections || stop_.load()) {
      close(fd);
      continue;
    }
    ++active_;
    open_fds_.insert(fd);
    std::thread([this, fd] {
      Serve(fd);
      std::lock_guard<std::mutex> l(mu_);
      open_fds_.erase(fd);
      close(fd);
      --active_;
      cv_.notify_all();
    }).detach();
  }
}

void TlsServer::Serve(int fd) {
  // A peer that closes early makes SSL_write raise SIGPIPE, which would end
  // the process: blocked in this thread, the write fails with EPIPE instead
  // (the pending signal is discarded when the thread exits).
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  timeval tv{static_cast<time_t>(o_.idle_timeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::shared_ptr<Context> ctx;
  {
    std::lock_guard<std::mutex> l(mu_);
    ctx = ctx_;
  }
  SSL* ssl = SSL_new(ctx->ctx);
  if (!ssl) return;
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    ERR_clear_error();
    SSL_free(ssl);
    return;
  }
  std::optional<std::string> cn;
  if (X509* peer = SSL_get1_peer_certificate(ssl)) {
    if (!ctx->client_ca.empty() && SSL_get_ex_data(ssl, FailedIndex()) == nullptr &&
        SSL_get_verify_result(ssl) == X509_V_OK) {
      char buf[512] = {0};
      int n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
      cn = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    }
    X509_free(peer);
  }

  std::string buf;
  char chunk[16384];
  bool keep = true;
  while (keep && !stop_.load()) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > o_.max_header_bytes) {
        const std::string body = "request head too large\n";
        (void)WriteAll(ssl, Head(431, "text/plain", body.size(), {}, true) + body);
        keep = false;
        break;
      }
      int n = SSL_read(ssl, chunk, sizeof chunk);
      if (n <= 0) {
        keep = false;
        break;
      }
      buf.append(chunk, static_cast<size_t>(n));
    }
    if (!keep) break;
    if (end > o_.max_header_bytes) {
      const std::string body = "request head too large\n";
      (void)WriteAll(ssl, Head(431, "text/plain", body.size(), {}, true) + body);
      break;
    }
    const std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);

    HttpRequest req;
    size_t line_end = head.find("\r\n");
    std::string line = head.substr(0, line_end);
    size_t s1 = line.find(' '), s2 = line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) {
      const std::string body = "malformed request line\n";
      (void)WriteAll(ssl, Head(400, "text/plain", body.size(), {}, true) + body);
      break;
    }
    req.method = line.substr(0, s1);
    const std::string target = line.substr(s1 + 1, s2 - s1 - 1);
    const std::string version = line.substr(s2 + 1);
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    bool bad = q != std::string::npos && !ParseQuery(target.substr(q + 1), &req.query);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string h = head.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      req.headers.emplace(Lower(Trim(h.substr(0, colon))), Trim(h.substr(colon + 1)));
    }
    const std::string connection = Lower(req.Header("connection"));
    keep = version == "HTTP/1.1" ? connection != "close" : connection == "keep-alive";
    if (!req.Header("transfer-encoding").empty()) {
      const std::string body = "request bodies are not accepted\n";
      (void)WriteAll(ssl, Head(400, "text/plain", body.size(), {}, true) + body);
      break;
    }
    const std::string cl = req.Header("content-length");
    if (!cl.empty()) {
      unsigned long long want = std::strtoull(cl.c_str(), nullptr, 10);
      if (want > (1u << 20)) {
        const std::string body = "request body too large\n";
        (void)WriteAll(ssl, Head(413, "text/plain", body.size(), {}, true) + body);
        break;
      }
      while (buf.size() < want) {
        int n = SSL_read(ssl, chunk, sizeof chunk);
        if (n <= 0) {
          keep = false;
          break;
        }
        buf.append(chunk, static_cast<size_t>(n));
      }
      if (buf.size() < want) break;
      buf.erase(0, want);  // GET bodies are ignored
    }
    HttpResponse resp;
    if (bad) {
      resp.code = 400;
      resp.content_type = "text/plain";
      resp.body = "malformed query string\n";
    } else {
      resp = o_.handler(req, cn);
    }
    const bool head_only = req.method == "HEAD";
    std::string out = Head(resp.code, resp.content_type, resp.body.size(), resp.headers, !keep);
    if (!head_only) out += resp.body;
    if (!WriteAll(ssl, out)) break;
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  ERR_clear_error();
}

}  // namespace flowrun::query
