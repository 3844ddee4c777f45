#!/usr/bin/env bash
# The read API's latency through kube-apiserver's aggregation path, beside the same request
# straight to the controller, the direct PostgreSQL query and a plain FlowRun list: runs
# tests/query/query_cluster_test.sh with FLOWRUN_QUERY_BENCH=1 and prints its "bench:" lines
# (p50/p99 over FLOWRUN_QUERY_BENCH_N requests, default 100). Printed, never asserted.
#   bench/query_api_bench.sh <build dir>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
FLOWRUN_QUERY_BENCH=1 "$ROOT/tests/query/query_cluster_test.sh" "$BUILD/controller/flowrun-controller" | grep -E '^bench:|passed'
