#!/usr/bin/env bash
# Configures and builds flowrun into ${FLOWRUN_BUILD_DIR:-build}. Extra
# arguments go to cmake (e.g. -DFLOWRUN_SANITIZE="address;undefined").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLOWRUN_BUILD_DIR:-build}
jobs=${FLOWRUN_JOBS:-$(nproc)}
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -G Ninja "$@" >/dev/null
fi
# FLOWRUN_TARGETS: build only these targets (default: everything).
ninja -C "$build" -j "$jobs" ${FLOWRUN_TARGETS:-}
