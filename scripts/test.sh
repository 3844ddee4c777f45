#!/usr/bin/env bash
# Runs every test flowrun has, on a fresh machine or a warm one:
#   1. installs the Debian packages (idempotent),
#   2. builds and runs every suite (ctest; each suite starts the real services it needs),
#   3. rebuilds the runtime and the controller core with AddressSanitizer + UndefinedBehaviorSanitizer
#      and runs their suites again.
# Suites can run alone: ctest --test-dir build -L runtime | -L base | -L support.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOWRUN_JOBS=${FLOWRUN_JOBS:-2}

scripts/install-deps.sh

echo "== test control plane binaries (cold: 10-30 min on 2 cores; cached afterwards outside the repo)"
tests/cluster/build.sh
echo "== the real node's kubelet and kube-scheduler (cold: ~3 min after the control plane; cached), its pause/busybox images"
tests/cluster/build-node.sh
if [ "$(id -u)" -eq 0 ]; then tests/cluster/node.sh prepare /; fi

echo "== the Python SDK's virtual environment (cached outside the checkout; sdk/python/requirements-dev.txt)"
flowrun_python=$(scripts/python-env.sh)
echo "== build (RelWithDebInfo)"
FLOWRUN_BUILD_DIR=build scripts/build.sh -DFLOWRUN_PYTHON="$flowrun_python"
echo "== tests"
ctest --test-dir build --output-on-failure -j "$FLOWRUN_JOBS" --timeout 900

echo "== build (address + undefined sanitizers): base, the runtime and the controller core"
FLOWRUN_BUILD_DIR=build-asan \
  FLOWRUN_TARGETS="base_test runtime_unit_test runtime_store_test runtime_agent_test runtime_execution_test test_agent research-agent controller_core_test controller_adapters_test controller_yaml_config_test" \
  scripts/build.sh -DCMAKE_BUILD_TYPE=Debug -DFLOWRUN_SANITIZE="address;undefined" -DFLOWRUN_BUILD_BENCH=OFF
echo "== base, runtime and controller-core tests under sanitizers"
LSAN_OPTIONS=suppressions=$(pwd)/tests/sanitizers/lsan.supp \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
  ctest --test-dir build-asan -L "base|runtime|controller-unit" -E "runtime_install|base_layering" --output-on-failure -j "$FLOWRUN_JOBS" --timeout 900
