#!/usr/bin/env bash
# The flowrun demo on a fresh machine (Debian 12), in Kubernetes, with one command:
#
#   scripts/demo.sh
#
# It installs the Debian packages (scripts/install-deps.sh), builds flowrun
# (scripts/build.sh) and the local control plane (tests/cluster/build.sh: a
# real etcd, kube-apiserver, kube-controller-manager and kubectl, and nodesim,
# which runs each pod's container as a local process: the Python research
# agent's image maps to `python -m flowrun run` over build/python, the C++
# one's to build/examples/research-agent), starts it, a private PostgreSQL
# (scripts/pg-local.sh), a local fake OpenAI-compatible server
# (tests/support/fake_llm_server.py) and flowrun-controller, then runs the
# Python research agent (examples/research-agent-py) and the C++ one
# (examples/research-agent) the way a user does, printing every command and
# its output:
#
#   kubectl apply -f examples/research-agent-py/flowrun.yaml
#   kubectl get flowruns
#   kubectl get flowrun research-py-1 -o yaml
#   kubectl patch flowrun research-py-1 --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}'
#   kubectl wait flowrun/research-py-1 --for=jsonpath='{.status.phase}'=Succeeded
#
# and each run's cost (status.cost and `flowrunctl costs`). Everything it starts
# is stopped when it exits (also on Ctrl-C or failure); its state and logs stay
# in /tmp/flowrun-demo-$UID (controller.log, cluster/logs/, pg/postgres.log).
# Running it again starts from a fresh cluster.
#
# Environment:
#   OPENAI_BASE_URL, OPENAI_API_KEY  a real OpenAI-compatible endpoint instead of the fake
#   FLOWRUN_DEMO_SKIP_INSTALL=1      do not run scripts/install-deps.sh
#   FLOWRUN_DEMO_SKIP_BUILD=1        use the binaries already in $FLOWRUN_BUILD_DIR
#   FLOWRUN_BUILD_DIR                build directory (default: build)
#   FLOWRUN_DEMO_DIR                 state directory (default: /tmp/flowrun-demo-$UID;
#                                    under /tmp: PostgreSQL runs as the postgres user when we are root)
#   FLOWRUN_DEMO_TIMEOUT             seconds to wait for each phase (default 180)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/demo-common.sh

build=${FLOWRUN_BUILD_DIR:-build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
state=${FLOWRUN_DEMO_DIR:-/tmp/flowrun-demo-$(id -u)}
timeout=${FLOWRUN_DEMO_TIMEOUT:-180}

if [ "${FLOWRUN_DEMO_SKIP_INSTALL:-0}" != 1 ]; then
  step "installing Debian packages (idempotent)"
  scripts/install-deps.sh
fi
step "the Python SDK's virtual environment (cached outside the checkout: scripts/python-env.sh)"
python=$(scripts/python-env.sh)
echo "$python"
if [ "${FLOWRUN_DEMO_SKIP_BUILD:-0}" != 1 ]; then
  step "building flowrun (controller, the Python SDK, the C++ research agent, flowrunctl)"
  FLOWRUN_BUILD_DIR=$build FLOWRUN_TARGETS="flowrun-controller _core research-agent flowrunctl" \
    scripts/build.sh -DFLOWRUN_PYTHON="$python" >/dev/null
fi
for b in controller/flowrun-controller examples/research-agent runtime-lib/flowrunctl; do
  [ -x "$build/$b" ] || { echo "demo: $build/$b is missing (build it, or unset FLOWRUN_DEMO_SKIP_BUILD)" >&2; exit 1; }
done
compgen -G "$build/python/flowrun/_core*.so" >/dev/null ||
  { echo "demo: $build/python/flowrun has no _core (configure with -DFLOWRUN_PYTHON=\$(scripts/python-env.sh))" >&2; exit 1; }
step "building the local Kubernetes control plane (cached; the first build takes 10-30 min)"
cluster_bin=$(tests/cluster/build.sh | tail -n 1)
echo "binaries: $cluster_bin"

mkdir -p "$state"
rm -f "$state/controller.log"   # a previous run's; a failure below shows this run's
chmod 755 "$state" "$(dirname "$state")" 2>/dev/null || true
cluster=$state/cluster
controller_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$controller_pid" ] && kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
  [ -n "$fake_llm_pid" ] && kill "$fake_llm_pid" 2>/dev/null && wait "$fake_llm_pid" 2>/dev/null
  tests/cluster/cluster.sh stop "$cluster" >/dev/null 2>&1
  scripts/pg-local.sh stop "$state/pg" >/dev/null 2>&1
  if [ $rc -ne 0 ]; then
    echo "demo failed (exit $rc). Logs: $state/controller.log, $cluster/logs/, $state/pg/postgres.log" >&2
    [ -f "$state/controller.log" ] && tail -n 20 "$state/controller.log" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A previous run that was killed without its trap: stop what it left.
tests/cluster/cluster.sh stop "$cluster" >/dev/null 2>&1 || true

step "starting the control plane in $cluster (nodesim runs the agents' images as local processes)"
# The longest matching prefix wins: research-agent-py before research-agent.
cat >"$state/image-map.yaml" <<EOF
images:
  "flowrun/research-agent-py*":
    command: ["$python", "-m", "flowrun", "run"]
    env: {PYTHONPATH: "$build/python:$root/examples/research-agent-py"}
  "flowrun/research-agent*":
    command: ["$build/examples/research-agent"]
EOF
FLOWRUN_NODESIM_ARGS="--image-map=$state/image-map.yaml" tests/cluster/cluster.sh start "$cluster" \
  >"$state/cluster.log" 2>&1 || { cat "$state/cluster.log" >&2; exit 1; }
eval "$(tests/cluster/cluster.sh env "$cluster")"   # KUBECONFIG and kubectl on PATH
kubectl version 2>/dev/null | grep "^Server Version" || true

step "starting a private PostgreSQL in $state/pg"
db_url=$(scripts/pg-local.sh start "$state/pg" | tail -n 1)
echo "$db_url"
start_fake_llm "$state"
echo "LLM endpoint: $OPENAI_BASE_URL"

step "installing flowrun: the CRD and policies, the Secrets, the controller"
kubectl apply -f crds/
# Not `kubectl wait --for=condition=Established`: it fails at once while the new CRD has no
# status.conditions yet. Poll for up to 60 s.
crd_established() {
  [ "$(kubectl get crd flowruns.flowrun.dev -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ]
}
for _ in $(seq 300); do crd_established && break; sleep 0.2; done
crd_established || { echo "demo: the FlowRun CRD is not Established 60 s after kubectl apply" >&2; exit 1; }
# Secrets from stdin, never on a command line (ps would show them).
kubectl apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata: {name: flowrun-db}
stringData: {url: "$db_url"}
---
apiVersion: v1
kind: Secret
metadata: {name: openai}
stringData: {api-key: "$OPENAI_API_KEY"}
EOF
FLOWRUN_DATABASE_URL=$db_url "$build/controller/flowrun-controller" --kubeconfig "$KUBECONFIG" \
  --database-url-env FLOWRUN_DATABASE_URL --openai-base-url "$OPENAI_BASE_URL" \
  --price-table-path "$root/examples/prices.yaml" --health-addr 127.0.0.1:0 >"$state/controller.log" 2>&1 &
controller_pid=$!
for _ in $(seq 300); do
  grep -q '"informers synced"' "$state/controller.log" 2>/dev/null && break
  kill -0 "$controller_pid" 2>/dev/null || { cat "$state/controller.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '"informers synced"' "$state/controller.log" || { echo "the controller did not sync" >&2; exit 1; }
echo "flowrun-controller running (pid $controller_pid, log $state/controller.log)"

# Prints a command as a user types it, then runs it.
run() {
  printf '\n\033[36m$ %s\033[0m\n' "$*"
  "$@"
}
# The same for a command whose display differs from what runs (a quoted argument).
run_shown() {
  local shown=$1
  shift
  printf '\n\033[36m$ %s\033[0m\n' "$shown"
  "$@"
}

# research <name> <flowrun.yaml> <language>: a user's session with one agent,
# from apply to its cost.
research() {
  local name=$1 manifest=$2 language=$3 answer uid
  step "the $language research agent as a FlowRun: it researches, asks a person, and its pod exits"
  run kubectl apply -f "$manifest"
  run_shown "kubectl wait flowrun/$name --for=jsonpath='{.status.phase}'=Waiting" \
    kubectl wait "flowrun/$name" --for=jsonpath='{.status.phase}'=Waiting --timeout="${timeout}s"
  run kubectl get flowruns
  run kubectl get flowrun "$name" -o yaml
  run kubectl get pods -l "flowrun.dev/run=$name"

  step "a person answers through the status subresource; a fresh Job resumes from the cache"
  answer='{"status":{"answers":{"proceed":true}}}'
  run_shown "kubectl patch flowrun $name --subresource=status --type=merge -p '$answer'" \
    kubectl patch flowrun "$name" --subresource=status --type=merge -p "$answer"
  run_shown "kubectl wait flowrun/$name --for=jsonpath='{.status.phase}'=Succeeded" \
    kubectl wait "flowrun/$name" --for=jsonpath='{.status.phase}'=Succeeded --timeout="${timeout}s"
  run kubectl get flowruns
  # The Job controller marks the Job complete about a second after its pod.
  kubectl wait --for=condition=Complete --timeout=60s "job/$name-a2" >/dev/null || true
  run kubectl get jobs -l "flowrun.dev/run=$name"
  run_shown "kubectl get flowrun $name -o jsonpath='{.status.result}'" \
    kubectl get flowrun "$name" -o jsonpath='{.status.result}'
  echo

  step "what the $language run cost"
  run_shown "kubectl get flowrun $name -o jsonpath='{.status.cost}'" \
    kubectl get flowrun "$name" -o jsonpath='{.status.cost}'
  echo
  uid=$(kubectl get flowrun "$name" -o jsonpath='{.metadata.uid}')
  run_shown "flowrunctl costs $uid      # FLOWRUN_DATABASE_URL=$db_url" \
    "$build/runtime-lib/flowrunctl" costs "$uid"
}
export FLOWRUN_DATABASE_URL=$db_url
research research-py-1 examples/research-agent-py/flowrun.yaml Python
research research-1 examples/research-agent/flowrun.yaml C++

echo
summary=""
for name in research-py-1 research-1; do
  phase=$(kubectl get flowrun "$name" -o jsonpath='{.status.phase}')
  usd=$(kubectl get flowrun "$name" -o jsonpath='{.status.cost.usd}')
  summary+=$(printf ' %s %s, cost $%.6f;' "$name" "$phase" "$usd")
done
echo "demo finished:$summary stopping everything it started (logs stay in $state)"
