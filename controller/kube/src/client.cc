// KubeClient over an HttpTransport: verbs, errors, 401/429 handling, watch.
#include "flowrun/kube/client.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <strings.h>

#include <cctype>
#include <iostream>
#include <thread>

#include "internal.h"

namespace flowrun::kube {
namespace {

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

class Query {
 public:
  Query& Add(const std::string& k, const std::string& v) {
    if (v.empty()) return *this;
    s_ += (s_.empty() ? "?" : "&") + k + "=" + UrlEncode(v);
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

// Checks PEM data with OpenSSL so a bad kubeconfig fails at NewKubeClient,
// not with an obscure TLS error on the first request.
Status CheckPem(const std::string& pem, bool is_key, const std::string& what) {
  if (pem.empty()) return Status::Ok();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Internal("BIO_new_mem_buf failed");
  bool ok;
  if (is_key) {
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    ok = k != nullptr;
    EVP_PKEY_free(k);
  } else {
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    ok = x != nullptr;
    X509_free(x);
  }
  BIO_free(bio);
  ERR_clear_error();
  if (!ok) return InvalidArgument(what + " is not valid PEM");
  return Status::Ok();
}

bool Is2xx(int s) { return s >= 200 && s < 300; }

class KubeClientImpl final : public KubeClient {
 public:
  KubeClientImpl(ClusterConfig config, ClientOptions options, std::shared_ptr<HttpTransport> fixed_transport)
      : config_(std::move(config)),
        options_(std::move(options)),
        fixed_transport_(std::move(fixed_transport)),
        clock_(options_.clock ? options_.clock : DefaultClock()),
        creds_(config_, clock_) {
    if (options_.cancel_retries)
      options_.cancel_retries->SetOnCancel([this] {
        std::lock_guard<std::mutex> l(retry_mu_);
        retry_cv_.notify_all();
      });
  }
  ~KubeClientImpl() override {
    if (options_.cancel_retries) options_.cancel_retries->SetOnCancel(nullptr);  // waits for a running Cancel()
  }

  StatusOr<nlohmann::json> Get(const ResourceRef& r, const std::string& ns, const std::string& name) override {
    if (name.empty()) return InvalidArgument("Get " + r.resource + ": empty name");
    return JsonCall("GET", ObjectPath(r, ns, name), "", "");
  }

  StatusOr<ObjectList> List(const ResourceRef& r, const std::string& ns, const ListOptions& o) override {
    Query q;
    q.Add("labelSelector", o.label_selector).Add("fieldSelector", o.field_selector);
    if (o.limit > 0) q.Add("limit", std::to_string(o.limit));
    q.Add("continue", o.continue_token).Add("resourceVersion", o.resource_version);
    nlohmann::json::parser_callback_t filter;
    if (o.drop_managed_fields) {
      // Depths as the parser counts them: 3 = a key of items[i], 4 = a key
      // of the object under it. Skipped values are never built.
      filter = [in_metadata = false](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) mutable {
        if (ev != nlohmann::json::parse_event_t::key) return true;
        if (depth == 3) in_metadata = parsed == "metadata";
        return !(depth == 4 && in_metadata && parsed == "managedFields");
      };
    }
    FLOWRUN_ASSIGN_OR_RETURN(nlohmann::json body, JsonCall("GET", r.CollectionPath(ns) + q.str(), "", "", filter));
    ObjectList out;
    const nlohmann::json& meta = body.contains("metadata") ? body["metadata"] : nlohmann::json::object();
    out.resource_version = meta.value("resourceVersion", "");
    out.continue_token = meta.value("continue", "");
    if (auto it = body.find("items"); it != body.end() && it->is_array()) {
      out.items.reserve(it->size());
      for (auto& item : *it) {
        // List items carry no apiVersion/kind; fill them in for callers.
        if (item.is_object()) {
          if (!item.contains("apiVersion")) item["apiVersion"] = r.ApiVersion();
          if (!item.contains("kind") && !r.kind.empty()) item["kind"] = r.kind;
        }
        out.items.push_back(std::move(item));
      }
    }
    return out;
  }

  StatusOr<ObjectList> ListAll(const ResourceRef& r, const std::string& ns, const ListOptions& o) override {
    ListOptions page = o;
    ObjectList all;
    for (;;) {
      FLOWRUN_ASSIGN_OR_RETURN(ObjectList part, List(r, ns, page));
      for (auto& item : part.items) all.items.push_back(std::move(item));
      all.resource_version = part.resource_version;
      if (part.continue_token.empty()) break;
      page.continue_token = part.continue_token;
      page.resource_version.clear();  // not allowed together with continue
    }
    return all;
  }

  StatusOr<nlohmann::json> Create(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) override {
    return JsonCall("POST", r.CollectionPath(NamespaceFor(r, ns, obj)), obj.dump(), "application/json");
  }

  StatusOr<nlohmann::json> Update(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) override {
    return Put(r, ns, obj, false);
  }

  StatusOr<nlohmann::json> UpdateStatus(const ResourceRef& r, const std::string& ns,
                                        const nlohmann::json& obj) override {
    return Put(r, ns, obj, true);
  }

  StatusOr<nlohmann::json> MergePatch(const ResourceRef& r, const std::string& ns, const std::string& name,
                                      const nlohmann::json& patch, bool status) override {
    if (name.empty()) return InvalidArgument("MergePatch " + r.resource + ": empty name");
    std::string path = ObjectPath(r, NamespaceFor(r, ns, patch), name) + (status ? "/status" : "");
    return JsonCall("PATCH", path, patch.dump(), "application/merge-patch+json");
  }

  StatusOr<nlohmann::json> Apply(const ResourceRef& r, const std::string& ns, const std::string& name,
                                 const nlohmann::json& obj, const std::string& field_manager, bool force,
                                 bool status) override {
    if (name.empty()) return InvalidArgument("Apply " + r.resource + ": empty name");
    if (field_manager.empty()) return InvalidArgument("Apply: a field manager is required");
    nlohmann::json body = obj;
    if (!body.is_object()) return InvalidArgument("Apply: the object must be a JSON object");
    if (!body.contains("apiVersion")) body["apiVersion"] = r.ApiVersion();
    if (!body.contains("kind")) body["kind"] = r.kind;
    body["metadata"]["name"] = name;
    std::string the_ns = NamespaceFor(r, ns, obj);
    if (r.namespaced && !the_ns.empty()) body["metadata"]["namespace"] = the_ns;
    Query q;
    q.Add("fieldManager", field_manager);
    if (force) q.Add("force", "true");
    std::string path = ObjectPath(r, the_ns, name) + (status ? "/status" : "") + q.str();
    // JSON is YAML: the apply-patch+yaml content type takes a JSON body.
    return JsonCall("PATCH", path, body.dump(), "application/apply-patch+yaml");
  }

  Status Delete(const ResourceRef& r, const std::string& ns, const std::string& name,
                const DeleteOptions& o) override {
    if (name.empty()) return InvalidArgument("Delete " + r.resource + ": empty name");
    nlohmann::json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
    if (!o.propagation_policy.empty()) body["propagationPolicy"] = o.propagation_policy;
    if (o.precondition_uid) body["preconditions"]["uid"] = *o.precondition_uid;
    if (o.precondition_resource_version) body["preconditions"]["resourceVersion"] = *o.precondition_resource_version;
    if (o.grace_period_seconds) body["gracePeriodSeconds"] = *o.grace_period_seconds;
    auto res = JsonCall("DELETE", ObjectPath(r, ns, name), body.dump(), "application/json");
    return res.status();
  }

  StatusOr<std::string> Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& o,
                              const std::function<bool(const WatchEvent&)>& on_event,
                              CancelToken* cancel) override {
    if (cancel != nullptr && cancel->cancelled()) return Aborted("watch cancelled");
    Query q;
    q.Add("watch", "1").Add("labelSelector", o.label_selector).Add("fieldSelector", o.field_selector);
    q.Add("resourceVersion", o.resource_version);
    if (o.allow_bookmarks) q.Add("allowWatchBookmarks", "true");
    if (o.timeout.count() > 0) q.Add("timeoutSeconds", std::to_string(o.timeout.count()));
    const std::string path = r.CollectionPath(ns) + q.str();

    std::unique_ptr<HttpStream> stream;
    for (int attempt = 0;; ++attempt) {
      FLOWRUN_ASSIGN_OR_RETURN(internal::AuthState auth, creds_.Current());
      FLOWRUN_ASSIGN_OR_RETURN(std::shared_ptr<HttpTransport> transport, TransportFor(auth));
      HttpRequest req = BuildRequest("GET", path, "", "", auth);
      // The transport's timeout is an idle timer: above the server-side
      // timeout, so a quiet watch is ended by the server, not cut by us.
      req.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout) + std::chrono::seconds(60);
      req.timeout = std::chrono::minutes((req.timeout.count() + 59999) / 60000);  // fewer distinct clients
      auto started = clock_->MonotonicNow();
      auto opened = transport->OpenStream(req);
      Observe("WATCH", opened.ok() ? (*opened)->status() : 0, started);
      if (!opened.ok()) return opened.status().WithContext("watch " + r.resource);
      stream = std::move(opened).value();
      int status = stream->status();
      if (status == 200) break;
      std::string body, line;
      for (;;) {
        auto more = stream->ReadLine(&line, 1 << 20);
        if (!more.ok() || !*more) break;
        body += line + "\n";
        if (body.size() > (1 << 20)) break;
      }
      std::string retry_after;
      for (const auto& [k, v] : stream->headers())
        if (strcasecmp(k.c_str(), "Retry-After") == 0) retry_after = v;
      stream.reset();
      if (status == 401 && attempt == 0 && creds_.Invalidate(auth)) continue;
      return StatusFromResponse(status, body, retry_after).WithContext("watch " + r.resource);
    }

    HttpStream* raw = stream.get();
    struct Unhook {
      CancelToken* c;
      ~Unhook() {
        if (c != nullptr) c->SetOnCancel(nullptr);  // waits for a running Cancel()
      }
    } unhook{cancel};
    if (cancel != nullptr) {
      cancel->SetOnCancel([raw] { raw->Cancel(); });
      if (cancel->cancelled()) raw->Cancel();
    }

    std::string last_rv = o.resource_version;
    std::string line;
    for (;;) {
      auto more = raw->ReadLine(&line, o.max_event_bytes);
      if (cancel != nullptr && cancel->cancelled()) return Aborted("watch cancelled");
      if (!more.ok()) return more.status().WithContext("watch " + r.resource);
      if (!*more) return last_rv;  // the server ended the watch
      if (line.empty()) continue;
      nlohmann::json ev = nlohmann::json::parse(line, nullptr, false);
      if (ev.is_discarded() || !ev.is_object())
        return DataLoss("watch " + r.resource + ": malformed event: " + line.substr(0, 200));
      WatchEvent event;
      event.type = ev.value("type", "");
      auto obj = ev.find("object");
      if (obj != ev.end()) event.object = std::move(*obj);
      if (event.type == "ERROR") return StatusFromWatchError(event.object);
      if (event.object.is_object()) {
        auto meta = event.object.find("metadata");
        if (meta != event.object.end() && meta->is_object()) {
          auto rv = meta->find("resourceVersion");
          if (rv != meta->end() && rv->is_string()) last_rv = rv->get<std::string>();
        }
      }
      if (!on_event(event)) {
        raw->Cancel();
        return last_rv;
      }
    }
  }

  StatusOr<nlohmann::json> Raw(const std::string& method, const std::string& path, const nlohmann::json& body,
                               const std::string& content_type) override {
    std::string b = body.is_null() ? "" : body.dump();
    return JsonCall(method, path, b, b.empty() ? "" : content_type);
  }

  Status Init() {
    if (config_.server.empty()) return InvalidArgument("cluster config has no server");
    if (config_.server.rfind("https://", 0) != 0 && config_.server.rfind("http://", 0) != 0)
      return InvalidArgument("server \"" + config_.server + "\" is not an http(s) URL");
    while (!config_.server.empty() && config_.server.back() == '/') config_.server.pop_back();
    if (fixed_transport_ == nullptr) {
      FLOWRUN_RETURN_IF_ERROR(CheckPem(config_.ca_pem, false, "certificate-authority"));
      FLOWRUN_RETURN_IF_ERROR(CheckPem(config_.client_cert_pem, false, "client-certificate"));
      FLOWRUN_RETURN_IF_ERROR(CheckPem(config_.client_key_pem, true, "client-key"));
      if (config_.insecure_skip_tls_verify)
        std::cerr << "flowrun/kube: WARNING: TLS verification of " << config_.server
                  << " is off (insecure-skip-tls-verify); the connection can be intercepted\n";
    }
    return Status::Ok();
  }

 private:
  std::string NamespaceFor(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj) const {
    if (!r.namespaced) return "";
    if (!ns.empty()) return ns;
    if (obj.is_object()) {
      auto m = obj.find("metadata");
      if (m != obj.end() && m->is_object()) {
        std::string n = m->value("namespace", "");
        if (!n.empty()) return n;
      }
    }
    return config_.namespace_;
  }

  static std::string ObjectPath(const ResourceRef& r, const std::string& ns, const std::string& name) {
    return r.CollectionPath(ns) + "/" + UrlEncode(name);
  }

  StatusOr<nlohmann::json> Put(const ResourceRef& r, const std::string& ns, const nlohmann::json& obj, bool status) {
    std::string name;
    if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object())
      name = obj["metadata"].value("name", "");
    if (name.empty()) return InvalidArgument("Update " + r.resource + ": object has no metadata.name");
    std::string path = ObjectPath(r, NamespaceFor(r, ns, obj), name) + (status ? "/status" : "");
    return JsonCall("PUT", path, obj.dump(), "application/json");
  }

  HttpRequest BuildRequest(const std::string& method, const std::string& path, const std::string& body,
                           const std::string& content_type, const internal::AuthState& auth) const {
    HttpRequest req;
    req.method = method;
    req.url = config_.server + path;
    req.headers.emplace_back("Accept", "application/json");
    req.headers.emplace_back("User-Agent", options_.user_agent);
    if (!auth.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + auth.token);
    if (!content_type.empty()) req.headers.emplace_back("Content-Type", content_type);
    req.body = body;
    req.timeout = options_.request_timeout;
    return req;
  }

  // The transport: fixed, or one per TLS identity (an exec plugin may hand
  // out client certificates that change when it is re-run).
  StatusOr<std::shared_ptr<HttpTransport>> TransportFor(const internal::AuthState& auth) {
    if (fixed_transport_ != nullptr) return fixed_transport_;
    std::lock_guard<std::mutex> lock(transport_mu_);
    std::string cert = auth.client_cert_pem.empty() ? config_.client_cert_pem : auth.client_cert_pem;
    std::string key = auth.client_cert_pem.empty() ? config_.client_key_pem : auth.client_key_pem;
    if (transport_ == nullptr || cert != transport_cert_ || key != transport_key_) {
      if (!auth.client_cert_pem.empty()) {
        FLOWRUN_RETURN_IF_ERROR(CheckPem(cert, false, "exec plugin clientCertificateData"));
        FLOWRUN_RETURN_IF_ERROR(CheckPem(key, true, "exec plugin clientKeyData"));
      }
      TransportOptions t;
      t.tls.ca_pem = config_.ca_pem;
      t.tls.client_cert_pem = cert;
      t.tls.client_key_pem = key;
      t.tls.insecure_skip_verify = config_.insecure_skip_tls_verify;
      t.tcp_no_delay = options_.tcp_no_delay;
      // Requests in flight keep the old transport alive through their shared_ptr.
      std::unique_ptr<HttpTransport> made = MakeCppRestTransport(t);
      if (options_.wrap_transport) made = options_.wrap_transport(std::move(made));
      transport_ = std::shared_ptr<HttpTransport>(std::move(made));
      transport_cert_ = cert;
      transport_key_ = key;
    }
    return transport_;
  }

  void Observe(std::string_view verb, int code, std::chrono::steady_clock::time_point started) const {
    if (options_.observer) options_.observer->ObserveRequest(verb, code, clock_->MonotonicNow() - started);
  }

  // One request with credentials, a refresh-and-retry on 401 and retries on
  // 429 (honouring Retry-After, capped). Returns the response of any status.
  StatusOr<HttpResponse> Call(const std::string& method, const std::string& path, const std::string& body,
                              const std::string& content_type) {
    bool refreshed = false;
    for (int attempt = 1;; ++attempt) {
      FLOWRUN_ASSIGN_OR_RETURN(internal::AuthState auth, creds_.Current());
      FLOWRUN_ASSIGN_OR_RETURN(std::shared_ptr<HttpTransport> transport, TransportFor(auth));
      auto started = clock_->MonotonicNow();
      auto resp = transport->Send(BuildRequest(method, path, body, content_type, auth));
      Observe(method, resp.ok() ? resp->status : 0, started);
      if (!resp.ok()) return resp.status().WithContext(method + " " + path);
      if (resp->status == 401 && !refreshed && creds_.Invalidate(auth)) {
        refreshed = true;
        --attempt;
        continue;
      }
      if (resp->status == 429 && attempt < options_.max_attempts_on_429) {
        Status st = StatusFromResponse(429, resp->body, resp->Header("Retry-After"));
        auto wait = RetryAfterOf(st).value_or(std::chrono::seconds(1));
        if (wait > options_.max_retry_after) wait = options_.max_retry_after;
        if (!WaitBeforeRetry(wait)) return Aborted("cancelled while waiting to retry a 429").WithContext(method + " " + path);
        continue;
      }
      return resp;
    }
  }

  // Waits `d` on the clock; false when cancel_retries fired (before or meanwhile).
  bool WaitBeforeRetry(std::chrono::nanoseconds d) {
    const CancelToken* token = options_.cancel_retries.get();
    std::unique_lock<std::mutex> l(retry_mu_);
    if (token == nullptr) return !clock_->WaitFor(l, retry_cv_, d, [] { return false; });
    return !clock_->WaitFor(l, retry_cv_, d, [token] { return token->cancelled(); });
  }

  // `filter`: nlohmann's parser callback (false drops a value while parsing).
  StatusOr<nlohmann::json> JsonCall(const std::string& method, const std::string& path, const std::string& body,
                                    const std::string& content_type,
                                    const nlohmann::json::parser_callback_t& filter = nullptr) {
    FLOWRUN_ASSIGN_OR_RETURN(HttpResponse resp, Call(method, path, body, content_type));
    if (!Is2xx(resp.status))
      return StatusFromResponse(resp.status, resp.body, resp.Header("Retry-After")).WithContext(method + " " + path);
    if (resp.body.empty()) return nlohmann::json(nullptr);
    nlohmann::json out = nlohmann::json::parse(resp.body, filter, false);
    if (out.is_discarded()) return nlohmann::json(resp.body);  // not JSON (e.g. /healthz): the text
    return out;
  }

  ClusterConfig config_;
  const ClientOptions options_;
  const std::shared_ptr<HttpTransport> fixed_transport_;
  Clock* const clock_;
  internal::Credentials creds_;
  std::mutex retry_mu_;  // with retry_cv_: the 429 waits, woken by cancel_retries
  std::condition_variable retry_cv_;
  std::mutex transport_mu_;
  std::shared_ptr<HttpTransport> transport_;
  std::string transport_cert_, transport_key_;
};

}  // namespace

StatusOr<std::unique_ptr<KubeClient>> NewKubeClient(const ClusterConfig& config, const ClientOptions& options) {
  auto c = std::make_unique<KubeClientImpl>(config, options, nullptr);
  FLOWRUN_RETURN_IF_ERROR(c->Init());
  return std::unique_ptr<KubeClient>(std::move(c));
}

StatusOr<std::unique_ptr<KubeClient>> NewKubeClientWithTransport(const ClusterConfig& config,
                                                                 const ClientOptions& options,
                                                                 std::shared_ptr<HttpTransport> transport) {
  if (transport == nullptr) return InvalidArgument("NewKubeClientWithTransport: null transport");
  auto c = std::make_unique<KubeClientImpl>(config, options, std::move(transport));
  FLOWRUN_RETURN_IF_ERROR(c->Init());
  return std::unique_ptr<KubeClient>(std::move(c));
}

}  // namespace flowrun::kube
