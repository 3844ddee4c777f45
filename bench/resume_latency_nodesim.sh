#!/usr/bin/env bash
# The resume figures of tests/node/node_chart_test.sh, measured the same way with the node
# simulator (nodesim) instead of a real kubelet, so the two node kinds can be compared
# (docs/control-plane.md, "Measured"). Never asserted; prints "measure:" lines.
#
#   bench/resume_latency_nodesim.sh <cmake build dir> [runs, default 5]
#
# Per run: a research FlowRun; nodesim runs the research agent (a local build) under a wrapper
# that prints a clock stamp right after the agent exits, a watch on the FlowRun stamps each phase:
#   agent exit -> FlowRun Waiting on the watch;
#   answer patched (the PATCH's return) -> the resumed attempt's fence taken (attempts.started_at)
#   and its first checkpoint recorded (min checkpoints.finished_at of that epoch), from
#   PostgreSQL's clock (the same machine's).
# The control plane, PostgreSQL, the fake LLM and flowrun-controller run as local processes, as in
# scripts/demo.sh.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=$(cd "${1:?usage: resume_latency_nodesim.sh <cmake build dir> [runs]}" && pwd)
RUNS=${2:-5}
for b in controller/flowrun-controller examples/research-agent; do
  [[ -x $BUILD/$b ]] || { echo "no $BUILD/$b (ninja -C $BUILD flowrun-controller research-agent)" >&2; exit 1; }
done
# shellcheck source=../tests/cluster/checks.sh
source "$ROOT/tests/cluster/checks.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowrun-resume-bench.XXXXXX")
cat >"$WORK/agent.sh" <<EOF
#!/bin/sh
"$BUILD/examples/research-agent"; rc=\$?
echo "flowrun-exit-stamp \$(date +%s.%N)"
exit \$rc
EOF
chmod +x "$WORK/agent.sh"
printf 'images:\n  "flowrun/research-agent*":\n    command: ["%s"]\n' "$WORK/agent.sh" >"$WORK/image-map.yaml"
export FLOWRUN_NODESIM_ARGS="--image-map=$WORK/image-map.yaml"
test_cluster resume-bench   # sets DIR, K, BIN; stops the cluster on exit
LLM_PID="" CTL_PID=""
cleanup() {
  [[ -n $CTL_PID ]] && kill "$CTL_PID" 2>/dev/null
  [[ -n $LLM_PID ]] && kill "$LLM_PID" 2>/dev/null
  "$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true
  "$ROOT/scripts/pg-local.sh" stop "$DIR/pg" >/dev/null 2>&1
  rm -rf "$DIR" "$WORK"
}
trap cleanup EXIT
chmod 755 "$DIR"
URL=$("$ROOT/scripts/pg-local.sh" start "$DIR/pg" | tail -n1) || exit 1
python3 "$ROOT/tests/support/fake_llm_server.py" --port 0 --port-file "$DIR/llm.port" --api-key k >"$DIR/llm.log" 2>&1 &
LLM_PID=$!
wait_until 20 test -s "$DIR/llm.port" || { echo "fake LLM did not start" >&2; exit 1; }
"$K" apply -f "$ROOT/crds/" >/dev/null
crd_established "$K" flowruns.flowrun.dev 60 || { echo "the FlowRun CRD is not Established" >&2; exit 1; }
"$K" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata: {name: flowrun-db}
stringData: {url: "$URL"}
---
apiVersion: v1
kind: Secret
metadata: {name: openai}
stringData: {api-key: k}
EOF
FLOWRUN_DATABASE_URL=$URL "$BUILD/controller/flowrun-controller" --kubeconfig "$KUBECONFIG" \
  --database-url-env FLOWRUN_DATABASE_URL --openai-base-url "http://127.0.0.1:$(<"$DIR/llm.port")/v1" \
  --price-table-path "$ROOT/examples/prices.yaml" --health-addr 127.0.0.1:0 >"$DIR/controller.log" 2>&1 &
CTL_PID=$!
wait_until 60 grep -q '"informers synced"' "$DIR/controller.log" || { tail "$DIR/controller.log" >&2; exit 1; }

phase_is() { [[ $("$K" get flowrun "$1" -o 'jsonpath={.status.phase}') == "$2" ]]; }
for ((i = 1; i <= RUNS; i++)); do
  r=resume-$i
  "$K" apply -f - >/dev/null <<EOF
apiVersion: flowrun.dev/v1alpha1
kind: FlowRun
metadata: {name: $r}
spec:
  template:
    image: flowrun/research-agent:0.1.0
    env:
    - name: OPENAI_API_KEY
      valueFrom: {secretKeyRef: {name: openai, key: api-key}}
    - {name: FLOWRUN_LLM_MODEL, value: gpt-4o-mini}
  parameters: {topic: $r}
  flow: research
  database:
    secretRef: {name: flowrun-db}
EOF
  "$K" get flowrun "$r" --watch -o 'jsonpath={.status.phase}{"\n"}' 2>/dev/null \
    > >(while IFS= read -r ph; do echo "$EPOCHREALTIME $ph"; done >"$DIR/$r.phases") &
  watch_pid=$!
  wait_until 120 phase_is "$r" Waiting || { echo "$r did not wait" >&2; exit 1; }
  wait_until 10 grep -q Waiting "$DIR/$r.phases"
  exit_stamp=$(cat "$FLOWRUN_NODESIM_STATE_DIR"/logs/default_"$r"-a1-*.log 2>/dev/null | sed -n 's/^flowrun-exit-stamp //p' | tail -n1)
  first_waiting=$(awk '$2 == "Waiting" {print $1; exit}' "$DIR/$r.phases")
  "$K" patch flowrun "$r" --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}' >/dev/null
  t=$EPOCHREALTIME
  wait_until 120 phase_is "$r" Succeeded || { echo "$r did not succeed" >&2; exit 1; }
  kill "$watch_pid" 2>/dev/null
  read -r fence first < <(psql -X -q -At -F ' ' "$URL" -c "SELECT extract(epoch FROM a.started_at),
      (SELECT extract(epoch FROM min(c.finished_at)) FROM flowrun.checkpoints c WHERE c.run_uid = r.run_uid AND c.epoch = a.epoch)
    FROM flowrun.runs r JOIN flowrun.attempts a USING (run_uid) WHERE r.name = '$r' AND a.attempt = 2")
  python3 - "$exit_stamp" "$first_waiting" "$t" "$fence" "$first" <<'PY'
import sys
e, w, t, f, c = (float(x) if x else float("nan") for x in sys.argv[1:6])
print("measure: nodesim: agent exit -> FlowRun Waiting on a watch: %.3f s; answer patched -> the resumed agent took its fence: %.3f s, -> its first checkpoint recorded: %.3f s" % (w - e, f - t, c - t))
PY
done
