#!/usr/bin/env bash
# Proves the Python SDK is pip-installable (issue 11, packaging): `pip wheel .`
# from the repository root (what `pip install .` runs: scikit-build-core
# configures the root CMake project and builds flowrun._core from runtime-lib's
# sources), then the wheel alone installed into a *fresh* virtual environment:
# `import flowrun` loads the package and its extension from that venv (not
# the build tree), py.typed and the type stubs of the extension (_core.pyi) ship, and
# `python -m flowrun run` (the agent image's entrypoint) runs the C++ runtime:
# without FLOWRUN_RUN_UID it must exit 2 with a config_error termination
# message naming the variable.
#
# Usage: wheel_test.sh <venv python (FLOWRUN_PYTHON)> <build dir>
# The wheel's CMake build directory is kept in <build dir>/python-wheel and
# compiled through ccache when there is one, so a warm run takes seconds (cold:
# the runtime in Release, several minutes on 2 cores). No network: the fresh
# venv gets the wheel with --no-index; its one dependency, pydantic, is read from
# the development venv (a .pth file), so only flowrun itself comes from the wheel.
set -euo pipefail
py=$1
build_dir=$(cd "$2" && pwd)
src_dir=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src_dir"

settings=(--config-settings=build-dir="$build_dir/python-wheel")
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="$src_dir" CCACHE_NOHASHDIR=1
  settings+=(--config-settings=cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if ! "$py" -m pip wheel --no-build-isolation --no-deps --disable-pip-version-check -q -w "$work/wheels" \
    "${settings[@]}" . >"$work/pip.log" 2>&1; then
  echo "pip wheel . failed:"; tail -40 "$work/pip.log"; exit 1
fi
wheel=$(ls "$work"/wheels/flowrun-*.whl)
echo "built $(basename "$wheel")"

base=$("$py" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$work/venv"
"$work/venv/bin/pip" install --no-index --no-deps --disable-pip-version-check -q "$wheel"
dev_site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
fresh_site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$dev_site" >"$fresh_site/zz-dev-dependencies.pth"  # pydantic & co., after the venv's own packages

cd "$work"  # nothing of the checkout on sys.path
env -u PYTHONPATH "$work/venv/bin/python" - "$work/venv" <<'PY'
import os, sys
import flowrun, flowrun._core
venv = os.path.realpath(sys.argv[1])
for mod in (flowrun, flowrun._core):
    path = os.path.realpath(mod.__file__)
    assert path.startswith(venv + os.sep), f"{mod.__name__} imported from {path}, not the fresh venv"
pkg = os.path.dirname(flowrun.__file__)
for f in ("py.typed", "_core.pyi"):
    assert os.path.exists(os.path.join(pkg, f)), f"the wheel ships no {f}"
assert callable(flowrun.flow) and callable(flowrun.checkpoint) and callable(flowrun.wait)
print("import flowrun from the fresh venv: OK")
PY

set +e
env -u PYTHONPATH -u FLOWRUN_RUN_UID FLOWRUN_TERMINATION_MESSAGE_PATH="$work/term" PYTHONPATH="$src_dir/examples/research-agent-py" \
  "$work/venv/bin/python" -m flowrun run agent:research_agent 2>"$work/err"
code=$?
set -e
if [ "$code" -ne 2 ]; then echo "expected exit 2 (config_error), got $code"; cat "$work/err"; exit 1; fi
grep -q '"outcome":"config_error"' "$work/term" || { echo "termination message: $(cat "$work/term")"; exit 1; }
grep -q FLOWRUN_RUN_UID "$work/term" || { echo "message does not name FLOWRUN_RUN_UID"; exit 1; }
echo "python -m flowrun run from the installed wheel: exit 2, config_error naming FLOWRUN_RUN_UID: OK"
