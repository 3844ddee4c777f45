#!/usr/bin/env bash
# The krew manifest, proven with a real krew (v0.4.3, built from the Go module proxy and cached like
# the control plane's binaries): scripts/krew-package.sh packs the built plugin and writes a manifest
# with the archive's sha256; `krew install --manifest --archive` accepts it (krew validates the
# manifest: name, platforms, files) and puts kubectl-flowrun where `kubectl plugin list` finds it;
# `kubectl flowrun` runs through kubectl; the documented completion link makes
# `kubectl flowrun <TAB>` work; an archive whose sha256 does not match is refused (the template's
# placeholder can never install); `krew uninstall` removes it. No cluster needed.
#   tests/plugin/krew_test.sh <cmake build dir>      (ctest -L plugin)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:?usage: krew_test.sh <cmake build dir>}" && pwd)
# shellcheck source=../cluster/checks.sh
source "$ROOT/tests/cluster/checks.sh"

KREW_VERSION=v0.4.3
CACHE=${FLOWRUN_CACHE:-$HOME/.cache/flowrun}/krew-$KREW_VERSION
DIR=$(mktemp -d "${TMPDIR:-/tmp}/flowrun-krew.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
OUT=$DIR/out

# kubectl: the control plane's (tests/cluster/build.sh builds it once and caches it).
BIN=$("$ROOT/tests/cluster/build.sh" | tail -n1)
[[ -x $BIN/kubectl ]] || { nok "tests/cluster/build.sh gave no kubectl"; summary; exit 1; }

# krew, once per machine (a second caller waits on the lock, then finds it built).
build_krew() {
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.lock"
  flock 8
  if [[ ! -x $CACHE/krew ]]; then
    local go=go
    command -v go >/dev/null 2>&1 || go=/usr/local/go/bin/go
    CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$CACHE/tmp" nice -n 19 "$go" install -trimpath -ldflags "-s -w" \
      "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" >"$DIR/krew-build.log" 2>&1 || { cat "$DIR/krew-build.log" >&2; return 1; }
    mv -f "$CACHE/tmp/krew" "$CACHE/krew"
  fi
  exec 8>&-
}
check "krew $KREW_VERSION built from the Go module proxy (cached in $CACHE)" build_krew
KREW=$CACHE/krew
export KREW_ROOT=$DIR/krew-root
export PATH=$KREW_ROOT/bin:$BIN:$PATH
unset KUBECONFIG
# krew's list/uninstall want a local plugin index; `krew update` would clone krew-index from GitHub.
# An empty git index is what a machine without the network has (manifest installs show as detached).
mkdir -p "$KREW_ROOT/index/default/plugins"
git -C "$KREW_ROOT/index/default" init -q

check "scripts/krew-package.sh: archive and manifest" expect_ok "$ROOT/scripts/krew-package.sh" "$BUILD" "$DIR/pkg"
ARCHIVE=$DIR/pkg/kubectl-flowrun-linux-amd64.tar.gz
MANIFEST=$DIR/pkg/flowrun.yaml
check "... the archive holds exactly the two files the manifest names" eq \
  "bin/kubectl-flowrun bin/kubectl_complete-flowrun" bash -c "tar -tzf '$ARCHIVE' | grep -v '/\$' | sort | xargs"
check "... the manifest carries the archive's sha256, not the placeholder" eq \
  "    sha256: \"$(sha256sum "$ARCHIVE" | cut -d' ' -f1)\"" grep '^    sha256:' "$MANIFEST"
check "... the same build packs to the same bytes (reproducible archive)" bash -c \
  "'$ROOT/scripts/krew-package.sh' '$BUILD' '$DIR/pkg2' >/dev/null && cmp -s '$ARCHIVE' '$DIR/pkg2/kubectl-flowrun-linux-amd64.tar.gz'"

# The placeholder sha256 of plugins/flowrun.yaml (what an unreleased manifest says) is refused.
check "krew refuses the archive under the template's placeholder sha256" expect_reject "checksum does not match" -- \
  "$KREW" install --manifest="$ROOT/plugins/flowrun.yaml" --archive="$ARCHIVE"
check "... and installs nothing" bash -c "[[ ! -e '$KREW_ROOT/bin/kubectl-flowrun' ]]"

check "krew install --manifest --archive" expect_ok "$KREW" install --manifest="$MANIFEST" --archive="$ARCHIVE"
check "... krew lists it (installed from a manifest: detached/flowrun)" bash -c "'$KREW' list 2>/dev/null | grep -qxE '(detached/)?flowrun'"
check "... kubectl plugin list finds kubectl-flowrun in krew's bin" bash -c \
  "kubectl plugin list 2>/dev/null | grep -qx '$KREW_ROOT/bin/kubectl-flowrun'"
check "... kubectl flowrun --help runs the installed plugin (its commands listed)" bash -c \
  "kubectl flowrun --help | grep -q replay && kubectl flowrun --help | grep -q answer"
# krew links only the platform's one `bin`; completion needs kubectl_complete-flowrun on PATH too
# (docs/kubectl-flowrun.md gives this link).
check "the documented completion link: kubectl_complete-flowrun beside the plugin" \
  ln -s "$KREW_ROOT/store/flowrun/$(sed -n 's/^  version: //p' "$MANIFEST")/kubectl_complete-flowrun" \
  "$KREW_ROOT/bin/kubectl_complete-flowrun"
check "... kubectl completes 'kubectl flowrun <TAB>' with the plugin's subcommands" bash -c \
  "kubectl __complete flowrun '' 2>/dev/null | grep -q '^status'"
rm -f "$KREW_ROOT/bin/kubectl_complete-flowrun"

check "krew uninstall flowrun" expect_ok "$KREW" uninstall flowrun
check "... kubectl-flowrun is gone from krew's bin and store" bash -c \
  "[[ ! -e '$KREW_ROOT/bin/kubectl-flowrun' && ! -e '$KREW_ROOT/store/flowrun' ]]"

summary
[[ $fail -eq 0 ]]
