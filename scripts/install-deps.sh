#!/usr/bin/env bash
# Installs every Debian package flowrun needs to build, test and run its demo.
# Idempotent: a second run only checks that everything is present.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git openssl ca-certificates python3 procps iproute2
  # compiler cache: the normal, sanitizer and image builds share object files (scripts/build.sh)
  ccache
  # libraries flowrun links
  libcpprest-dev libssl-dev libyaml-cpp-dev libpqxx-dev libpq-dev prometheus-cpp-dev
  nlohmann-json3-dev libvalijson-dev libcli11-dev libspdlog-dev libfmt-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # a real PostgreSQL server for tests and the demo (started privately, never as a system service)
  postgresql postgresql-contrib
  # a real Prometheus (promtool too) for the metrics tests
  prometheus
  # container images (images/): buildah builds the Dockerfiles without a Docker engine, on a
  # Debian base made with debootstrap (images/build.sh)
  buildah debootstrap
  # tests/helm reads rendered manifests with PyYAML
  python3-yaml
  # the Python SDK (sdk/python): its extension builds against Debian's python3, in a venv
  # that scripts/python-env.sh fills from PyPI (nanobind, scikit-build-core, pydantic, pytest, ...)
  python3-dev python3-venv
  # the real node of the test cluster (tests/cluster/node.sh, label node): a container runtime,
  # the CNI bridge plugins, iptables for its Service DNAT, busybox for its test image
  containerd runc containernetworking-plugins iptables busybox-static
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts services on install; flowrun runs its own private instances.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus postgresql >/dev/null 2>&1 || true
fi
echo "install-deps: done"
