#!/usr/bin/env bash
# Builds the test control plane's binaries from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kubectl, helm, nodesim
# through the wrapper Go modules in this folder (k8s/, etcd/, helm/, nodesim/).
#
# Output: ${FLOWRUN_CACHE:-$HOME/.cache/flowrun}/k8s-<version>-<hash>/bin/
#   <hash> covers the wrapper modules' go.mod/go.sum files and this script, so
#   a change to any pin gives a new directory. nodesim is small and keyed
#   separately (a stamp file with the hash of its sources) so editing it only
#   rebuilds nodesim.
# If every binary is already there, nothing is built (a warm run is instant).
# The bin dir is printed as the last line of stdout.
#
#   tests/cluster/build.sh                 build if needed, print bin dir
#   tests/cluster/build.sh --print-bin-dir print the bin dir, build nothing
#
# Environment: FLOWRUN_CACHE (cache root), GO (go binary; default: `go` in
# PATH, else /usr/local/go/bin/go).
#
# go.sum pins every module; the build runs in the default -mod=readonly mode
# and verifies downloads against the checksum database (GOSUMDB). On a
# machine that reaches the module proxy but not the checksum database, run with
# GONOSUMDB=* (or GOFLAGS=-mod=mod if go.sum must be regenerated): this script
# does not set either for you.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mode=build
case "${1:-}" in
  "") ;;
  --print-bin-dir) mode=print ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac

# Version of a module required by a wrapper go.mod (single-line or block form).
modver() { awk -v m="$2" '($1==m && $2 ~ /^v/){print $2; exit} ($1=="require" && $2==m){print $3; exit}' "$1"; }

K8S_VERSION=$(modver "$HERE/k8s/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(modver "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3)
HELM_VERSION=$(modver "$HERE/helm/go.mod" helm.sh/helm/v4)
if [[ -z $K8S_VERSION || -z $ETCD_VERSION || -z $HELM_VERSION ]]; then
  echo "build.sh: cannot read versions from the wrapper go.mod files" >&2; exit 1
fi

HASH=$(cd "$HERE" && cat k8s/go.mod k8s/go.sum etcd/go.mod etcd/go.sum helm/go.mod helm/go.sum build.sh |
  sha256sum | cut -c1-12)
CACHE_ROOT=${FLOWRUN_CACHE:-$HOME/.cache/flowrun}
OUT=$CACHE_ROOT/k8s-$K8S_VERSION-$HASH
BIN=$OUT/bin
NODESIM_HASH=$(cd "$HERE/nodesim" && sha256sum go.mod go.sum ./*.go | sha256sum | cut -c1-16)

if [[ $mode == print ]]; then echo "$BIN"; exit 0; fi

MAIN_BINS=(etcd kube-apiserver kube-controller-manager kubectl helm)
complete() {
  local b
  for b in "${MAIN_BINS[@]}" nodesim; do [[ -x $BIN/$b ]] || return 1; done
  [[ -f $BIN/.nodesim-$NODESIM_HASH ]]
}
if complete; then echo "$BIN"; exit 0; fi

if [[ -z ${GO:-} ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go); else GO=/usr/local/go/bin/go; fi
fi
export CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$BIN" "$OUT/tmp"

# One builder at a time per output dir; a second caller waits, then finds it done.
exec 9>"$OUT/.lock"
flock 9
if complete; then echo "$BIN"; exit 0; fi

log() { echo "build.sh: $*" >&2; }
gobuild() { # <module dir> <ldflags> <output name> <package>
  local dir=$1 ldflags=$2 name=$3 pkg=$4 start=$SECONDS
  log "building $name ($pkg) ..."
  (cd "$HERE/$dir" && nice -n 19 "$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/tmp/$name" "$pkg")
  mv -f "$OUT/tmp/$name" "$BIN/$name"
  log "built $name in $((SECONDS - start)) s"
}

total_start=$SECONDS
"$GO" version >&2

# k8s.io/kubernetes: the same version keys hack/lib/version.sh sets, for both
# client-go and component-base, so /version and `kubectl version` are right.
# The proxy does not carry the git commit (gitCommit stays empty); buildDate is
# the release's commit time as the proxy reports it.
k8s_date=$(cd "$HERE/k8s" && "$GO" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
k8s_minor=${K8S_VERSION#v*.}; k8s_minor=${k8s_minor%%.*}
k8s_major=${K8S_VERSION#v}; k8s_major=${k8s_major%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done

[[ -x $BIN/etcd ]] || gobuild etcd "-s -w" etcd go.etcd.io/etcd/server/v3
for cmd in kube-apiserver kube-controller-manager kubectl; do
  [[ -x $BIN/$cmd ]] || gobuild k8s "$k8s_ldflags" "$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
[[ -x $BIN/helm ]] || gobuild helm "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  helm helm.sh/helm/v4/cmd/helm
if [[ ! -x $BIN/nodesim || ! -f $BIN/.nodesim-$NODESIM_HASH ]]; then
  rm -f "$BIN"/.nodesim-*
  gobuild nodesim "-s -w" nodesim .
  touch "$BIN/.nodesim-$NODESIM_HASH"
fi
rmdir "$OUT/tmp" 2>/dev/null || true
cat >"$OUT/versions.txt" <<EOF
kubernetes $K8S_VERSION
etcd $ETCD_VERSION
helm $HELM_VERSION
EOF
log "done in $((SECONDS - total_start)) s"
echo "$BIN"
