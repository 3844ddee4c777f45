#!/usr/bin/env bash
# Smoke test of the test control plane: builds (or reuses) the binaries,
# starts a cluster in a temporary dir, proves with the real kubectl that the
# pieces work together, and tears everything down (also on failure or ^C).
# Last line of output: "N passed, M failed"; exit status non-zero on any failure.
#
# FLOWRUN_SMOKE_KEEP=1 keeps the cluster dir (the cluster is still stopped).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
nok() { fail=$((fail + 1)); echo "FAIL - $*"; }
summary() { echo "$pass passed, $fail failed"; }
# check <description> <command...>
check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }

t0=$SECONDS
if ! BIN=$("$HERE/build.sh" | tail -n1) || [[ ! -x $BIN/kubectl ]]; then
  nok "build.sh"
  summary; exit 1
fi
ok "build.sh ($((SECONDS - t0)) s): $BIN"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/flowrun-smoke.XXXXXX")
cleanup() {
  "$HERE/cluster.sh" stop "$DIR" >/dev/null 2>&1 || true
  if [[ ${FLOWRUN_SMOKE_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t1=$(date +%s.%N)
if ! "$HERE/cluster.sh" start "$DIR"; then
  nok "cluster.sh start"
  summary; exit 1
fi
t2=$(date +%s.%N)
ok "cluster.sh start ($(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}') s)"
eval "$("$HERE/cluster.sh" env "$DIR")"
K="$BIN/kubectl"
STATE=$FLOWRUN_NODESIM_STATE_DIR
K8S_VERSION=$(awk '$1=="require" && $2=="k8s.io/kubernetes"{print $3}' "$HERE/k8s/go.mod")

# wait_until <seconds> <command...>
wait_until() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# ---- versions ----
version_ok() {
  local raw
  raw=$("$K" get --raw /version) || return 1
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  if ! grep -q "\"gitVersion\": *\"$K8S_VERSION\"" <<<"$raw" || ! grep -q '"major": *"1"' <<<"$raw" ||
    ! grep -q "\"minor\": *\"$minor\"" <<<"$raw"; then
    echo "$raw" >&2
    return 1
  fi
  "$K" version -o json | grep -q "\"gitVersion\": *\"$K8S_VERSION\""
}
check "apiserver /version and kubectl report $K8S_VERSION" version_ok
check "etcd --version is the pinned one" bash -c "'$BIN/etcd' --version | grep -q 'etcd Version: $(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$HERE/etcd/go.mod" | sed 's/^v//')'"

# ---- a Job that succeeds ----
"$K" apply -f - >/dev/null <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: ok-job}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: local/true, command: ["/bin/true"]}
EOF
check "Job running /bin/true reaches Complete" "$K" wait --for=condition=Complete job/ok-job --timeout=60s

# ---- a Job that fails with a termination message ----
"$K" apply -f - >/dev/null <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: fail-job}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: local/sh
        command: ["/bin/sh", "-c", "echo bye > $FLOWRUN_TERMINATION_MESSAGE_PATH; exit 1"]
EOF
check "Job exiting 1 with backoffLimit 0 reaches Failed" "$K" wait --for=condition=Failed job/fail-job --timeout=60s
fail_pod_ok() {
  local out
  out=$("$K" get pods -l batch.kubernetes.io/job-name=fail-job \
    -o 'jsonpath={.items[0].status.phase}|{.items[0].status.containerStatuses[0].state.terminated.exitCode}|{.items[0].status.containerStatuses[0].state.terminated.reason}|{.items[0].status.containerStatuses[0].state.terminated.message}')
  [[ $out == $'Failed|1|Error|bye\n' || $out == 'Failed|1|Error|bye' ]] || { echo "got: $out" >&2; return 1; }
}
check "its pod shows exitCode 1, reason Error and message \"bye\"" fail_pod_ok

# ---- a pod whose command cannot start ----
"$K" run start-error --image=local/none --restart=Never --command -- /nonexistent/program >/dev/null
start_error_ok() {
  wait_until 30 bash -c "[[ \$('$K' get pod start-error -o jsonpath='{.status.phase}') == Failed ]]" || return 1
  [[ $("$K" get pod start-error -o 'jsonpath={.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}') == StartError/128 ]]
}
check "a pod whose command does not exist fails with StartError/128" start_error_ok

# ---- deleting a running pod kills its process ----
"$K" apply -f - >/dev/null <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: sleeper}
spec:
  backoffLimit: 6
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 30
      containers:
      - {name: main, image: local/sleep, command: ["sleep", "300"]}
EOF
sleeper_pid() { # <pod>: pid of its running process
  local id
  id=$("$K" get pod "$1" -o 'jsonpath={.status.containerStatuses[0].state.running}{"|"}{.status.containerStatuses[0].containerID}') || return 1
  [[ $id == *'|nodesim://'* ]] || return 1
  echo "${id##*nodesim://}"
}
pid_is_sleep() { [[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == "sleep 300 " ]]; }
pid_gone() { ! pgrep -x sleep | grep -qx "$1"; }
sleeper_pod() { "$K" get pods -l batch.kubernetes.io/job-name=sleeper --field-selector=status.phase=Running -o 'jsonpath={.items[0].metadata.name}'; }
pod1=""; pid1=""
if wait_until 30 bash -c "[[ -n \$('$K' get pods -l batch.kubernetes.io/job-name=sleeper --field-selector=status.phase=Running -o name) ]]"; then
  pod1=$(sleeper_pod); pid1=$(sleeper_pid "$pod1")
fi
check "Job pod running \"sleep 300\" is a live local process (pid ${pid1:-?})" pid_is_sleep "${pid1:-0}"
pod_delete_kills() {
  "$K" delete pod "$pod1" --wait=true --timeout=30s >/dev/null || return 1
  wait_until 10 pid_gone "$pid1"
}
check "deleting that pod kills the process (pgrep)" pod_delete_kills
job_delete_kills() {
  local pod2 pid2
  wait_until 30 bash -c "[[ -n \$('$K' get pods -l batch.kubernetes.io/job-name=sleeper --field-selector=status.phase=Running -o name) ]]" || return 1
  pod2=$(sleeper_pod); pid2=$(sleeper_pid "$pod2") || return 1
  [[ $pod2 != "$pod1" ]] && pid_is_sleep "$pid2" || return 1
  "$K" delete job sleeper --cascade=foreground --wait=true --timeout=60s >/dev/null || return 1
  wait_until 10 pid_gone "$pid2" && ! "$K" get pod "$pod2" >/dev/null 2>&1
}
check "the Job replaces the pod; deleting the Job kills the new process and removes the pod" job_delete_kills

# ---- env from a Secret, a ConfigMap and the downward API ----
"$K" create secret generic smoke-secret --from-literal=password=hunter2 --from-literal=token=t0k >/dev/null
"$K" create configmap smoke-config --from-literal=mode=fast --from-literal=level=3 >/dev/null
"$K" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: env-pod}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: local/sh
    command: ["/bin/sh", "-c"]
    args:
    - 'echo "env-pod says $PASSWORD"; printf "%s|%s|%s|%s|%s|%s|%s" "$PASSWORD" "$MODE" "$S_token" "$C_level" "$POD_NAME" "$POD_NS" "$COMBINED" > "$FLOWRUN_TERMINATION_MESSAGE_PATH"'
    envFrom:
    - {prefix: S_, secretRef: {name: smoke-secret}}
    - {prefix: C_, configMapRef: {name: smoke-config}}
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: smoke-secret, key: password}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: smoke-config, key: mode}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: COMBINED, value: "$(MODE)-$(POD_NAME)"}
EOF
env_ok() {
  "$K" wait --for=jsonpath='{.status.phase}'=Succeeded pod/env-pod --timeout=60s >/dev/null || return 1
  local msg
  msg=$("$K" get pod env-pod -o 'jsonpath={.status.containerStatuses[0].state.terminated.message}')
  [[ $msg == "hunter2|fast|t0k|3|env-pod|default|fast-env-pod" ]] || { echo "got: $msg" >&2; return 1; }
}
check "env from secretKeyRef, configMapKeyRef, envFrom, fieldRef and \$(VAR) reaches the process" env_ok
check "the process's stdout is in the per-pod log file" grep -q "env-pod says hunter2" "$STATE/logs/default_env-pod.log"

# ---- RBAC with a minted user ----
alice=$("$HERE/mint-user.sh" "$DIR" alice)
forbidden() { local err; err=$("$K" --kubeconfig="$1" get pods 2>&1 >/dev/null) && return 1; grep -qi forbidden <<<"$err"; }
check "minted user alice without RBAC gets Forbidden on kubectl get pods" forbidden "$alice"
"$K" create role pod-reader --verb=get,list,watch --resource=pods >/dev/null
"$K" create rolebinding alice-reads-pods --role=pod-reader --user=alice >/dev/null
check "with a RoleBinding alice can get pods" wait_until 10 "$K" --kubeconfig="$alice" get pods
bob=$("$HERE/mint-user.sh" "$DIR" bob flowrun-devs)
"$K" create rolebinding devs-read-pods --role=pod-reader --group=flowrun-devs >/dev/null
check "a minted user's group (O=) is honoured by RBAC" wait_until 10 "$K" --kubeconfig="$bob" get pods

# ---- ServiceAccount token ----
"$K" create serviceaccount robot >/dev/null
robot=$("$HERE/sa-token.sh" "$DIR" default robot 10m)
whoami_ok() { "$K" --kubeconfig="$robot" auth whoami -o 'jsonpath={.status.userInfo.username}' | grep -qx 'system:serviceaccount:default:robot'; }
check "a ServiceAccount token authenticates (auth whoami)" whoami_ok
check "the ServiceAccount without RBAC is forbidden" forbidden "$robot"
"$K" create rolebinding robot-reads-pods --role=pod-reader --serviceaccount=default:robot >/dev/null
check "with a RoleBinding the ServiceAccount token can get pods" wait_until 10 "$K" --kubeconfig="$robot" get pods

# ---- kube-apiserver restarted mid-run ----
restart_ok() {
  "$HERE/cluster.sh" restart-apiserver "$DIR" || return 1
  "$K" create job after-restart --image=local/true -- /bin/true >/dev/null || return 1
  "$K" wait --for=condition=Complete job/after-restart --timeout=60s >/dev/null
}
check "after restart-apiserver a new Job still completes (watches recover)" restart_ok

# ---- helm ----
helm_ok() {
  local chart=$DIR/chart
  mkdir -p "$chart/templates"
  printf 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n' >"$chart/Chart.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  k: v\n' >"$chart/templates/cm.yaml"
  HELM_CACHE_HOME=$DIR/helm/cache HELM_CONFIG_HOME=$DIR/helm/config HELM_DATA_HOME=$DIR/helm/data \
    "$BIN/helm" install smoke "$chart" --wait=watcher --timeout 60s >/dev/null || return 1
  [[ $("$K" get configmap smoke-cm -o 'jsonpath={.data.k}') == v ]]
}
check "helm $("$BIN/helm" version --template '{{.Version}}' 2>/dev/null) installs a chart" helm_ok

echo "smoke test took $((SECONDS - t0)) s" >&2
summary
[[ $fail == 0 ]]
