#!/usr/bin/env bash
# Proves runtime-lib is installable: `cmake --install` into a temporary prefix,
# then an agent outside the tree finds it with find_package(flowrun), builds,
# and answers --help-free: running it without FLOWRUN_RUN_UID must exit 2
# (config_error) with a clear message — the library really linked and ran.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/flowrun/flowrun.h"
test -f "$work/prefix/lib/cmake/flowrun/flowrunConfig.cmake"
cmake -S "$src_dir/agent" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
ninja -C "$work/build" >/dev/null
set +e
FLOWRUN_TERMINATION_MESSAGE_PATH=$work/term env -u FLOWRUN_RUN_UID "$work/build/external-agent" 2>"$work/err"
code=$?
set -e
if [ "$code" -ne 2 ]; then echo "expected exit 2 (config_error), got $code"; cat "$work/err"; exit 1; fi
grep -q '"outcome":"config_error"' "$work/term" || { echo "termination message: $(cat "$work/term")"; exit 1; }
grep -q FLOWRUN_RUN_UID "$work/term" || { echo "message does not name FLOWRUN_RUN_UID"; exit 1; }
echo "installed flowrun found by an external agent: OK"
