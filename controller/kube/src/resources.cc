// ResourceRef paths and the resources flowrun uses.
#include "flowrun/kube/client.h"

namespace flowrun::kube {

std::string ResourceRef::CollectionPath(const std::string& ns) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  return p + "/" + resource;
}

namespace resources {
ResourceRef Pods() { return {"", "v1", "pods", true, "Pod"}; }
ResourceRef Jobs() { return {"batch", "v1", "jobs", true, "Job"}; }
ResourceRef Leases() { return {"coordination.k8s.io", "v1", "leases", true, "Lease"}; }
// Core v1 events (the same objects events.k8s.io/v1 serves); `kubectl describe` shows them.
ResourceRef Events() { return {"", "v1", "events", true, "Event"}; }
ResourceRef Namespaces() { return {"", "v1", "namespaces", false, "Namespace"}; }
ResourceRef ConfigMaps() { return {"", "v1", "configmaps", true, "ConfigMap"}; }
ResourceRef Secrets() { return {"", "v1", "secrets", true, "Secret"}; }
ResourceRef ServiceAccounts() { return {"", "v1", "serviceaccounts", true, "ServiceAccount"}; }
ResourceRef Nodes() { return {"", "v1", "nodes", false, "Node"}; }
ResourceRef CustomResourceDefinitions() {
  return {"apiextensions.k8s.io", "v1", "customresourcedefinitions", false, "CustomResourceDefinition"};
}
ResourceRef FlowRuns() { return {"flowrun.dev", "v1alpha1", "flowruns", true, "FlowRun"}; }
}  // namespace resources

}  // namespace flowrun::kube
