// The read API on the plugin's test cluster, shared by the suites that drive
// kubectl-flowrun's read-API commands (plugin_read_api_test,
// plugin_replay_test): call SetUpReadApi from SetUpTestSuite, after setting
// FLOWRUN_AGGREGATION=1 before the world starts (SetAggregationEnv).
//
// It starts the world's controller with the read API on this machine's
// non-loopback address (EndpointSlices refuse loopback) and a TLS pair from
// a private CA, and registers APIService v1alpha1.query.flowrun.dev with a
// selector-less Service and an EndpointSlice in front of it; returns once the
// APIService is Available. `controller_args` are appended to the
// controller's flags. gtest assertions: on failure the caller's test fails
// (check HasFatalFailure()).
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"
#include "plugin_runner.h"

namespace flowrun::testing {

// Use as `const int kAggregation = SetAggregationEnv();` at namespace scope:
// the cluster must be configured for aggregation before the world starts it.
inline int SetAggregationEnv() { return setenv("FLOWRUN_AGGREGATION", "1", 1); }

inline void SetUpReadApi(E2eWorld& w, std::string& host, const std::vector<std::string>& controller_args = {}) {
  using nlohmann::json;
  PluginResult ip = Shell(w, "ip -4 -o addr show scope global | awk '{ sub(/\\/.*/, \"\", $4); print $4; exit }'");
  host = Trim(ip.out);
  ASSERT_FALSE(host.empty()) << "no non-loopback IPv4 address for the EndpointSlice";
  std::string pki = w.dir + "/query-pki";
  PluginResult certs = Shell(w, "mkdir -p " + pki + " && cd " + pki +
                           " && openssl ecparam -name prime256v1 -genkey -noout -out ca.key"
                           " && openssl req -x509 -new -key ca.key -sha256 -days 2 -subj /CN=query-ca -out ca.crt"
                           " && openssl ecparam -name prime256v1 -genkey -noout -out tls.key"
                           " && openssl req -new -key tls.key -subj /CN=flowrun-query.flowrun-system.svc -out tls.csr"
                           " && printf '%s\\n' extendedKeyUsage=serverAuth "
                           "'subjectAltName=DNS:flowrun-query.flowrun-system.svc,IP:" + host + "' > tls.ext"
                           " && openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial 0x42 -days 2"
                           " -sha256 -extfile tls.ext -out tls.crt");
  ASSERT_EQ(certs.exit_code, 0) << certs.err;
  std::vector<std::string> args = {"--query-addr", host + ":0", "--query-tls-cert-file", pki + "/tls.crt",
                                   "--query-tls-key-file", pki + "/tls.key", "--query-authz-cache-ttl-ms", "1000"};
  args.insert(args.end(), controller_args.begin(), controller_args.end());
  w.StartController({.args = args});
  json listening = WaitForLogLine(*w.controller(), "read API listening", std::chrono::seconds(60));
  ASSERT_TRUE(listening.is_object()) << w.ControllerLog();
  int port = listening.value("port", 0);
  ASSERT_GT(port, 0) << listening.dump();
  PluginResult b64 = Shell(w, "base64 -w0 " + pki + "/ca.crt");
  w.Kubectl({"create", "namespace", "flowrun-system"}, true);
  // In flowrun-system (ApplyYaml applies in the runs' namespace).
  WriteFile(w.dir + "/query-api.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: flowrun-query, namespace: flowrun-system}\n"
            "spec:\n  ports: [{name: https, port: 443, protocol: TCP}]\n---\n"
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            "metadata:\n  name: flowrun-query-1\n  namespace: flowrun-system\n"
            "  labels: {kubernetes.io/service-name: flowrun-query}\n"
            "addressType: IPv4\nports: [{name: https, port: " + std::to_string(port) + ", protocol: TCP}]\n"
            "endpoints: [{addresses: [\"" + host + "\"], conditions: {ready: true}}]\n---\n"
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1alpha1.query.flowrun.dev}\n"
            "spec:\n  group: query.flowrun.dev\n  version: v1alpha1\n  groupPriorityMinimum: 1000\n"
            "  versionPriority: 100\n  service: {name: flowrun-query, namespace: flowrun-system, port: 443}\n"
            "  caBundle: " + Trim(b64.out) + "\n");
  w.cluster->Kubectl({"apply", "-f", w.dir + "/query-api.yaml"});
  ASSERT_TRUE(w.KubectlResult({"wait", "--for=condition=Available", "apiservice/v1alpha1.query.flowrun.dev",
                               "--timeout=120s"}).ok())
      << w.Kubectl({"get", "apiservice", "v1alpha1.query.flowrun.dev", "-o", "yaml"}, true) << w.ControllerLog();
}

}  // namespace flowrun::testing
