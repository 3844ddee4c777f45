#!/usr/bin/env bash
# The krew package of `kubectl flowrun`: the archive krew installs and a manifest that carries the
# archive's real sha256 (plugins/flowrun.yaml is the template: its sha256 is a placeholder a release
# fills in with this script).
#
#   scripts/krew-package.sh <build dir> <out dir> [archive uri]
#
# <out dir> gets
#   kubectl-flowrun-linux-amd64.tar.gz   bin/kubectl-flowrun, bin/kubectl_complete-flowrun
#                                        (sorted, owner 0, mtime 0, gzip -n: the same bytes for the
#                                        same build)
#   flowrun.yaml                         the manifest: spec.version from CMakeLists.txt's project
#                                        version, the uri (default: the release URL) and the sha256
# and prints both paths. Install the result locally with
#   kubectl krew install --manifest=<out>/flowrun.yaml --archive=<out>/kubectl-flowrun-linux-amd64.tar.gz
# (tests/plugin/krew_test.sh does exactly that with a real krew).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "krew-package.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: scripts/krew-package.sh <build dir> <out dir> [archive uri]"
BUILD=$(cd "$1" && pwd) || die "no build dir $1"
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
plugin=$BUILD/plugin/kubectl-flowrun
[[ -x $plugin ]] || die "$plugin is not built (FLOWRUN_TARGETS=kubectl-flowrun scripts/build.sh)"
version=$(sed -n 's/^project(flowrun VERSION \([0-9][0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[[ -n $version ]] || die "no project version in CMakeLists.txt"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
install -m 755 "$plugin" "$stage/bin/kubectl-flowrun"
install -m 755 "$ROOT/plugin/cli/kubectl_complete-flowrun" "$stage/bin/kubectl_complete-flowrun"
archive=$OUT/kubectl-flowrun-linux-amd64.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -cf - bin | gzip -n -9 >"$archive"
sha=$(sha256sum "$archive" | cut -d' ' -f1)
uri=${3:-https://github.com/flowrun/flowrun/releases/download/v$version/kubectl-flowrun-linux-amd64.tar.gz}

# The template's three release fields, each on a line of its own (checked: a template that changed
# shape fails here instead of yielding a manifest with the placeholder).
sed -e "s|^  version: v[0-9.]*\$|  version: v$version|" \
  -e "s|^    uri: .*|    uri: $uri|" \
  -e "s|^    sha256: .*|    sha256: \"$sha\"|" "$ROOT/plugins/flowrun.yaml" >"$OUT/flowrun.yaml"
grep -qx "    sha256: \"$sha\"" "$OUT/flowrun.yaml" || die "plugins/flowrun.yaml has no '    sha256:' line"
grep -qx "    uri: $uri" "$OUT/flowrun.yaml" || die "plugins/flowrun.yaml has no '    uri:' line"
grep -qx "  version: v$version" "$OUT/flowrun.yaml" || die "plugins/flowrun.yaml has no '  version: v…' line"
echo "$archive"
echo "$OUT/flowrun.yaml"
