// Journal: an informer's handler calls recorded as strings, shared by the
// informer's unit and cluster tests.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "flowrun/kube/informer.h"

namespace flowrun::kube::testing {

// Handler calls as strings: "add ns/a", "update ns/a", "delete ns/a", "delete? ns/a" (synthesized).
class Journal {
 public:
  InformerHandlers Handlers() {
    InformerHandlers h;
    h.on_add = [this](const ObjectPtr& o) { Push("add " + ObjectKey(*o)); };
    h.on_update = [this](const ObjectPtr&, const ObjectPtr& n) { Push("update " + ObjectKey(*n)); };
    h.on_delete = [this](const ObjectPtr& o, bool unknown) { Push((unknown ? "delete? " : "delete ") + ObjectKey(*o)); };
    return h;
  }
  bool Has(const std::string& e) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& x : log_)
      if (x == e) return true;
    return false;
  }
  int Count(const std::string& e) const {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (const auto& x : log_) n += x == e;
    return n;
  }
  std::string Dump() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string s;
    for (const auto& x : log_) s += x + "\n";
    return s;
  }

 private:
  void Push(std::string e) {
    std::lock_guard<std::mutex> l(mu_);
    log_.push_back(std::move(e));
  }
  mutable std::mutex mu_;
  std::vector<std::string> log_;
};

}  // namespace flowrun::kube::testing
