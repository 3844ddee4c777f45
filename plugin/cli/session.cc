#include "session.h"

#include <cctype>
#include <cstdio>
#include <mutex>

namespace flowrun::plugin {

// Forwards to the real transport; remembers the last response and can
// override the Accept header of the next request.
class TapTransport : public HttpTransport {
 public:
  explicit TapTransport(std::unique_ptr<HttpTransport> inner) : inner_(std::move(inner)) {}

  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    HttpRequest r = request;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!accept_.empty())
        for (auto& h : r.headers)
          if (h.first == "Accept") h.second = accept_;
    }
    auto resp = inner_->Send(r);
    std::lock_guard<std::mutex> l(mu_);
    if (resp.ok()) last_ = *resp;
    return resp;
  }
  StatusOr<std::unique_ptr<HttpStream>> OpenStream(const HttpRequest& request) override {
    return inner_->OpenStream(request);
  }

  void SetAccept(std::string a) {
    std::lock_guard<std::mutex> l(mu_);
    accept_ = std::move(a);
  }
  HttpResponse TakeLast() {
    std::lock_guard<std::mutex> l(mu_);
    HttpResponse r = std::move(last_);
    last_ = {};
    return r;
  }

 private:
  std::unique_ptr<HttpTransport> inner_;
  std::mutex mu_;
  std::string accept_;
  HttpResponse last_;
};

Session::~Session() {
  client_.reset();  // before the transport (cpprestsdk must be torn down before exit)
  tap_.reset();
}

StatusOr<std::unique_ptr<Session>> Session::Open(const SessionOptions& o) {
  FLOWRUN_ASSIGN_OR_RETURN(kube::ClusterConfig cfg, kube::LoadKubeconfig(o.kubeconfig, o.context));
  std::unique_ptr<Session> s(new Session());
  s->config_ = cfg;
  s->ns_ = o.ns.empty() ? cfg.namespace_ : o.ns;
  if (s->ns_.empty()) s->ns_ = "default";
  TransportOptions t;
  t.tls.ca_pem = cfg.ca_pem;
  t.tls.client_cert_pem = cfg.client_cert_pem;
  t.tls.client_key_pem = cfg.client_key_pem;
  t.tls.insecure_skip_verify = cfg.insecure_skip_tls_verify;
  if (cfg.insecure_skip_tls_verify)
    std::fprintf(stderr, "kubectl-flowrun: WARNING: TLS verification of %s is off (insecure-skip-tls-verify)\n",
                 cfg.server.c_str());
  s->tap_ = std::make_shared<TapTransport>(MakeCppRestTransport(t));
  kube::ClientOptions co;
  co.user_agent = "kubectl-flowrun";
  FLOWRUN_ASSIGN_OR_RETURN(s->client_, kube::NewKubeClientWithTransport(cfg, co, s->tap_));
  return s;
}

StatusOr<HttpResponse> Session::GetBytes(const std::string& path, const std::string& accept) {
  tap_->SetAccept(accept);
  auto r = client_->Raw("GET", path);
  tap_->SetAccept("");
  HttpResponse last = tap_->TakeLast();
  if (!r.ok()) return r.status();
  return last;
}

std::string Session::QueryPath(const std::string& run, const std::string& sub) const {
  return "/apis/query.flowrun.dev/v1alpha1/namespaces/" + UrlEscape(ns_) + "/flowruns/" + UrlEscape(run) + "/" + sub;
}

std::string UrlEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace flowrun::plugin
