#!/bin/sh
# Python vs C++ per checkpoint on the same private durable PostgreSQL in one run
# (bench/python_bench.py; docs/benchmarks-runtime.md, "Python vs C++").
#   bench/python_vs_cpp.sh <build dir> [--rounds=4] [--n=300] [--reps=10] [--smoke]
# The build must have the SDK (-DFLOWRUN_PYTHON=$(scripts/python-env.sh)),
# flowrunctl and python_bench_cpp. Python: $FLOWRUN_PYTHON, else scripts/python-env.sh.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 <build dir> [python_bench.py flags]" >&2; exit 2; }
build=$(cd "$1" && pwd); shift
here=$(cd "$(dirname "$0")" && pwd)
py=${FLOWRUN_PYTHON:-$("$here/../scripts/python-env.sh")}
for f in "$build/bench/python_bench_cpp" "$build/runtime-lib/flowrunctl"; do
  [ -x "$f" ] || { echo "$0: $f is missing: build it (FLOWRUN_TARGETS=\"python_bench_cpp flowrunctl _core\")" >&2; exit 2; }
done
ls "$build"/python/flowrun/_core*.so >/dev/null 2>&1 ||
  { echo "$0: $build/python/flowrun has no _core: configure with -DFLOWRUN_PYTHON=\$(scripts/python-env.sh)" >&2; exit 2; }
PYTHONPATH="$build/python" PYTHONDONTWRITEBYTECODE=1 exec "$py" "$here/python_bench.py" --build="$build" "$@"
