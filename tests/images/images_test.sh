#!/usr/bin/env bash
# flowrun's container images (images/Dockerfile): builds both with images/build.sh from the
# binaries of <build dir> (--prebuilt; the Dockerfile's builder stages compile
# from source instead, images/README.md), then proves with buildah (podman
# cannot run containers here):
#   - both run as uid 65532 (non-root) with the documented entrypoint;
#   - every binary finds its shared libraries (ldd in the image);
#   - the agent image's research-agent starts and fails cleanly without its
#     environment (exit 2, config_error naming FLOWRUN_RUN_UID); flowrunctl runs;
#   - the Python agent runtime image: uid 65532, entrypoint python3 -m flowrun run,
#     flowrun._core's libraries found, the Python research agent fails cleanly likewise;
#   - the Helm chart's migrate hook command (from helm template) migrates a
#     private PostgreSQL from the agent image, idempotently;
#   - the controller image's flowrun-controller, started inside the image with
#     the exact flags of the Helm chart's Deployment against a real
#     kube-apiserver (tests/cluster) and a private PostgreSQL, answers /healthz,
#     /readyz and /metrics, holds the chart's Lease and exits 0 on SIGTERM.
# Usage: images_test.sh <cmake build dir>. Last line "N passed, M failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:?usage: images_test.sh <cmake build dir>}" && pwd)
# shellcheck source=../cluster/checks.sh
source "$ROOT/tests/cluster/checks.sh"
b() { buildah --storage-driver vfs "$@"; }
VERSION=test
OUT=$(mktemp "${TMPDIR:-/tmp}/flowrun-images-out.XXXXXX") OUT0=$OUT # test_cluster sets another
trap cleanup_images EXIT

containers=()
PG=""
cleanup_images() {
  local c
  rm -f "$OUT0"
  for c in "${containers[@]}"; do b rm "$c" >/dev/null 2>&1 || true; done
  # The test's images go (their cached parent layers stay for the next run).
  b rmi "flowrun/flowrun-controller:$VERSION" "flowrun/research-agent:$VERSION" "flowrun/agent-runtime:$VERSION" \
    "flowrun/python-agent-runtime:$VERSION" >/dev/null 2>&1
  [[ -n $PG ]] && "$ROOT/scripts/pg-local.sh" stop "$PG" >/dev/null 2>&1
  return 0
}

start=$SECONDS
check "images/build.sh --prebuilt: the controller, agent and Python agent images build" bash -c \
  "'$ROOT/images/build.sh' --prebuilt '$BUILD' --version $VERSION controller agent python-agent >'${TMPDIR:-/tmp}/flowrun-images-build.log' 2>&1 ||
   { tail -40 '${TMPDIR:-/tmp}/flowrun-images-build.log' >&2; exit 1; }"
echo "     (built in $((SECONDS - start)) s)"

# image_config <image> <go template>
image_config() { b inspect --type image --format "$2" "$1"; }
check "controller image: user 65532, entrypoint flowrun-controller" eq "65532:65532 [/usr/local/bin/flowrun-controller]" \
  image_config "flowrun/flowrun-controller:$VERSION" '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}'
check "agent image: user 65532, entrypoint research-agent" eq "65532:65532 [/usr/local/bin/research-agent]" \
  image_config "flowrun/research-agent:$VERSION" '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}'
check "agent image is also tagged flowrun/agent-runtime" eq "65532:65532" \
  image_config "flowrun/agent-runtime:$VERSION" '{{.OCIv1.Config.User}}'

ctl=$(b from "flowrun/flowrun-controller:$VERSION") && containers+=("$ctl")
agent=$(b from "flowrun/research-agent:$VERSION") && containers+=("$agent")
# run_in <container> <command...>: runs in the image (chroot isolation, host network)
run_in() { local c=$1; shift; b run --isolation chroot "$c" -- "$@"; }
# libs_found <container> <binary...>: ldd in the image resolves every library
libs_found() {
  local c=$1 f; shift
  for f in "$@"; do
    run_in "$c" ldd "$f" >"$OUT" 2>&1 || { cat "$OUT" >&2; return 1; }
    if grep 'not found' "$OUT" >&2; then return 1; fi
  done
}
check "controller image: flowrun-controller finds every shared library" libs_found "$ctl" /usr/local/bin/flowrun-controller
check "agent image: research-agent and flowrunctl find every shared library" \
  libs_found "$agent" /usr/local/bin/research-agent /usr/local/bin/flowrunctl
check "agent image: flowrunctl runs" expect_ok run_in "$agent" /usr/local/bin/flowrunctl --help
check "agent image: research-agent without FLOWRUN_RUN_UID exits 2 with config_error" bash -c \
  "$(declare -f b); b run --isolation chroot --env FLOWRUN_TERMINATION_MESSAGE_PATH=/tmp/term '$agent' -- \
     sh -c '/usr/local/bin/research-agent 2>/tmp/err; echo exit=\$?; cat /tmp/err /tmp/term' >'$OUT.agent' 2>&1;
   grep -q '^exit=2' '$OUT.agent' && grep -q config_error '$OUT.agent' && grep -q FLOWRUN_RUN_UID '$OUT.agent' ||
   { cat '$OUT.agent' >&2; exit 1; }"

# The Python agent runtime (the SDK's wheel on Debian's python3), with the Python research agent.
check "python agent image: user 65532, entrypoint python3 -m flowrun run" eq "65532:65532 [python3 -m flowrun run]" \
  image_config "flowrun/python-agent-runtime:$VERSION" '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}'
pyagent=$(b from "flowrun/python-agent-runtime:$VERSION") && containers+=("$pyagent")
check "python agent image: flowrun._core finds every shared library" bash -c \
  "$(declare -f b); b run --isolation chroot '$pyagent' -- sh -c 'ldd /opt/flowrun/python/lib/python3*/site-packages/flowrun/_core*.so' >'$OUT' 2>&1 &&
   ! grep 'not found' '$OUT' >&2 || { cat '$OUT' >&2; exit 1; }"
check "python agent image: the research agent without FLOWRUN_RUN_UID exits 2 with config_error" bash -c \
  "$(declare -f b); b run --isolation chroot --volume '$ROOT/examples/research-agent-py:/app:ro' \
     --env FLOWRUN_TERMINATION_MESSAGE_PATH=/tmp/term '$pyagent' -- \
     sh -c 'python3 -m flowrun run agent:research_agent 2>/tmp/err; echo exit=\$?; cat /tmp/err /tmp/term' >'$OUT.py' 2>&1;
   grep -q '^exit=2' '$OUT.py' && grep -q config_error '$OUT.py' && grep -q FLOWRUN_RUN_UID '$OUT.py' ||
   { cat '$OUT.py' >&2; exit 1; }"

# The controller in its image against a real control plane and PostgreSQL.
test_cluster images
trap 'cleanup_images; "$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true
  if [[ ${FLOWRUN_TEST_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi' EXIT
"$K" apply -f "$ROOT/crds/" >/dev/null
PG=$DIR/pg
chmod 755 "$DIR"
if ! URL=$("$ROOT/scripts/pg-local.sh" start "$PG" 2>"$DIR/pg.err" | tail -n1); then
  cat "$DIR/pg.err" >&2; nok "pg-local.sh start"
fi
# The kubeconfig readable by uid 65532 inside the image (the file holds the admin's key: test only).
install -m 0644 "$DIR/cluster/admin.kubeconfig" "$DIR/kubeconfig"
sed -i "s#$DIR/cluster/pki#/kube/pki#g" "$DIR/kubeconfig"
mkdir -p "$DIR/kube-pki"
install -m 0644 "$DIR/cluster/pki/ca.crt" "$DIR/cluster/pki/admin.crt" "$DIR/cluster/pki/admin.key" "$DIR/kube-pki/"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) mport=$(free_port)
# The exact flags of the Helm chart's Deployment (ports moved to free ones: the image shares the
# host's network here), plus the kubeconfig a pod would not need. Without the read API: its serving
# certificate is a Secret the chart mounts into the pod, which a bare container run does not have
# (the API is proven by tests/query and, in the chart's pods, by tests/node).
"$K" create namespace flowrun-system >/dev/null
export HELM_CACHE_HOME=$DIR/helm/cache HELM_CONFIG_HOME=$DIR/helm/config HELM_DATA_HOME=$DIR/helm/data
mapfile -t chart_args < <("$BIN/helm" template flowrun "$ROOT/helm/flowrun" -n flowrun-system \
  --set controller.healthPort="$port" --set metrics.port="$mport" --set queryApi.enabled=false |
  "$ROOT/tests/helm/manifests.py" get Deployment flowrun-controller spec.template.spec.containers.0.args |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))')
check "the chart's controller flags rendered (${#chart_args[@]})" test "${#chart_args[@]}" -ge 10
# The chart's migrate hook as its Job runs it: the agent image, the command from helm template, the
# URL from the environment (as the Secret gives it).
mapfile -t migrate_cmd < <("$BIN/helm" template flowrun "$ROOT/helm/flowrun" -n flowrun-system |
  "$ROOT/tests/helm/manifests.py" get Job flowrun-migrate spec.template.spec.containers.0.command |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))')
migrations() { psql "$URL" -Atc 'SELECT count(*) FROM flowrun.schema_migrations' 2>/dev/null; }
check "agent image: the chart's migrate hook (${migrate_cmd[*]}) migrates the empty database" bash -c \
  "$(declare -f b); b run --isolation chroot --env FLOWRUN_DATABASE_URL='$URL' '$agent' -- ${migrate_cmd[*]} >'$OUT' 2>&1 ||
   { cat '$OUT' >&2; exit 1; }"
n_migrations=$(migrations)
check "... every migration applied ($n_migrations)" test "${n_migrations:-0}" -ge 1
check "... and a second run (the next upgrade's hook) changes nothing" bash -c \
  "$(declare -f b); b run --isolation chroot --env FLOWRUN_DATABASE_URL='$URL' '$agent' -- ${migrate_cmd[*]} >'$OUT' 2>&1 ||
   { cat '$OUT' >&2; exit 1; }; [[ \$(psql '$URL' -Atc 'SELECT count(*) FROM flowrun.schema_migrations') == '$n_migrations' ]]"
# buildah itself (not the b function) in the background, so that $! is buildah's pid.
buildah --storage-driver vfs run --isolation chroot --env FLOWRUN_DATABASE_URL="$URL" \
  --volume "$DIR/kubeconfig:/kube/config:ro" --volume "$DIR/kube-pki:/kube/pki:ro" "$ctl" -- \
  /usr/local/bin/flowrun-controller --kubeconfig /kube/config "${chart_args[@]}" \
  >"$DIR/controller.log" 2>&1 &
ctl_pid=$!
check "controller image, with the chart's flags: /healthz answers 200" \
  wait_until 60 curl -fsS "http://127.0.0.1:$port/healthz"
check "... and /readyz (informers synced, leading on the chart's Lease name)" \
  wait_until 60 curl -fsS "http://127.0.0.1:$port/readyz"
check "... and /metrics on the chart's metrics port" bash -c \
  "curl -fsS 'http://127.0.0.1:$mport/metrics' | grep -q '^# TYPE '"
check "... holding the Lease flowrun-system/flowrun-controller" bash -c \
  "[[ -n \$('$K' -n flowrun-system get lease flowrun-controller -o jsonpath='{.spec.holderIdentity}') ]]"
# buildah run does not pass SIGTERM on (it kills the process), as a kubelet would: signal the
# controller itself, found among buildah's descendants, and expect buildah to report its exit 0.
descendants() { local c; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
for p in $(descendants "$ctl_pid"); do
  [[ $(cat /proc/"$p"/comm 2>/dev/null) == flowrun-control* ]] && kill -TERM "$p"
done
for ((i = 0; i < 150; i++)); do kill -0 "$ctl_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$ctl_pid" 2>/dev/null && kill -KILL "$ctl_pid"
wait "$ctl_pid"
rc=$?
check "... and exits 0 on SIGTERM (drained shutdown)" eq 0 echo "$rc"
[[ $fail -eq 0 ]] || tail -20 "$DIR/controller.log" >&2

summary
[[ $fail -eq 0 ]]
