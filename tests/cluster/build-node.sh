#!/usr/bin/env bash
# Builds the real node's Kubernetes binaries from the Go module proxy:
#   kubelet, kube-scheduler
# through the wrapper Go module node/ (the same k8s.io/kubernetes pin and
# staging replaces as k8s/, plus the few modules kubelet needs besides).
# containerd, runc and the CNI plugins come from Debian (scripts/install-deps.sh).
#
# Output: ${FLOWRUN_CACHE:-$HOME/.cache/flowrun}/node-<version>-<hash>/bin/
#   <hash> covers node/go.mod, node/go.sum and this script. Kept apart from
#   build.sh's directory so the control plane's cache key never changes
#   because of the node. If both binaries are there, nothing is built.
# The bin dir is printed as the last line of stdout.
#
#   tests/cluster/build-node.sh                 build if needed, print bin dir
#   tests/cluster/build-node.sh --print-bin-dir print the bin dir, build nothing
#
# Environment: FLOWRUN_CACHE (cache root), GO (go binary). Checksums as in
# build.sh (default -mod=readonly, GOSUMDB verification).
# Cold: ~3 min on 2 cores when build.sh's Go build cache is warm (kubelet
# shares most packages with kube-apiserver), much longer on a cold Go cache.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mode=build
case "${1:-}" in
  "") ;;
  --print-bin-dir) mode=print ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac

K8S_VERSION=$(awk '($1=="require" && $2=="k8s.io/kubernetes"){print $3; exit} ($1=="k8s.io/kubernetes" && $2 ~ /^v/){print $2; exit}' "$HERE/node/go.mod")
[[ -n $K8S_VERSION ]] || { echo "build-node.sh: no k8s.io/kubernetes version in node/go.mod" >&2; exit 1; }
HASH=$(cd "$HERE" && cat node/go.mod node/go.sum build-node.sh | sha256sum | cut -c1-12)
OUT=${FLOWRUN_CACHE:-$HOME/.cache/flowrun}/node-$K8S_VERSION-$HASH
BIN=$OUT/bin
if [[ $mode == print ]]; then echo "$BIN"; exit 0; fi

BINS=(kubelet kube-scheduler)
complete() { local b; for b in "${BINS[@]}"; do [[ -x $BIN/$b ]] || return 1; done; }
if complete; then echo "$BIN"; exit 0; fi

if [[ -z ${GO:-} ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
export CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$BIN" "$OUT/tmp"
exec 9>"$OUT/.lock"
flock 9
if complete; then echo "$BIN"; exit 0; fi

log() { echo "build-node.sh: $*" >&2; }
total_start=$SECONDS
# The same version keys as build.sh (kubelet reports them in the Node's nodeInfo).
k8s_date=$(cd "$HERE/node" && "$GO" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
k8s_minor=${K8S_VERSION#v*.}; k8s_minor=${k8s_minor%%.*}
k8s_major=${K8S_VERSION#v}; k8s_major=${k8s_major%%.*}
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done
for cmd in "${BINS[@]}"; do
  [[ -x $BIN/$cmd ]] && continue
  start=$SECONDS
  log "building $cmd ..."
  (cd "$HERE/node" && nice -n 19 "$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  mv -f "$OUT/tmp/$cmd" "$BIN/$cmd"
  log "built $cmd in $((SECONDS - start)) s"
done
rmdir "$OUT/tmp" 2>/dev/null || true
echo "kubernetes $K8S_VERSION" >"$OUT/versions.txt"
log "done in $((SECONDS - total_start)) s"
echo "$BIN"
