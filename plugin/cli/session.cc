#include "session.h"

#include <cctype>
#include <cstdio>
#include <mutex>
#include <utility>

namespace flowrun::plugin {

// What the session's transports share: the Accept override of the next
// request and the last response (GetBytes reads a body the client's JSON
// calls would not keep).
struct TapState {
  void SetAccept(std::string a) {
    std::lock_guard<std::mutex> l(mu_);
    accept_ = std::move(a);
  }
  std::string Accept() {
    std::lock_guard<std::mutex> l(mu_);
    return accept_;
  }
  void Record(const HttpResponse& r) {
    std::lock_guard<std::mutex> l(mu_);
    last_ = r;
  }
  HttpResponse TakeLast() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(last_, {});
  }

 private:
  std::mutex mu_;
  std::string accept_;
  HttpResponse last_;
};

// Forwards to the client's transport (one per TLS identity: an exec plugin's
// client certificate may change), applying and recording through TapState.
class TapTransport : public HttpTransport {
 public:
  TapTransport(std::unique_ptr<HttpTransport> inner, std::shared_ptr<TapState> state)
      : inner_(std::move(inner)), state_(std::move(state)) {}

  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    HttpRequest r = request;
    if (std::string accept = state_->Accept(); !accept.empty())
      for (auto& h : r.headers)
        if (h.first == "Accept") h.second = accept;
    auto resp = inner_->Send(r);
    if (resp.ok()) state_->Record(*resp);
    return resp;
  }
  StatusOr<std::unique_ptr<HttpStream>> OpenStream(const HttpRequest& request) override {
    return inner_->OpenStream(request);
  }

 private:
  std::unique_ptr<HttpTransport> inner_;
  std::shared_ptr<TapState> state_;
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
  // The client makes its transports (TLS from the kubeconfig, or from an
  // exec plugin's client certificate) and warns when TLS verification is off;
  // each is wrapped in the tap.
  s->tap_ = std::make_shared<TapState>();
  kube::ClientOptions co;
  co.user_agent = "kubectl-flowrun";
  co.wrap_transport = [state = s->tap_](std::unique_ptr<HttpTransport> inner) -> std::unique_ptr<HttpTransport> {
    return std::make_unique<TapTransport>(std::move(inner), state);
  };
  FLOWRUN_ASSIGN_OR_RETURN(s->client_, kube::NewKubeClient(cfg, co));
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
