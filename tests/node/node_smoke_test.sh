#!/usr/bin/env bash
# The real node (tests/cluster/node.sh): a cluster started with FLOWRUN_NODE=real gets a Ready
# Node run by a real kubelet v1.36.3 with containerd + runc, and pods behave as on a real cluster:
#   - Pod Security "restricted" is enforced by admission (a root pod is rejected) and a restricted
#     pod runs as uid 65532 without capabilities, with no_new_privs, seccomp and a read-only root;
#   - the kubelet calls its httpGet readiness and exec liveness probes; kubectl logs and exec work;
#   - a container's /dev/termination-log becomes state.terminated.message, with its exit code;
#   - a container over its memory limit is OOMKilled (exit 137) by the kernel;
#   - kubelet stopped and started again (node.sh stop-kubelet/start-kubelet): containers keep
#     running meanwhile and the pod is adopted again without a restart;
#   - pods get a ServiceAccount token and the cluster's CA (ServiceAccount admission, root CA
#     publisher) for in-cluster clients;
#   - the host is left as it was: kernel settings unchanged while the node runs, and after
#     `cluster.sh stop` no mount, bridge, iptables chain, cgroup or process of the node remains.
# Needs root (exit 77 = skipped otherwise). Last line "N passed, M failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../cluster/checks.sh
source "$ROOT/tests/cluster/checks.sh"
# shellcheck source=node_checks.sh
source "$HERE/node_checks.sh"
need_real_node_host || exit 77

host_snapshot >"${TMPDIR:-/tmp}/flowrun-node-smoke.before.$$"
BEFORE=${TMPDIR:-/tmp}/flowrun-node-smoke.before.$$
t0=$SECONDS
FLOWRUN_NODE=real test_cluster node-smoke
echo "     (control plane + real node up in $((SECONDS - t0)) s)"
trap '"$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true; rm -f "$BEFORE"
  if [[ ${FLOWRUN_TEST_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi' EXIT
ND=$DIR/cluster/node
SLOT=$(sed -n 's/^SLOT=//p' "$ND/node.env")

check "Node $FLOWRUN_NODE_NAME Ready, kubelet v1.36.3, runtime containerd" eq "True v1.36.3 containerd" bash -c \
  "'$K' get node '$FLOWRUN_NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}' | sed 's#://.*##'"

"$K" create namespace restricted >/dev/null
"$K" label namespace restricted pod-security.kubernetes.io/enforce=restricted >/dev/null
check "Pod Security restricted rejects a root pod" expect_reject "violates PodSecurity" -- \
  "$K" -n restricted run root --image=localhost/busybox:flowrun --image-pull-policy=Never --restart=Never -- true

# restricted_pod <name> <command> [extra container yaml]: a pod that passes "restricted".
restricted_pod() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: restricted}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: main
    image: localhost/busybox:flowrun
    imagePullPolicy: Never
    command: ["sh", "-c", $(printf '%s' "$2" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    resources:
      requests: {cpu: 50m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
${3:-}
EOF
}
jp() { "$K" -n restricted get pod "$1" -o "jsonpath=$2"; }
terminated() { [[ -n $(jp "$1" '{.status.containerStatuses[0].state.terminated.reason}') ]]; }

t=$SECONDS
restricted_pod term 'echo "{\"result\":\"done\"}" >/dev/termination-log; echo to-stdout; exit 3' | "$K" apply -f - >/dev/null
check "restricted pod ran to termination" wait_until 90 terminated term
echo "     (pod created -> terminated in $((SECONDS - t)) s)"
check "... exit code 3 and the termination message from /dev/termination-log" eq '3 Error {"result":"done"}' \
  jp term '{.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.message}'
check "... kubectl logs shows its stdout" eq to-stdout "$K" -n restricted logs term

restricted_pod probed 'mkdir -p /tmp/www && echo ok >/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www' "
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
    livenessProbe:
      exec: {command: [\"true\"]}
      periodSeconds: 2
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]" | "$K" apply -f - >/dev/null
ready() { [[ $(jp probed '{.status.conditions[?(@.type=="Ready")].status}') == True ]]; }
check "kubelet's httpGet readiness probe makes the pod Ready" wait_until 90 ready
check "... with a pod IP on the node's bridge" bash -c "[[ \$('$K' -n restricted get pod probed -o jsonpath='{.status.podIP}') == 10.244.$SLOT.* ]]"
check "kubectl exec: uid 65532, no capabilities, no_new_privs, seccomp filter" eq "65532 0000000000000000 1 2" \
  "$K" -n restricted exec probed -- sh -c 'echo $(id -u) $(awk "/^CapEff/{print \$2}" /proc/self/status) $(awk "/^NoNewPrivs/{print \$2}" /proc/self/status) $(awk "/^Seccomp:/{print \$2}" /proc/self/status)'
check "... and a read-only root filesystem" expect_reject "Read-only file system" -- \
  "$K" -n restricted exec probed -- touch /x
check "... the pod has a ServiceAccount token and the cluster CA (kube-root-ca.crt)" bash -c \
  "'$K' -n restricted exec probed -- sh -c 'test -s /var/run/secrets/kubernetes.io/serviceaccount/token && cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt' | cmp -s - '$DIR/cluster/pki/ca.crt'"
check "... and the kubernetes Service in its environment (10.0.0.1:443)" eq "10.0.0.1 443" \
  "$K" -n restricted exec probed -- sh -c 'echo $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT'
check "... which connects to the API server through 10.0.0.1:443 (the DNAT of node.sh)" bash -c \
  "'$K' -n restricted exec probed -- sh -c 'echo | nc -w 3 10.0.0.1 443 >/dev/null && echo open' | grep -qx open"

restricted_pod oom 'exec dd if=/dev/zero of=/dev/null bs=256M count=1' | "$K" apply -f - >/dev/null
check "a container over its 64Mi limit is OOMKilled (exit 137)" bash -c \
  "for i in \$(seq 450); do r=\$('$K' -n restricted get pod oom -o jsonpath='{.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}'); [[ -n \${r% } ]] && break; sleep 0.2; done; [[ \$r == 'OOMKilled 137' ]] || { echo \"got '\$r'\" >&2; exit 1; }"

NODE_SH=$ROOT/tests/cluster/node.sh
check "node.sh stop-kubelet: kubelet gone, the pod's container still runs in containerd" bash -c \
  "'$NODE_SH' stop-kubelet '$DIR/cluster' && ! curl -fsS http://127.0.0.1:\$(sed -n 's/^HEALTHZ_PORT=//p' '$ND/node.env')/healthz >/dev/null 2>&1 &&
   '$NODE_SH' ctr '$DIR/cluster' tasks ls | grep -q RUNNING"
check "node.sh start-kubelet: Node Ready again, the pod kept (Running, 0 restarts)" bash -c \
  "'$NODE_SH' start-kubelet '$DIR/cluster' && for i in \$(seq 300); do
     [[ \$('$K' -n restricted get pod probed -o jsonpath='{.status.phase} {.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type==\"Ready\")].status}') == 'Running 0 True' ]] && exit 0; sleep 0.2; done; exit 1"

check "host kernel settings unchanged while the node runs" diff <(host_sysctls) <(grep '^sysctl ' "$BEFORE")
check "no mount of the node is visible on the host" bash -c "! grep -F '$DIR' /proc/self/mountinfo"

t=$SECONDS
check "cluster.sh stop" "$_TEST_CLUSTER_SH" stop "$DIR/cluster"
echo "     (stopped in $((SECONDS - t)) s)"
check "after stop: no process of the node is left" bash -c "! grep -lsxF 'FLOWRUN_NODE_PROC=$ND' --null-data /proc/[0-9]*/environ"
check "after stop: no bridge frn$SLOT, no nat chain FLOWRUN-NODE-$SLOT" bash -c \
  "! ip link show frn$SLOT >/dev/null 2>&1 && ! iptables -w -t nat -S | grep -q 'FLOWRUN-NODE-$SLOT'"
check "after stop: no cgroup /flowrun-node-$SLOT" bash -c "! ls -d /sys/fs/cgroup/*/flowrun-node-$SLOT 2>/dev/null | grep -q ."
check "after stop: no mount left, the node's directory removed" bash -c "! grep -F '$DIR' /proc/self/mountinfo && [[ ! -e '$ND' ]]"
check "after stop: host kernel settings, mount points and /var, /run entries as before" diff <(host_snapshot) "$BEFORE"

summary
[[ $fail -eq 0 ]]
