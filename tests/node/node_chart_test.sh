#!/usr/bin/env bash
# The Helm chart and the project's real images on the real node (tests/cluster/node.sh):
#   - images/build.sh --prebuilt <build dir> builds the controller and agent images (in a buildah
#     storage of the node's own), node.sh imports them into containerd under the chart's names;
#   - `helm install` of helm/flowrun in a namespace that enforces Pod Security "restricted": both
#     controller replicas run as pods under the chart's ServiceAccount and security context,
#     in-cluster configuration (token + kube-root-ca.crt + the kubernetes Service), liveness and
#     readiness probes pass, and exactly one replica holds the Lease (its /readyz 200; the standby
#     serves /healthz 200 and /readyz 503);
#   - the research agent's image as the Job's pod in a "restricted" namespace: apply -> Waiting
#     (the kubelet's termination message read by the controller) -> kubectl patch -> a fresh pod
#     resumes from the cache -> Succeeded, the fake LLM seeing each prompt once;
#   - the Python research agent's image (flowrun/research-agent-py: examples/research-agent-py FROM
#     flowrun/python-agent-runtime, images/build.sh research-agent-py) likewise: apply -> Waiting
#     with the wait's question and schema -> kubectl patch -> a second Job's pod resumes ->
#     Succeeded with its result and cost, the fake LLM seeing each prompt once;
#   - an attempt's pod deleted mid-call: SIGTERM, the agent writes the "terminated" outcome at once
#     (exit 143), classified Terminated and resumed from the cache without counting as a failure;
#   - an attempt OOMKilled by its memory limit is classified (status.attempts reason OOMKilled)
#     and retried; the retry resumes from the cache (no prompt twice);
#   - kubectl logs of an attempt's pod and kubectl exec into the controller work;
#   - the leading controller pod deleted: the other replica takes the Lease and finishes a run;
#   - the kubelet stopped mid-call (a second, witness Node stays Ready): Node NotReady, the pods
#     deleted by the taint manager; with the kubelet back, the attempt classified NodeLost and
#     retried;
#   - helm upgrade to another controller image tag rolls the Deployment without ever two leaders
#     (each pod's leader gauge and the Lease sampled throughout); a run waiting across it finishes
#     with one Job per attempt;
#   - helm uninstall leaves no pod, Deployment or Lease of the release;
#   - the chart's bundled PostgreSQL (postgresql.enabled, image flowrun/postgresql from
#     images/Dockerfile) on a PersistentVolume: a FlowRun runs to Succeeded against it through the
#     chart's Secret, the pods resolving its Service name through the node's cluster DNS.
# PostgreSQL and the fake LLM run on the host (loopback); pods reach them at the node's gateway
# address (node.sh's DNAT). Figures (pod start latency, exit -> Waiting) are printed as
# "measure:" lines, never asserted.
# Usage: node_chart_test.sh <cmake build dir>. Needs root (exit 77 = skipped otherwise).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:?usage: node_chart_test.sh <cmake build dir>}" && pwd)
# shellcheck source=../cluster/checks.sh
source "$ROOT/tests/cluster/checks.sh"
# shellcheck source=node_checks.sh
source "$HERE/node_checks.sh"
need_real_node_host || exit 77

VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/helm/flowrun/Chart.yaml")
# The node's buildah storage (node.sh): never the one images_test uses at the same time.
eval "$("$ROOT/tests/cluster/node.sh" buildah-env /)"
t=$SECONDS
if ! "$ROOT/images/build.sh" --prebuilt "$BUILD" controller agent research-agent-py postgresql >"${TMPDIR:-/tmp}/flowrun-node-images.$$.log" 2>&1; then
  tail -40 "${TMPDIR:-/tmp}/flowrun-node-images.$$.log" >&2
  rm -f "${TMPDIR:-/tmp}/flowrun-node-images.$$.log"
  nok "images/build.sh --prebuilt"; summary; exit 1
fi
rm -f "${TMPDIR:-/tmp}/flowrun-node-images.$$.log"
ok "images/build.sh --prebuilt: controller, agent, Python agent and postgresql images ($VERSION) built in $((SECONDS - t)) s"

t=$SECONDS
# Node loss within seconds (the kubelet-stopped case below): NotReady after 8 s without a lease
# renewal, pods evicted from an unreachable node after 2 s instead of 300.
FLOWRUN_NODE=real FLOWRUN_KCM_ARGS="--node-monitor-grace-period=8s" \
  FLOWRUN_APISERVER_ARGS="--default-not-ready-toleration-seconds=2 --default-unreachable-toleration-seconds=2" \
  test_cluster node-chart
echo "     (control plane + real node up in $((SECONDS - t)) s)"
PG=$DIR/pg LLM_PID=""
cleanup() {
  [[ -n $LLM_PID ]] && kill "$LLM_PID" 2>/dev/null
  [[ -n ${WITNESS_PID:-} ]] && kill "$WITNESS_PID" 2>/dev/null
  "$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true
  "$ROOT/scripts/pg-local.sh" stop "$PG" >/dev/null 2>&1
  if [[ ${FLOWRUN_TEST_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
GW=$FLOWRUN_NODE_GATEWAY
NODE_SH=$ROOT/tests/cluster/node.sh

t=$SECONDS
check "images imported into the node's containerd" expect_ok "$NODE_SH" import "$DIR/cluster" \
  "flowrun/flowrun-controller:$VERSION" "flowrun/research-agent:$VERSION" "flowrun/agent-runtime:$VERSION" \
  "flowrun/postgresql:$VERSION" "flowrun/research-agent-py:$VERSION"
echo "     (imported in $((SECONDS - t)) s)"

# PostgreSQL on the host's loopback, also accepting the node's pods (they arrive through the DNAT
# with their own addresses).
chmod 755 "$DIR"
if ! URL=$("$ROOT/scripts/pg-local.sh" start "$PG" 2>"$DIR/pg.err" | tail -n1); then
  cat "$DIR/pg.err" >&2; nok "pg-local.sh start"; summary; exit 1
fi
echo "host all all 10.244.0.0/16 trust" >>"$PG/data/pg_hba.conf"
psql -X -q -At "$URL" -c 'SELECT pg_reload_conf()' >/dev/null
PGPORT=${URL##*:}; PGPORT=${PGPORT%%/*}
POD_URL="postgresql://flowrun@$GW:$PGPORT/flowrun"

python3 "$ROOT/tests/support/fake_llm_server.py" --port 0 --port-file "$DIR/llm.port" --api-key test-key \
  >"$DIR/llm.log" 2>&1 &
LLM_PID=$!
wait_until 20 test -s "$DIR/llm.port" || { nok "fake LLM started"; summary; exit 1; }
LLM_PORT=$(<"$DIR/llm.port")
llm_stats() { curl -fsS "http://127.0.0.1:$LLM_PORT/__fake/stats"; }

# The release namespace and the runs' namespace both enforce "restricted".
for ns in flowrun-system agents; do
  "$K" create namespace "$ns" >/dev/null
  "$K" label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
  "$K" -n "$ns" create secret generic flowrun-database --from-literal=url="$POD_URL" >/dev/null
done
"$K" -n agents create secret generic openai --from-literal=api-key=test-key >/dev/null

export HELM_CACHE_HOME=$DIR/helm/cache HELM_CONFIG_HOME=$DIR/helm/config HELM_DATA_HOME=$DIR/helm/data
t=$SECONDS
# The controller pods tolerate a NotReady/unreachable node for Kubernetes' default 300 s (the
# cluster's 2 s default above is for the agents' pods): in the kubelet-stopped case below they keep
# running and watching, as on a cluster with more than one node, and see the agent's pod end.
cat >"$DIR/values-node.yaml" <<'YAML'
tolerations:
- {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
YAML
check "helm install (real images, restricted namespace)" expect_ok "$BIN/helm" install flowrun "$ROOT/helm/flowrun" \
  -n flowrun-system -f "$DIR/values-node.yaml" --wait --timeout 180s
echo "     (helm install --wait: $((SECONDS - t)) s)"
# The price table ConfigMap lives in the release namespace; runs elsewhere need a copy (values.yaml).
"$K" -n flowrun-system get configmap flowrun-prices -o json |
  python3 -c 'import json,sys; c=json.load(sys.stdin); m=c["metadata"]; c["metadata"]={"name":m["name"],"namespace":"agents"}; print(json.dumps(c))' |
  "$K" apply -f - >/dev/null
CTL_SELECTOR=app.kubernetes.io/name=flowrun,app.kubernetes.io/component=controller
ctl_pods() { "$K" -n flowrun-system get pods -l "$CTL_SELECTOR" -o "jsonpath=$1"; }
check "both controller replicas Running and Ready (kubelet's probes pass), none restarted" eq "Running True 0
Running True 0" bash -c "'$K' -n flowrun-system get pods -l '$CTL_SELECTOR' -o jsonpath='{range .items[*]}{.status.phase} {.status.conditions[?(@.type==\"Ready\")].status} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}'"
check "... under the chart's ServiceAccount, as uid 65532" eq "flowrun-controller 65532
flowrun-controller 65532" bash -c "for p in \$('$K' -n flowrun-system get pods -l '$CTL_SELECTOR' -o name); do
  echo \$('$K' -n flowrun-system get \$p -o jsonpath='{.spec.serviceAccountName}') \$('$K' -n flowrun-system exec \$p -- id -u); done"
holder() { "$K" -n flowrun-system get lease flowrun-controller -o 'jsonpath={.spec.holderIdentity}'; }
leader_pod() { local h; h=$(holder); ctl_pods '{range .items[*]}{.metadata.name}{"\n"}{end}' | while read -r p; do [[ -n $p && $h == *"$p"* ]] && echo "$p"; done; }
one_leader() { [[ $(leader_pod | wc -l) == 1 ]]; }
check "exactly one replica holds the Lease" wait_until 60 one_leader
LEADER=$(leader_pod)
echo "     (leader: $LEADER, holder identity: $(holder))"
# http_status <pod> <path>: the controller's health server from inside its container (kubectl exec).
http_status() {
  "$K" -n flowrun-system exec "$1" -- bash -c "exec 3<>/dev/tcp/127.0.0.1/8081; printf 'GET $2 HTTP/1.0\r\n\r\n' >&3; head -1 <&3" |
    awk '{print $2}'
}
STANDBY=$(ctl_pods '{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -vx "$LEADER" | head -1)
check "kubectl exec into the controller: the leader's /readyz answers 200" eq 200 http_status "$LEADER" /readyz
standby_statuses() { echo "$(http_status "$STANDBY" /healthz) $(http_status "$STANDBY" /readyz)"; }
check "... the standby serves /healthz (200) and is not ready to lead (/readyz 503)" eq "200 503" standby_statuses

run_yaml() { # <name> [command or args yaml line]; RUN_IMAGE, RUN_MEMORY_LIMIT override the image and limit
  cat <<EOF
apiVersion: flowrun.dev/v1alpha1
kind: FlowRun
metadata: {name: $1, namespace: agents}
spec:
  template:
    image: ${RUN_IMAGE:-flowrun/research-agent:$VERSION}
${2:-}
    env:
    - {name: OPENAI_BASE_URL, value: "http://$GW:$LLM_PORT/v1"}
    - name: OPENAI_API_KEY
      valueFrom: {secretKeyRef: {name: openai, key: api-key}}
    - {name: FLOWRUN_LLM_MODEL, value: gpt-4o-mini}
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {memory: ${RUN_MEMORY_LIMIT:-128Mi}}
  parameters: {topic: $1}
  flow: research
  retry: {maxAttempts: 3}
  database:
    secretRef: {name: flowrun-database}
EOF
}
fr() { "$K" -n agents get flowrun "$1" -o "jsonpath=$2"; }
phase_is() { [[ $(fr "$1" '{.status.phase}') == "$2" ]]; }
prompts() { # <run> -> "<research prompts> <analysis prompts>"
  llm_stats | python3 -c "
import json, sys
s = json.load(sys.stdin)['by_prompt']; r = \"Research the topic '$1'\"
a = 'Analyze these research notes and give a recommendation: reply to: ' + r
print(sum(n for p, n in s.items() if p.startswith(r)), sum(n for p, n in s.items() if p.startswith(a)))"
}
answer() { "$K" -n agents patch flowrun "$1" --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}'; }

now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
t=$(now)
# Measured like bench/controller_bench (docs/benchmarks-controller.md), on the real node: the agent
# runs under a shell that prints a clock stamp to its log right after the agent exits, and a watch
# on the FlowRun stamps each phase it delivers.
run_yaml research-1 '    command: ["/bin/sh", "-c", "/usr/local/bin/research-agent; rc=$?; echo flowrun-exit-stamp `date +%s.%N`; exit $rc"]' |
  "$K" apply -f - >/dev/null
"$K" -n agents get flowrun research-1 --watch -o 'jsonpath={.status.phase}{"\n"}' 2>/dev/null \
  > >(while IFS= read -r ph; do echo "$EPOCHREALTIME $ph"; done >"$DIR/research-1.phases") &
PHASE_WATCH=$!
check "research-1: the agent's pod runs the image and the run waits for an answer" wait_until 180 phase_is research-1 Waiting
echo "measure: FlowRun applied -> Waiting (pod scheduled, started, agent ran to its wait, exit seen): $(since "$t") s"
pod1=$("$K" -n agents get pods -l job-name=research-1-a1 -o 'jsonpath={.items[0].metadata.name}')
check "... the wait is the agent's (from the kubelet's termination message): proceed" eq proceed fr research-1 '{.status.wait.name}'
check "kubectl logs of the attempt's pod shows the agent's log lines" bash -c "'$K' -n agents logs '$pod1' | grep -q '\"msg\"'"
"$K" -n agents get pod "$pod1" -o json | python3 -c '
import json, sys
from datetime import datetime
p = json.load(sys.stdin); t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
st = p["status"]["containerStatuses"][0]["state"]["terminated"]
print("measure: agent pod created -> container started (kubelet, 1 s resolution): %d s" % (t(st["startedAt"]) - t(p["metadata"]["creationTimestamp"])).seconds)' || true
exit_stamp=$("$K" -n agents logs "$pod1" 2>/dev/null | sed -n 's/^flowrun-exit-stamp //p' | tail -n1)
first_waiting=$(awk '$2 == "Waiting" {print $1; exit}' "$DIR/research-1.phases")
[[ -n $exit_stamp && -n $first_waiting ]] &&
  echo "measure: agent exit -> FlowRun Waiting on a watch (real kubelet: PLEG, status update, controller): $(python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$exit_stamp" "$first_waiting") s"
check "kubectl patch (answer) -> a fresh pod resumes -> Succeeded" bash -c \
  "'$K' -n agents patch flowrun research-1 --subresource=status --type=merge -p '{\"status\":{\"answers\":{\"proceed\":true}}}' >/dev/null"
t=$(now)
check "... Succeeded" wait_until 180 phase_is research-1 Succeeded
echo "measure: answer patched -> Succeeded (a new Job and pod, the agent resumed and finished): $(since "$t") s"
kill "$PHASE_WATCH" 2>/dev/null
# The resumed attempt's first steps, from the database's clock (the same machine's): the fence
# taken by the agent of attempt 2 (its container started and connected) and its first checkpoint.
psql -X -q -At -F ' ' "$URL" -c "SELECT extract(epoch FROM a.started_at),
    (SELECT extract(epoch FROM min(c.finished_at)) FROM flowrun.checkpoints c WHERE c.run_uid = r.run_uid AND c.epoch = a.epoch)
  FROM flowrun.runs r JOIN flowrun.attempts a USING (run_uid)
  WHERE r.namespace = 'agents' AND r.name = 'research-1' AND a.attempt = 2" 2>/dev/null |
  python3 -c "import sys; s, c = sys.stdin.read().split()[:2]; t = float(sys.argv[1]); print('measure: answer patched -> the resumed agent took its fence: %.3f s, -> its first checkpoint recorded: %.3f s' % (float(s) - t, float(c) - t))" "$t" || true
check "... the fake LLM saw each prompt once" eq "1 1" prompts research-1
check "... two attempts (a1 waiting, a2 succeeded)" eq "waiting succeeded" fr research-1 '{.status.attempts[*].outcome}'
# kubectl flowrun logs: an attempt's pod log through kube-apiserver's proxy to the real kubelet
# (nodesim serves no kubelet API, so only the real node can prove this command).
PLUGIN=$BUILD/plugin/kubectl-flowrun
check "kubectl flowrun logs research-1: the latest attempt's agent log lines" bash -c \
  "'$PLUGIN' -n agents logs research-1 | grep -q '\"msg\"'"
flowrun_logs_all() {
  local out; out=$("$PLUGIN" logs research-1 -n agents --all) || return 1
  grep -q "^==> attempt 1, pod $pod1 <==" <<<"$out" && grep -q '^==> attempt 2, pod research-1-a2-' <<<"$out"
}
check "... --all: both attempts' pods, each under its header" flowrun_logs_all
check "... --attempt 1: the first pod's log, the shell's exit stamp after the agent's lines" bash -c \
  "'$PLUGIN' logs research-1 -n agents --attempt 1 | grep -q '^flowrun-exit-stamp '"
check "... --attempt 3 (never started): a clear error, non-zero exit" bash -c \
  "! '$PLUGIN' logs research-1 -n agents --attempt 3 >/dev/null 2>'$DIR/logs3.err' && grep -qi attempt '$DIR/logs3.err'"

# The Python research agent (examples/research-agent-py/agent.py, the same flow as the C++ one) in
# its own image, FROM flowrun/python-agent-runtime (entrypoint python3 -m flowrun run), as the
# Job's pod in the "restricted" namespace: the same path through the real kubelet.
RUN_IMAGE=flowrun/research-agent-py:$VERSION RUN_MEMORY_LIMIT=256Mi run_yaml py-1 '    args: ["agent:research_agent"]' |
  "$K" apply -f - >/dev/null
t=$(now)
check "py-1 (Python agent image): the agent's pod runs and the run waits for an answer" wait_until 180 phase_is py-1 Waiting
echo "measure: FlowRun applied -> Waiting, Python agent image: $(since "$t") s"
check "... the pod ran the Python agent's image" eq "flowrun/research-agent-py:$VERSION" bash -c \
  "'$K' -n agents get pods -l job-name=py-1-a1 -o jsonpath='{.items[0].spec.containers[0].image}'"
check "... status.wait: proceed, the agent's question" eq "proceed|Research on 'py-1' is complete. Proceed to analysis?" \
  fr py-1 '{.status.wait.name}|{.status.wait.question}'
wait_schema_bool() { fr py-1 '{.status.wait.schema}' | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get("type") == "boolean" else 1)'; }
check "... status.wait.schema is the wait's (pydantic's for bool: type boolean)" wait_schema_bool
# The kubelet's termination message of the exited container: the outcome the Python agent wrote
# (through the C++ engine) and the controller read into status.attempts.
py_term_message() {
  "$K" -n agents get pods -l job-name=py-1-a1 -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.message}' |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["outcome"], m["wait"]["name"])'
}
check "... the pod's termination message (kubelet): outcome waiting, wait proceed" eq "waiting proceed" py_term_message
check "... attempt 1's outcome, read by the controller: waiting" eq waiting fr py-1 '{.status.attempts[0].outcome}'
py_pod1=$("$K" -n agents get pods -l job-name=py-1-a1 -o 'jsonpath={.items[0].metadata.name}')
check "kubectl patch (answer) of py-1" expect_ok answer py-1
t=$(now)
check "... a fresh pod resumes from the cache -> Succeeded" wait_until 180 phase_is py-1 Succeeded
echo "measure: answer patched -> Succeeded, Python agent image: $(since "$t") s"
check "... a second Job (a1, a2), its own pod" eq "py-1-a1 py-1-a2" bash -c \
  "'$K' -n agents get jobs -l flowrun.dev/run=py-1 -o jsonpath='{.items[*].metadata.name}'"
py_pod2_new() {
  local p2; p2=$("$K" -n agents get pods -l job-name=py-1-a2 -o 'jsonpath={.items[0].metadata.name}')
  [[ -n $p2 && $p2 != "$py_pod1" ]]
}
check "... the a2 pod is not the a1 pod" py_pod2_new
check "... two attempts (a1 waiting, a2 succeeded)" eq "waiting succeeded" fr py-1 '{.status.attempts[*].outcome}'
py_result() { fr py-1 '{.status.result}' | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r["topic"], r["analysis"].startswith("reply to: Analyze these research notes"))'; }
check "... status.result: the flow's return value (done, its topic, the analysis)" eq "done py-1 True" py_result
check "... the fake LLM saw each prompt once" eq "1 1" prompts py-1
py_cost() { fr py-1 '{.status.cost.usd} {.status.cost.llmCalls}' | python3 -c 'import sys; u, n = sys.stdin.read().split(); sys.exit(0 if float(u) > 0 and n == "2" else 1)'; }
check "... status.cost: two LLM calls, a non-zero spend ($(fr py-1 '{.status.cost.display}'))" py_cost

# OOM: attempt 2 (after the answer) runs out of its memory limit as PID 1; attempt 3 is the agent.
run_yaml oom-1 '    command: ["/bin/sh", "-c", "if [ \"$FLOWRUN_ATTEMPT\" = 2 ]; then exec dd if=/dev/zero of=/dev/null bs=512M count=1; fi; exec /usr/local/bin/research-agent"]' |
  "$K" apply -f - >/dev/null
check "oom-1: waits after attempt 1" wait_until 180 phase_is oom-1 Waiting
answer oom-1 >/dev/null
check "... attempt 2 OOMKilled, retried, Succeeded" wait_until 240 phase_is oom-1 Succeeded
check "... status.attempts: a2 classified OOMKilled" bash -c \
  "[[ \$('$K' -n agents get flowrun oom-1 -o jsonpath='{.status.attempts[1].reason}') == OOMKilled ]] || { '$K' -n agents get flowrun oom-1 -o jsonpath='{.status.attempts}' >&2; exit 1; }"
check "... the retry resumed from the cache: each prompt once" eq "1 1" prompts oom-1
echo "     (oom-1 attempts: $(fr oom-1 '{range .status.attempts[*]}{.attempt}:{.outcome}/{.reason} {end}'))"

# A pod deleted mid-checkpoint (the agent waits for a 45 s LLM answer): the kubelet sends SIGTERM.
# The agent, PID 1 of its container, takes it (the runtime's TerminationWatcher) and writes the
# "terminated" outcome to /dev/termination-log at once, exit 143, instead of being SIGKILLed after
# the 30 s grace period. The controller classifies the attempt Terminated and resumes the run from
# the cache at once (no backoff, not counted against retry.maxAttempts). The interrupted call's
# answer never reached the agent, so its prompt may be counted twice; the next one once.
llm_config() { curl -fsS -X POST -d "$1" "http://127.0.0.1:$LLM_PORT/__fake/config" >/dev/null; }
llm_total() { llm_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
total0=$(llm_total)
llm_config '{"latency_ms": 45000}'
run_yaml sigterm-1 | "$K" apply -f - >/dev/null
in_flight() { [[ $(llm_total) -gt $total0 ]]; }
check "sigterm-1: the agent's LLM call is in flight" wait_until 120 in_flight
t=$(now)
"$K" -n agents delete pod -l job-name=sigterm-1-a1 --wait=false >/dev/null
llm_config '{"latency_ms": 0}'
a1_concluded() { [[ -n $(fr sigterm-1 '{.status.attempts[0].endTime}') ]]; }
check "sigterm-1: pod deleted mid-call: attempt 1 concluded" wait_until 60 a1_concluded
echo "measure: pod deleted (SIGTERM) -> attempt concluded by the controller: $(since "$t") s (a SIGKILL would come after the 30 s grace period)"
check "... status.attempts: a1 classified Terminated (the agent's terminated outcome)" bash -c \
  "[[ \$('$K' -n agents get flowrun sigterm-1 -o jsonpath='{.status.attempts[0].outcome}/{.status.attempts[0].reason}') == terminated/Terminated ]] || { '$K' -n agents get flowrun sigterm-1 -o jsonpath='{.status.attempts}' >&2; exit 1; }"
check "... its message is the agent's (SIGTERM), not an exit code the controller guessed from" bash -c \
  "'$K' -n agents get flowrun sigterm-1 -o jsonpath='{.status.attempts[0].message}' | grep -q 'SIGTERM: the pod is being deleted'"
check "... resumed from the cache: the run waits after attempt 2" wait_until 180 phase_is sigterm-1 Waiting
echo "     (sigterm-1 attempts: $(fr sigterm-1 '{range .status.attempts[*]}{.attempt}:{.outcome}/{.reason} {end}'))"
events_of() { "$K" -n agents get events --field-selector "involvedObject.name=$1" -o jsonpath='{range .items[*]}{.type}/{.reason} {end}'; }
terminated_event() { [[ $(events_of sigterm-1) == *Normal/AttemptTerminated* ]]; }
check "... a Normal AttemptTerminated event" wait_until 30 terminated_event
check "... and no AttemptFailed warning (a termination is no failure of the flow)" bash -c \
  "[[ \$('$K' -n agents get events --field-selector involvedObject.name=sigterm-1 -o jsonpath='{range .items[*]}{.reason} {end}') != *AttemptFailed* ]]"
answer sigterm-1 >/dev/null
check "... answered: Succeeded" wait_until 180 phase_is sigterm-1 Succeeded
analysis_once() { [[ $(prompts sigterm-1) =~ ^[12]\ 1$ ]]; }
check "... the analysis prompt once (the research prompt at most twice: $(prompts sigterm-1))" analysis_once

# The leader goes away mid-run: the other replica takes over and finishes the run.
run_yaml failover-1 | "$K" apply -f - >/dev/null
check "failover-1: waits" wait_until 180 phase_is failover-1 Waiting
"$K" -n flowrun-system delete pod "$LEADER" --wait=false >/dev/null
answer failover-1 >/dev/null
check "leader pod deleted: another pod holds the Lease" wait_until 90 bash -c \
  "h=\$('$K' -n flowrun-system get lease flowrun-controller -o jsonpath='{.spec.holderIdentity}'); [[ -n \$h && \$h != *'$LEADER'* ]]"
check "... and finishes the run: Succeeded, each prompt once, one Job per attempt" wait_until 180 phase_is failover-1 Succeeded
check "... each prompt once" eq "1 1" prompts failover-1
check "... Jobs a1 and a2 only" eq "failover-1-a1 failover-1-a2" bash -c \
  "'$K' -n agents get jobs -l flowrun.dev/run=failover-1 -o jsonpath='{.items[*].metadata.name}'"

# helm upgrade to another controller image (the same binary under a new tag): a rolling update; a
# run waiting across it finishes with one Job per attempt.
NEW_TAG=$VERSION-upgrade
OLD_PODS=$(ctl_pods '{range .items[*]}{.metadata.name} {end}')
"$NODE_SH" ctr "$DIR/cluster" images tag "docker.io/flowrun/flowrun-controller:$VERSION" \
  "docker.io/flowrun/flowrun-controller:$NEW_TAG" >/dev/null
run_yaml upgrade-1 | "$K" apply -f - >/dev/null
check "upgrade-1: waits" wait_until 180 phase_is upgrade-1 Waiting
# Never two leaders during the rolling update: a sampler reads, as often as it can, every
# controller pod's leader gauge (leader_election_master_status on /metrics, straight from the host
# to the pod's address) and the Lease's holder, one line per round:
#   <time> <pod>=<gauge>,... holder=<identity>
# Old and new pods overlap (maxSurge 1); the leader's pod is stopped (SIGTERM: it releases the
# Lease) and a standby takes over.
leader_sampler() {
  local ips p ip v line
  while [[ ! -e $DIR/sampler.stop ]]; do
    ips=$(ctl_pods '{range .items[*]}{.metadata.name}={.status.podIP} {end}' 2>/dev/null) || continue
    line="$EPOCHREALTIME"
    for p in $ips; do
      ip=${p#*=}
      [[ -n $ip ]] || continue
      v=$(curl -s -m 1 "http://$ip:8080/metrics" 2>/dev/null | awk '/^leader_election_master_status/ {print $2; exit}')
      line+=" ${p%%=*}=${v:-?}"
    done
    echo "$line holder=$(holder 2>/dev/null)"
  done >"$DIR/leaders.log"
}
leader_sampler &
SAMPLER=$!
check "helm upgrade --set image.tag=$NEW_TAG (rolling update)" expect_ok "$BIN/helm" upgrade flowrun "$ROOT/helm/flowrun" \
  -n flowrun-system --reuse-values --set image.tag="$NEW_TAG" --wait --timeout 180s
two_new() { # exactly two controller pods, both of the new image (the old ones gone)
  [[ $(ctl_pods '{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort | uniq -c | tr -s ' ') == " 2 flowrun/flowrun-controller:$NEW_TAG" ]]
}
check "... both replicas replaced by pods of the new image" wait_until 120 two_new
new_leader() { local p; p=$(leader_pod); [[ -n $p ]] && "$K" -n flowrun-system get pod "$p" -o 'jsonpath={.spec.containers[0].image}' | grep -q ":$NEW_TAG$"; }
check "... and one of them holds the Lease" wait_until 90 new_leader
# One more whole round of the sampler with the new leader: a round that began after this point.
rounds=$(wc -l <"$DIR/leaders.log")
another_round() { [[ $(wc -l <"$DIR/leaders.log") -ge $((rounds + 2)) ]]; }
check "... the sampler saw the new leader" wait_until 30 another_round
touch "$DIR/sampler.stop"; wait "$SAMPLER"; rm -f "$DIR/sampler.stop"
# never_two_leaders: no round saw two pods reporting 1; a pod reporting 1 is the Lease's holder;
# the rounds saw the leadership move from an old pod to a new one.
never_two_leaders() {
  python3 - "$DIR/leaders.log" "$OLD_PODS" <<'PY'
import sys
rounds, old = [l.split() for l in open(sys.argv[1]) if l.strip()], set(sys.argv[2].split())
bad, leaders_seen = [], []
for r in rounds:
    holder = r[-1][len("holder="):]
    leading = [kv.split("=")[0] for kv in r[1:-1] if kv.endswith("=1")]
    if len(leading) > 1 or any(p not in holder for p in leading):
        bad.append(" ".join(r))
    for p in leading:
        if not leaders_seen or leaders_seen[-1] != p:
            leaders_seen.append(p)
print("     (%d rounds; leaders in order: %s)" % (len(rounds), " -> ".join(leaders_seen) or "none"))
for b in bad[:5]:
    print("    | two leaders or a leader without the Lease: " + b, file=sys.stderr)
moved = any(p in old for p in leaders_seen) and leaders_seen and leaders_seen[-1] not in old
if not moved:
    print("    | the rounds did not see the leadership move from an old pod to a new one", file=sys.stderr)
sys.exit(0 if rounds and not bad and moved else 1)
PY
}
check "... never two leaders during the rolling update (each pod's leader gauge and the Lease, sampled)" never_two_leaders
answer upgrade-1 >/dev/null
check "... the run waiting across the upgrade Succeeds, each prompt once, Jobs a1 a2" wait_until 180 phase_is upgrade-1 Succeeded
check "... each prompt once" eq "1 1" prompts upgrade-1
check "... Jobs a1 and a2 only" eq "upgrade-1-a1 upgrade-1-a2" bash -c \
  "'$K' -n agents get jobs -l flowrun.dev/run=upgrade-1 -o jsonpath='{.items[*].metadata.name}'"

# The kubelet stopped while an agent runs (mid-call): the Node goes NotReady and the taint manager
# deletes the agent's pod (DisruptionTarget DeletionByTaintManager; the controllers tolerate the
# taint longer, see values-node.yaml). With the kubelet back, the agent gets its SIGTERM and reports
# "terminated"; the pod's disruption is the more precise cause: the attempt is classified NodeLost
# and retried, and the run finishes with the analysis prompt once. (Were the controllers evicted
# too, the agent's pod could be gone before a new controller pod watched it, and the attempt would
# read PodDeleted: the agent now ends in a second instead of after its 30 s grace period.)
# A second, always-Ready Node. With the real node as the cluster's only Node, its loss puts every
# zone in "full disruption": the node-lifecycle controller then assumes the control plane lost its
# network, removes the NoExecute taints and stops evicting (nodelifecycle handleDisruption, "Entering
# master disruption mode"). Whether the agent's pod went first was a race the loaded CI machine
# lost. A witness Node whose Lease is renewed keeps the zone "normal" (1 of 2 not ready), as on any
# real cluster; its NoSchedule taint keeps every pod off it.
WITNESS=flowrun-witness
witness_start() {
  "$K" apply -f - >/dev/null <<YAML || return 1
apiVersion: v1
kind: Node
metadata: {name: $WITNESS, labels: {flowrun.dev/witness: "true"}}
spec:
  taints: [{key: flowrun.dev/witness, value: "true", effect: NoSchedule}]
YAML
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  "$K" patch node "$WITNESS" --subresource=status --type=merge -p \
    "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"witness\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" \
    >/dev/null || return 1
  (
    while :; do
      "$K" apply -f - >/dev/null 2>&1 <<YAML
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: $WITNESS, namespace: kube-node-lease}
spec: {holderIdentity: $WITNESS, leaseDurationSeconds: 40, renewTime: "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"}
YAML
      sleep 1
    done
  ) >/dev/null 2>&1 &
  WITNESS_PID=$!
}
witness_stop() {
  [[ -n ${WITNESS_PID:-} ]] && kill "$WITNESS_PID" 2>/dev/null && wait "$WITNESS_PID" 2>/dev/null
  WITNESS_PID=""
  "$K" delete node "$WITNESS" --ignore-not-found >/dev/null 2>&1
  "$K" -n kube-node-lease delete lease "$WITNESS" --ignore-not-found >/dev/null 2>&1
}
witness_ready() { [[ $("$K" get node "$WITNESS" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]] &&
  "$K" -n kube-node-lease get lease "$WITNESS" >/dev/null 2>&1; }
check "a witness Node (NoSchedule, its Lease renewed) keeps the zone out of full disruption" witness_start
check "... the witness Node is Ready and its Lease renewed" wait_until 30 witness_ready
total0=$(llm_total)
# The call must outlast the node-loss path (NotReady after the 8 s grace period, then the taint
# manager's eviction), which takes much longer on a loaded CI machine than on a quiet one: the
# agent must not finish its call first and reach Waiting on the lost node.
llm_config '{"latency_ms": 900000}'
run_yaml nodelost-1 | "$K" apply -f - >/dev/null
in_flight() { [[ $(llm_total) -gt $total0 ]]; }
check "nodelost-1: the agent's LLM call is in flight" wait_until 120 in_flight
agent_pod=$("$K" -n agents get pods -l job-name=nodelost-1-a1 -o 'jsonpath={.items[0].metadata.name}')
"$NODE_SH" stop-kubelet "$DIR/cluster"
not_ready() { [[ $("$K" get node "$FLOWRUN_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') != True ]]; }
check "kubelet stopped: the Node is NotReady" wait_until 60 not_ready
evicted() { [[ -n $("$K" -n agents get pod "$agent_pod" -o 'jsonpath={.metadata.deletionTimestamp}' 2>/dev/null) ]] ||
  ! "$K" -n agents get pod "$agent_pod" >/dev/null 2>&1; }
check "... the taint manager deletes the agent's pod" wait_until 240 evicted
llm_config '{"latency_ms": 0}'
check "kubelet started again" expect_ok "$NODE_SH" start-kubelet "$DIR/cluster"
attempt1_lost() { [[ $(fr nodelost-1 '{.status.attempts[0].reason}') == NodeLost ]]; }
check "... the attempt is classified NodeLost" wait_until 180 attempt1_lost
echo "     (nodelost-1 attempts: $(fr nodelost-1 '{range .status.attempts[*]}{.attempt}:{.outcome}/{.reason} {end}'))"
check "... the retry runs and waits" wait_until 180 phase_is nodelost-1 Waiting
answer nodelost-1 >/dev/null
check "... answered: Succeeded" wait_until 180 phase_is nodelost-1 Succeeded
analysis_once_nl() { [[ $(prompts nodelost-1) =~ ^[12]\ 1$ ]]; }
check "... the analysis prompt once (the research prompt at most twice: $(prompts nodelost-1))" analysis_once_nl
witness_stop

check "helm uninstall" expect_ok "$BIN/helm" uninstall flowrun -n flowrun-system --wait --timeout 120s
check "... no controller pod, Deployment, ReplicaSet or Lease left" wait_until 60 bash -c \
  "[[ -z \$('$K' -n flowrun-system get pods,deployments,replicasets,leases -o name) ]]"

# The chart's bundled PostgreSQL (postgresql.enabled, docs/install.md) on the real node: the
# StatefulSet runs flowrun/postgresql (images/Dockerfile target postgresql: Debian's postgresql-15,
# uid 999, the official image's environment contract) under the chart's security context in the
# "restricted" namespace, on a PersistentVolume a cluster admin provides (here a hostPath
# directory); the controller finds it through the Secret the chart generates, the runs' namespace
# gets a copy of that Secret as documented, and pods reach the Service by its DNS name (the node's
# cluster DNS, tests/cluster/node-dns.py). A FlowRun goes apply -> Waiting -> answer -> Succeeded
# against it, and its rows are in that database.
"$K" -n flowrun-system delete secret flowrun-database >/dev/null
mkdir -p "$DIR/pv"
chown 999:999 "$DIR/pv"
"$K" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: flowrun-node-test-pg}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$DIR/pv", type: Directory}
YAML
t=$SECONDS
check "helm install --set postgresql.enabled=true (bundled PostgreSQL, image flowrun/postgresql:$VERSION)" \
  expect_ok "$BIN/helm" install flowrun "$ROOT/helm/flowrun" -n flowrun-system --wait --timeout 240s \
  --set postgresql.enabled=true --set postgresql.image.repository=flowrun/postgresql \
  --set postgresql.image.tag="$VERSION" --set postgresql.storage.size=1Gi --set postgresql.keepDataOnUninstall=false
echo "     (helm install with the bundled database --wait: $((SECONDS - t)) s)"
pg_pod_ready() { [[ $("$K" -n flowrun-system get pod flowrun-postgresql-0 -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]; }
check "... the PostgreSQL StatefulSet's pod is Ready (its pg_isready probes pass)" wait_until 60 pg_pod_ready
pg_identity() {
  echo "$("$K" -n flowrun-system exec flowrun-postgresql-0 -- id -u) $("$K" -n flowrun-system get pvc data-flowrun-postgresql-0 -o 'jsonpath={.status.phase}')"
}
check "... as uid 999, its data on the bound PersistentVolume" eq "999 Bound" pg_identity
check "... both controller replicas run, one holds the Lease" wait_until 90 one_leader
# The runs' namespace: the chart's Secret, copied (the FlowRun names no database: the controller's
# --database-secret default, flowrun-postgresql, applies).
copy_to_agents() { # <kind> <name>: the object's data only, into namespace agents
  "$K" -n flowrun-system get "$1" "$2" -o json | python3 -c '
import json, sys
c = json.load(sys.stdin)
out = {"apiVersion": "v1", "kind": c["kind"], "metadata": {"name": c["metadata"]["name"], "namespace": "agents"}, "data": c["data"]}
if c["kind"] == "Secret": out["type"] = c.get("type", "Opaque")
print(json.dumps(out))' | "$K" apply -f - >/dev/null
}
copy_to_agents secret flowrun-postgresql
copy_to_agents configmap flowrun-prices
run_yaml bundled-1 | grep -v -e '^  database:' -e 'secretRef: {name: flowrun-database}' | "$K" apply -f - >/dev/null
check "bundled-1: runs against the bundled database and waits" wait_until 180 phase_is bundled-1 Waiting
answer bundled-1 >/dev/null
check "... answered: Succeeded" wait_until 180 phase_is bundled-1 Succeeded
check "... each prompt once" eq "1 1" prompts bundled-1
bundled_rows() {
  "$K" -n flowrun-system exec flowrun-postgresql-0 -- psql -X -At -U flowrun -d flowrun -h /var/run/postgresql -c \
    "SELECT r.status || ' ' || count(a.*) FROM flowrun.runs r JOIN flowrun.attempts a USING (run_uid) WHERE r.name = 'bundled-1' GROUP BY r.status"
}
check "... its rows are in the bundled database (run succeeded, 2 attempts)" eq "succeeded 2" bundled_rows
check "helm uninstall (bundled database, keepDataOnUninstall=false)" expect_ok "$BIN/helm" uninstall flowrun -n flowrun-system --wait --timeout 120s
nothing_left() {
  [[ -z $("$K" -n flowrun-system get pods,statefulsets,deployments,leases,pvc -o name) ]] &&
    ! "$K" -n flowrun-system get secret flowrun-postgresql >/dev/null 2>&1
}
check "... no pod, StatefulSet, claim or generated Secret of the release left" wait_until 90 nothing_left

summary
[[ $fail -eq 0 ]]
