#!/usr/bin/env bash
# Builds flowrun's container images with buildah (no Docker engine) from images/Dockerfile: the
# controller (target controller) and the agent runtime (target agent), by default; the chart's
# bundled database (target postgresql, flowrun/postgresql:<tag>) and the Python research agent
# (target research-agent-py, flowrun/research-agent-py:<tag>: examples/research-agent-py on the
# python-agent image, which it implies and is built FROM) when named.
#
#   images/build.sh [--prebuilt <cmake build dir>] [--version <tag>] [controller|agent|python-agent|research-agent-py|postgresql]...
#
# --prebuilt: take flowrun-controller, research-agent and flowrunctl from a build tree compiled on
#   this machine (Debian 12, like the image) instead of compiling them inside the builder stage
#   (BINARIES=prebuilt). CI uses it: its test run already compiled these binaries; compiling them
#   again inside the image would add 10-20 minutes on 2 cores.
# --version: the image tag (default: the chart's appVersion).
#
# The Dockerfile names a pinned debian:bookworm-slim from Docker Hub. Where no registry is
# reachable, the base is made locally with debootstrap (Debian 12 minbase) and passed as BASE;
# the debootstrap tree is cached as a tarball in ${FLOWRUN_CACHE:-~/.cache/flowrun}/images/ and the
# base image stays in buildah's storage, so later runs only build the flowrun layers.
# Set FLOWRUN_IMAGE_BASE=<image> to use another base (e.g. a registry's debian:bookworm-slim).
#
# Prints the built image names, one per line. Exit status non-zero on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE=${FLOWRUN_CACHE:-$HOME/.cache/flowrun}/images
LOCAL_BASE=localhost/flowrun-base:bookworm

die() { echo "images/build.sh: $*" >&2; exit 1; }
log() { echo "images/build.sh: $*" >&2; }
b() { buildah --storage-driver vfs "$@"; }

prebuilt="" version="" targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --prebuilt) prebuilt=$(cd "${2:?--prebuilt needs a build dir}" && pwd); shift 2 ;;
    --version) version=${2:?--version needs a tag}; shift 2 ;;
    controller|agent|python-agent|research-agent-py|postgresql) targets+=("$1"); shift ;;
    *) die "unknown argument: $1 (usage: images/build.sh [--prebuilt <build dir>] [--version <tag>] [controller|agent|python-agent|research-agent-py|postgresql]...)" ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(controller agent)
# research-agent-py is built FROM the python-agent image of this run: that one first.
if [[ " ${targets[*]} " == *" research-agent-py "* ]]; then
  rest=()
  for t in "${targets[@]}"; do [[ $t == python-agent ]] || rest+=("$t"); done
  targets=(python-agent "${rest[@]}")
fi
[[ -n $version ]] || version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/helm/flowrun/Chart.yaml")
[[ -n $version ]] || die "no version (helm/flowrun/Chart.yaml appVersion)"
command -v buildah >/dev/null || die "buildah is not installed (scripts/install-deps.sh)"

# ---- the base ----
base=${FLOWRUN_IMAGE_BASE:-}
if [[ -z $base ]]; then
  base=$LOCAL_BASE
  if ! b inspect --type image "$LOCAL_BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh)"
    mkdir -p "$CACHE"
    tarball=$CACHE/debian-bookworm-minbase.tar
    if [[ ! -s $tarball ]]; then
      log "debootstrap Debian 12 (minbase) into $CACHE (once; ~1 min)"
      tree=$(mktemp -d "$CACHE/rootfs.XXXXXX")
      debootstrap --variant=minbase --include=ca-certificates bookworm "$tree" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$tree"; die "debootstrap failed"; }
      # Like the official slim images: no apt lists or caches in the base.
      rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin
      tar -C "$tree" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$tree"
    fi
    log "importing the base into buildah as $LOCAL_BASE"
    c=$(b from scratch)
    m=$(b mount "$c")
    tar -C "$m" -xf "$tarball"
    b umount "$c" >/dev/null
    b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
    b commit --rm "$c" "$LOCAL_BASE" >/dev/null
  fi
fi

# ---- the images ----
ctx=$ROOT ignore=$HERE/Dockerfile.dockerignore binaries=source
if [[ -n $prebuilt ]]; then
  # A context of its own holding only the binaries: nothing else is sent to the build.
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/flowrun-images.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/prebuilt"
  files=()
  for t in "${targets[@]}"; do
    case $t in
      controller) files+=(controller/flowrun-controller) ;;
      agent|python-agent) files+=(examples/research-agent runtime-lib/flowrunctl) ;;
      postgresql) mkdir -p "$ctx/images/postgresql"; cp "$HERE/postgresql/entrypoint.sh" "$ctx/images/postgresql/" ;;
      research-agent-py) mkdir -p "$ctx/examples/research-agent-py"; cp "$ROOT/examples/research-agent-py/agent.py" "$ctx/examples/research-agent-py/" ;;
    esac
  done
  if [[ " ${targets[*]} " == *" python-agent "* ]]; then
    # The SDK as the build tree holds it (<build>/python/flowrun: the _core the pytest suite ran,
    # configured with -DFLOWRUN_PYTHON, links resolved) and the wheels of its dependencies.
    [[ -f $prebuilt/python/flowrun/__init__.py ]] && compgen -G "$prebuilt/python/flowrun/_core*.so" >/dev/null ||
      die "--prebuilt $prebuilt: no python/flowrun with _core (configure with -DFLOWRUN_PYTHON=\$(scripts/python-env.sh))"
    mkdir -p "$ctx/prebuilt/python" "$ctx/prebuilt/wheels"
    cp -rL "$prebuilt/python/flowrun" "$ctx/prebuilt/python/"
    rm -rf "$ctx/prebuilt/python/flowrun/__pycache__"
    strip --strip-unneeded "$ctx/prebuilt/python/flowrun/"_core*.so
    py=$("$ROOT/scripts/python-env.sh")
    "$py" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$ctx/prebuilt/wheels" \
      -r "$ROOT/sdk/python/requirements-runtime.txt" >&2
  fi
  for f in "${files[@]}"; do
    [[ -x $prebuilt/$f ]] || die "--prebuilt $prebuilt: no $f (ninja -C $prebuilt flowrun-controller research-agent flowrunctl)"
    # Stripped copies: debug info is not for the image.
    strip -o "$ctx/prebuilt/$(basename "$f")" "$prebuilt/$f"
  done
  : >"$ctx/.dockerignore"
  ignore=$ctx/.dockerignore binaries=prebuilt
fi
# The runtime stages (the apt-get layers) as images of their own, built once per Dockerfile and
# base, so that later builds only add the binaries. Older ones are removed.
key=$( (sha256sum "$HERE/Dockerfile"; b inspect --type image --format '{{.FromImageID}}' "$base") | sha256sum | cut -c1-16)
runtime_args=()
for stage in runtime controller-runtime; do
  img=localhost/flowrun-$stage:$key
  if ! b inspect --type image "$img" >/dev/null 2>&1; then
    log "building the $stage stage once as $img"
    b bud --isolation chroot --ignorefile "$ignore" --build-arg BASE="$base" -f "$HERE/Dockerfile" \
      --target "$stage" -t "$img" "$ctx" >&2
    # (buildah 1.28's `images <name>` without a tag finds nothing: filter the whole list)
    for old in $(b images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/flowrun-$stage:" || true); do
      [[ $old == "$img" ]] || b rmi "$old" >/dev/null 2>&1 || true
    done
  fi
  arg=$(tr 'a-z-' 'A-Z_' <<<"$stage")
  runtime_args+=(--build-arg "$arg=$img")
done

# buildah leaves a working container behind for a stage without instructions (the
# `FROM ${BINARIES}-... AS ...-binaries` ones): remove those this build made.
containers_before=$(b containers -q)
for t in "${targets[@]}"; do
  if [[ $t == postgresql ]]; then
    # Only Debian packages and a script: built once per Dockerfile, script and base (the apt-get
    # layer is most of its time), then tagged.
    pgkey=$( (sha256sum "$HERE/Dockerfile" "$HERE/postgresql/entrypoint.sh"; b inspect --type image --format '{{.FromImageID}}' "$base") | sha256sum | cut -c1-16)
    img=localhost/flowrun-postgresql-build:$pgkey
    if ! b inspect --type image "$img" >/dev/null 2>&1; then
      log "building flowrun/postgresql:$version (Debian's postgresql-15, base $base) once as $img"
      b bud --isolation chroot --ignorefile "$ignore" --build-arg BASE="$base" -f "$HERE/Dockerfile" \
        --target postgresql -t "$img" "$ctx" >&2
      for old in $(b images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/flowrun-postgresql-build:' || true); do
        [[ $old == "$img" ]] || b rmi "$old" >/dev/null 2>&1 || true
      done
    fi
    b tag "$img" "flowrun/postgresql:$version"
    echo "flowrun/postgresql:$version"
    continue
  fi
  from_args=()
  case $t in
    controller) names=("flowrun/flowrun-controller:$version") ;;
    agent) names=("flowrun/research-agent:$version" "flowrun/agent-runtime:$version") ;;
    python-agent) names=("flowrun/python-agent-runtime:$version") ;;
    research-agent-py)
      names=("flowrun/research-agent-py:$version")
      # FROM the python-agent image just built (its ID: no registry lookup of a short name).
      from_args=(--build-arg "PYTHON_AGENT=$(b inspect --type image --format '{{.FromImageID}}' "flowrun/python-agent-runtime:$version")") ;;
  esac
  log "building ${names[*]} ($binaries binaries, base $base)"
  tags=()
  for n in "${names[@]}"; do tags+=(-t "$n"); done
  b bud --isolation chroot --ignorefile "$ignore" --build-arg BASE="$base" --build-arg BINARIES="$binaries" \
    "${runtime_args[@]}" "${from_args[@]}" -f "$HERE/Dockerfile" --target "$t" "${tags[@]}" "$ctx" >&2
  printf '%s\n' "${names[@]}"
done
for c in $(b containers -q); do
  grep -qxF "$c" <<<"$containers_before" || b rm "$c" >/dev/null
done
# Images that lost their tag to this build (the previous binaries) go: vfs stores every layer as a
# full copy, and repeated builds must not fill the disk.
b rmi --prune >/dev/null 2>&1 || true
