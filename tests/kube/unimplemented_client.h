// UnimplementedClient: a KubeClient whose every verb returns kUnimplemented.
// Test doubles derive from it and override only the verbs their test drives,
// so an unexpected call fails loudly instead of silently succeeding.
#pragma once

#include "flowrun/kube/client.h"

namespace flowrun::kube::testing {

class UnimplementedClient : public KubeClient {
 public:
  StatusOr<nlohmann::json> Get(const ResourceRef&, const std::string&, const std::string&) override {
    return Fake();
  }
  StatusOr<ObjectList> List(const ResourceRef&, const std::string&, const ListOptions&) override { return Fake(); }
  StatusOr<ObjectList> ListAll(const ResourceRef&, const std::string&, const ListOptions&) override { return Fake(); }
  StatusOr<nlohmann::json> Create(const ResourceRef&, const std::string&, const nlohmann::json&) override {
    return Fake();
  }
  StatusOr<nlohmann::json> Update(const ResourceRef&, const std::string&, const nlohmann::json&) override {
    return Fake();
  }
  StatusOr<nlohmann::json> UpdateStatus(const ResourceRef&, const std::string&, const nlohmann::json&) override {
    return Fake();
  }
  StatusOr<nlohmann::json> MergePatch(const ResourceRef&, const std::string&, const std::string&,
                                      const nlohmann::json&, bool) override {
    return Fake();
  }
  StatusOr<nlohmann::json> Apply(const ResourceRef&, const std::string&, const std::string&, const nlohmann::json&,
                                 const std::string&, bool, bool) override {
    return Fake();
  }
  Status Delete(const ResourceRef&, const std::string&, const std::string&, const DeleteOptions&) override {
    return Fake();
  }
  StatusOr<std::string> Watch(const ResourceRef&, const std::string&, const WatchOptions&,
                              const std::function<bool(const WatchEvent&)>&, CancelToken*) override {
    return Fake();
  }
  StatusOr<nlohmann::json> Raw(const std::string&, const std::string&, const nlohmann::json&,
                               const std::string&) override {
    return Fake();
  }

 private:
  static Status Fake() { return Unimplemented("not implemented by this test double"); }
};

}  // namespace flowrun::kube::testing
