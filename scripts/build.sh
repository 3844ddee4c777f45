#!/usr/bin/env bash
# Configures and builds flowrun into ${FLOWRUN_BUILD_DIR:-build}. Extra
# arguments go to cmake (e.g. -DFLOWRUN_SANITIZE="address;undefined").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLOWRUN_BUILD_DIR:-build}
jobs=${FLOWRUN_JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null 2>&1; then
  # Paths relative to the checkout, so clones in other folders (CI's fresh clone) share the cache.
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -G Ninja "${launcher[@]}" "$@" >/dev/null
fi
# FLOWRUN_TARGETS: build only these targets (default: everything).
ninja -C "$build" -j "$jobs" ${FLOWRUN_TARGETS:-}
