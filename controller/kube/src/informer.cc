#include "flowrun/kube/informer.h"

#include <algorithm>
#include <iostream>
#include <random>
#include <string_view>
#include <unordered_set>

#include "flowrun/json_fields.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flowrun::kube {
namespace {

double DefaultUniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// A copy of a watch event's object without metadata.managedFields (never
// copied, rather than copied and erased).
nlohmann::json CopyWithoutManagedFields(const nlohmann::json& obj) {
  if (!obj.is_object()) return obj;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == "metadata" && it->is_object()) {
      nlohmann::json meta = nlohmann::json::object();
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m.key() != "managedFields") meta[m.key()] = *m;
      out["metadata"] = std::move(meta);
    } else {
      out[it.key()] = *it;
    }
  }
  return out;
}

// The object's MessagePack bytes in a string of exactly that size.
std::string Pack(const nlohmann::json& obj) {
  thread_local std::string buf;
  buf.clear();
  nlohmann::json::to_msgpack(obj, buf);
  std::string out(buf.data(), buf.size());
  if (buf.capacity() > (256u << 10)) std::string().swap(buf);  // do not keep a huge one around
  return out;
}

// Objects listed above which the informer returns freed heap to the kernel
// after applying the list: each page's parsed response briefly takes several
// times what the cache keeps of it, and glibc keeps what the last pages freed.
constexpr size_t kTrimAfterListOf = 1000;

// Lists restarted at once after an expired continue token, before the list
// counts as failed (and is retried after a back-off).
constexpr int kMaxListRestarts = 1;

}  // namespace

std::string ObjectKey(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string ObjectKey(const nlohmann::json& obj) {
  return ObjectKey(JsonString(obj, "metadata", "namespace"), JsonString(obj, "metadata", "name"));
}

IndexFunc IndexByOwnerUid() {
  return [](const nlohmann::json& obj) {
    std::vector<std::string> out;
    auto m = obj.find("metadata");
    if (m == obj.end() || !m->is_object()) return out;
    auto refs = m->find("ownerReferences");
    if (refs == m->end() || !refs->is_array()) return out;
    for (const auto& r : *refs) {
      if (!r.is_object()) continue;
      auto uid = r.find("uid");
      if (uid != r.end() && uid->is_string()) out.push_back(uid->get<std::string>());
    }
    return out;
  };
}

IndexFunc IndexByLabel(const std::string& label) {
  return [label](const nlohmann::json& obj) {
    std::vector<std::string> out;
    auto m = obj.find("metadata");
    if (m == obj.end() || !m->is_object()) return out;
    auto labels = m->find("labels");
    if (labels == m->end() || !labels->is_object()) return out;
    auto v = labels->find(label);
    if (v != labels->end() && v->is_string()) out.push_back(v->get<std::string>());
    return out;
  };
}

IndexFunc IndexByNamespace() {
  return [](const nlohmann::json& obj) {
    std::string ns = JsonString(obj, "metadata", "namespace");
    return ns.empty() ? std::vector<std::string>{} : std::vector<std::string>{ns};
  };
}

Informer::Informer(KubeClient* client, InformerOptions options)
    : client_(client), opts_(std::move(options)), clock_(opts_.clock ? opts_.clock : DefaultClock()) {
  if (opts_.name.empty()) opts_.name = opts_.resource.resource;
  if (opts_.max_watch_timeout <= opts_.min_watch_timeout)
    opts_.max_watch_timeout = opts_.min_watch_timeout + std::chrono::seconds(1);
}

Informer::~Informer() { Stop(); }

void Informer::AddIndex(const std::string& name, IndexFunc f) {
  std::unique_lock<std::shared_mutex> l(cache_mu_);
  index_funcs_[name] = std::move(f);
  // Refile everything (before Start() the cache is empty, so this is cheap).
  for (auto& [n, idx] : indices_) idx.clear();
  for (auto& [key, e] : items_) {
    ObjectPtr obj = Materialize(e);
    e.index = IndexValues(*obj);
    IndexLocked(key, e.index, true);
  }
}

void Informer::AddEventHandler(InformerHandlers h) { handlers_.push_back(std::move(h)); }

void Informer::Start() {
  if (started_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
  }
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  cancel_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::HasSynced() const {
  std::lock_guard<std::mutex> l(mu_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, timeout, [&] { return synced_ || stopped_; });
  return synced_;
}

ObjectPtr Informer::Get(const std::string& key) const {
  std::shared_lock<std::shared_mutex> l(cache_mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : Materialize(it->second);
}

ObjectPtr Informer::Get(const std::string& ns, const std::string& name) const { return Get(ObjectKey(ns, name)); }

std::vector<ObjectPtr> Informer::List() const {
  std::shared_lock<std::shared_mutex> l(cache_mu_);
  std::vector<ObjectPtr> out;
  out.reserve(items_.size());
  for (const auto& [k, e] : items_) out.push_back(Materialize(e));
  return out;
}

std::vector<std::string> Informer::Keys() const {
  std::shared_lock<std::shared_mutex> l(cache_mu_);
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, e] : items_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

size_t Informer::Size() const {
  std::shared_lock<std::shared_mutex> l(cache_mu_);
  return items_.size();
}

std::vector<ObjectPtr> Informer::ByIndex(const std::string& index, const std::string& value) const {
  std::shared_lock<std::shared_mutex> l(cache_mu_);
  std::vector<ObjectPtr> out;
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const auto& k : keys->second) {
    auto it = items_.find(k);
    if (it != items_.end()) out.push_back(Materialize(it->second));
  }
  return out;
}

InformerStats Informer::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void Informer::Prepare(nlohmann::json& obj) const {
  auto m = obj.find("metadata");
  if (m != obj.end() && m->is_object()) {
    auto mf = m->find("managedFields");
    if (mf != m->end() && opts_.keep_managed_field && mf->is_array()) {
      nlohmann::json kept = nlohmann::json::array();
      for (auto& e : *mf)
        if (opts_.keep_managed_field(e)) kept.push_back(std::move(e));
      if (kept.empty())
        m->erase(mf);
      else
        *mf = std::move(kept);
    } else if (mf != m->end()) {
      m->erase(mf);
    }
  }
  if (opts_.transform) opts_.transform(obj);
}

ObjectPtr Informer::Materialize(const Entry& e) const {
  {
    std::lock_guard<std::mutex> l(memo_mu_);
    if (ObjectPtr p = e.live.lock()) return p;
  }
  // Decoded outside memo_mu_; `packed` does not change while cache_mu_ is held.
  auto decoded = nlohmann::json::from_msgpack(e.packed, true, /*allow_exceptions=*/false);
  if (decoded.is_discarded()) decoded = nlohmann::json::object();  // cannot happen: we encoded it
  auto fresh = std::make_shared<const nlohmann::json>(std::move(decoded));
  std::lock_guard<std::mutex> l(memo_mu_);
  if (ObjectPtr p = e.live.lock()) return p;  // another reader was quicker: share its snapshot
  e.live = fresh;
  return fresh;
}

std::vector<std::vector<std::string>> Informer::IndexValues(const nlohmann::json& obj) const {
  std::vector<std::vector<std::string>> out;
  if (index_funcs_.empty()) return out;
  out.reserve(index_funcs_.size());
  for (const auto& [name, f] : index_funcs_) out.push_back(f(obj));
  return out;
}

void Informer::IndexLocked(const std::string& key, const std::vector<std::vector<std::string>>& values, bool add) {
  size_t i = 0;
  for (const auto& [name, f] : index_funcs_) {
    if (i >= values.size()) break;
    auto& idx = indices_[name];
    for (const auto& v : values[i++]) {
      if (add) {
        idx[v].insert(key);
      } else {
        auto it = idx.find(v);
        if (it == idx.end()) continue;
        it->second.erase(key);
        if (it->second.empty()) idx.erase(it);
      }
    }
  }
}

void Informer::Upsert(nlohmann::json prepared, std::string packed) {
  std::string key = ObjectKey(prepared);
  Entry e;
  e.packed = packed.empty() ? Pack(prepared) : std::move(packed);
  e.index = IndexValues(prepared);
  // The snapshot the handlers get; the cache remembers it while they hold it.
  ObjectPtr obj = std::make_shared<const nlohmann::json>(std::move(prepared));
  e.live = obj;
  Entry prev;
  bool existed = false;
  {
    std::unique_lock<std::shared_mutex> l(cache_mu_);
    auto it = items_.find(key);
    if (it != items_.end()) {
      existed = true;
      IndexLocked(key, it->second.index, false);
      prev = std::move(it->second);
      it->second = std::move(e);
      IndexLocked(key, it->second.index, true);
    } else {
      auto ins = items_.emplace(std::move(key), std::move(e)).first;
      IndexLocked(ins->first, ins->second.index, true);
    }
  }
  ObjectPtr old;
  for (const auto& h : handlers_) {
    if (existed) {
      if (!h.on_update) continue;
      if (!old) old = Materialize(prev);  // `prev` is ours alone now
      h.on_update(old, obj);
    } else if (h.on_add) {
      h.on_add(obj);
    }
  }
}

void Informer::Remove(const std::string& key, const ObjectPtr& last_known, bool final_state_unknown) {
  Entry cached;
  {
    std::unique_lock<std::shared_mutex> l(cache_mu_);
    auto it = items_.find(key);
    if (it == items_.end()) return;  // never seen: nothing to tell (like client-go's DeltaFIFO)
    IndexLocked(key, it->second.index, false);
    cached = std::move(it->second);
    items_.erase(it);
  }
  ObjectPtr shown = last_known;
  for (const auto& h : handlers_) {
    if (!h.on_delete) continue;
    if (!shown) shown = Materialize(cached);
    h.on_delete(shown, final_state_unknown);
  }
}

void Informer::ApplyPage(std::vector<nlohmann::json> items, std::unordered_set<std::string>* seen) {
  // Two passes, so the cache does not end up scattered over the page's
  // memory. The parsed page (a parsed tree is ~6-8x its JSON; the cache keeps
  // ~0.9x) is all alive at once; cache entries allocated while it is being
  // freed would land in its holes and keep those pages resident. So first
  // pack every object of the page into one contiguous buffer, freeing each
  // parsed tree as it is packed; then, with the page gone, build the entries
  // from the buffer (dense allocations) and run the handlers. The next page
  // is parsed into the memory this one freed.
  std::string packed;
  std::vector<size_t> ends;  // end offset of each object in `packed`
  ends.reserve(items.size());
  for (auto& item : items) {
    Prepare(item);
    nlohmann::json::to_msgpack(item, packed);
    ends.push_back(packed.size());
    item = nlohmann::json();
  }
  std::vector<nlohmann::json>().swap(items);
  size_t off = 0;
  for (size_t end : ends) {
    std::string_view bytes(packed.data() + off, end - off);
    off = end;
    auto obj = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, /*allow_exceptions=*/false);
    if (obj.is_discarded()) continue;  // cannot happen: packed above
    seen->insert(ObjectKey(obj));
    Upsert(std::move(obj), std::string(bytes));
  }
}

void Informer::FinishList(const std::unordered_set<std::string>& seen, const std::string& rv) {
  std::vector<std::string> gone;
  {
    std::shared_lock<std::shared_mutex> l(cache_mu_);
    for (const auto& [k, v] : items_)
      if (!seen.count(k)) gone.push_back(k);
  }
  for (const auto& k : gone) Remove(k, nullptr, true);
#if defined(__GLIBC__)
  if (seen.size() >= kTrimAfterListOf) malloc_trim(0);  // return the pages' memory now
#else
  (void)kTrimAfterListOf;
#endif
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.lists;
  stats_.synthesized_deletes += gone.size();
  stats_.last_resource_version = rv;
  if (!synced_) {
    synced_ = true;
    cv_.notify_all();
  }
}

Status Informer::ListAndApply(std::string* rv) {
  ListOptions lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  lo.limit = opts_.page_size;
  lo.drop_managed_fields = !opts_.keep_managed_field;  // never cached: not even parsed
  std::unordered_set<std::string> seen;  // keys of this list, across its pages
  int restarts = 0;
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopped_) return Aborted("informer stopped");
    }
    auto page = client_->List(opts_.resource, opts_.ns, lo);
    if (!page.ok()) {
      // A continue token names a snapshot; once etcd compacted past it (a
      // list slower than the compaction interval, 5 min by default) the
      // apiserver answers 410 Expired. Start over from a fresh snapshot: the
      // pages applied so far stay cached (they are no older than what the
      // cache held), and the deletes are decided by the new, complete list.
      // Twice in a row is an error (backed off by Run) rather than a spin.
      if (IsGone(page.status()) && !lo.continue_token.empty() && restarts < kMaxListRestarts) {
        ++restarts;
        {
          std::lock_guard<std::mutex> l(mu_);
          ++stats_.list_restarts;
          stats_.last_error = page.status().ToString();
        }
        seen.clear();
        lo.continue_token.clear();
        continue;
      }
      return page.status();
    }
    *rv = page->resource_version;  // every page of one list has the snapshot's
    std::string next = std::move(page->continue_token);
    ApplyPage(std::move(page->items), &seen);
    if (next.empty()) break;
    lo.continue_token = std::move(next);
  }
  FinishList(seen, *rv);
  return Status::Ok();
}

void Informer::ApplyEvent(const WatchEvent& ev) {
  if (ev.type == "BOOKMARK") {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.bookmarks;
    stats_.last_resource_version = JsonString(ev.object, "metadata", "resourceVersion");
    return;
  }
  if (!ev.object.is_object()) return;
  if (ev.type == "ADDED" || ev.type == "MODIFIED") {
    nlohmann::json obj = opts_.keep_managed_field ? ev.object : CopyWithoutManagedFields(ev.object);
    Prepare(obj);
    Upsert(std::move(obj));
  } else if (ev.type == "DELETED") {
    nlohmann::json obj = CopyWithoutManagedFields(ev.object);
    Prepare(obj);
    std::string key = ObjectKey(obj);
    Remove(key, std::make_shared<const nlohmann::json>(std::move(obj)), false);
  } else {
    return;  // unknown type: ignore
  }
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.events;
  std::string rv = JsonString(ev.object, "metadata", "resourceVersion");
  if (!rv.empty()) stats_.last_resource_version = rv;
}

bool Informer::SleepUnlessStopped(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return !clock_->WaitFor(l, cv_, d, [&] { return stopped_; });
}

double Informer::Random01() {
  double r = opts_.random ? opts_.random() : DefaultUniform01();
  return r >= 0.0 && r < 1.0 ? r : 0.0;
}

void Informer::Run() {
  using Kind = ListWatchStep::Kind;
  const ListWatchBackoff backoff{opts_.backoff_initial, opts_.backoff_max};
  ListWatchState state;
  ListWatchResult result;  // kStarted
  auto stopped = [&] {
    std::lock_guard<std::mutex> l(mu_);
    return stopped_;
  };
  auto note_error = [&](const Status& s, uint64_t InformerStats::*counter) {
    std::lock_guard<std::mutex> l(mu_);
    ++(stats_.*counter);
    stats_.last_error = s.ToString();
  };
  while (!stopped()) {
    ListWatchStep step = NextStep(state, result, backoff, Random01());
    result = ListWatchResult{};
    if (step.kind == Kind::kBackoff) {
      if (step.short_watch) note_error(Unavailable("very short watch"), &InformerStats::watch_errors);
      if (!SleepUnlessStopped(step.delay)) return;
      result.kind = ListWatchResult::Kind::kSlept;
      continue;
    }
    if (step.kind == Kind::kList) {
      std::string rv;
      Status listed = ListAndApply(&rv);
      if (stopped()) return;
      if (!listed.ok()) {
        note_error(listed, &InformerStats::list_errors);
        result.kind = ListWatchResult::Kind::kListFailed;
        result.status = listed;
      } else {
        result.kind = ListWatchResult::Kind::kListed;
        result.resource_version = rv;
      }
      continue;
    }

    WatchOptions wo;
    wo.label_selector = opts_.label_selector;
    wo.field_selector = opts_.field_selector;
    wo.resource_version = step.resource_version;
    wo.allow_bookmarks = true;
    auto span = (opts_.max_watch_timeout - opts_.min_watch_timeout).count();
    wo.timeout = opts_.min_watch_timeout +
                 std::chrono::seconds(static_cast<int64_t>(Random01() * static_cast<double>(span)));
    {
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.watches;
    }
    uint64_t n_events = 0;
    std::string last_rv;
    auto started = clock_->MonotonicNow();
    auto res = client_->Watch(
        opts_.resource, opts_.ns, wo,
        [&](const WatchEvent& ev) {
          if (cancel_.cancelled()) return false;
          ++n_events;
          ApplyEvent(ev);
          std::string ev_rv = JsonString(ev.object, "metadata", "resourceVersion");
          if (!ev_rv.empty()) last_rv = ev_rv;
          return true;
        },
        &cancel_);
    if (cancel_.cancelled() || stopped()) return;
    result.events = n_events;
    result.resource_version = last_rv;
    if (res.ok()) {
      if (!res->empty()) result.resource_version = *res;
      result.kind = ListWatchResult::Kind::kWatchEnded;
      result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->MonotonicNow() - started);
      continue;
    }
    result.kind = ListWatchResult::Kind::kWatchFailed;
    result.status = res.status();
    if (IsGone(res.status())) {
      // The resume point expired: NextStep relists at once (a fresh, consistent read).
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.gone;
      stats_.last_error = res.status().ToString();
    } else {
      note_error(res.status(), &InformerStats::watch_errors);
    }
  }
}

}  // namespace flowrun::kube
