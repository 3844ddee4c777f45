#!/usr/bin/env bash
# Creates, or reuses, the virtual environment of the Python SDK and prints the
# path of its python on stdout (everything else goes to stderr).
#
#   py=$(scripts/python-env.sh)       # then: "$py" -m pytest sdk/python/tests
#
# The venv lives outside the checkout, in ${FLOWRUN_PYTHON_ENV_DIR:-~/.cache/flowrun/python},
# named by the hash of sdk/python/requirements-dev.txt: it is reused while the
# requirements are unchanged and rebuilt when they change. It is built from
# Debian's python3 (the interpreter of the agent image; python3-venv and
# python3-dev come from scripts/install-deps.sh) unless FLOWRUN_BASE_PYTHON
# names another. Concurrent callers serialise on a lock; a half-built venv
# (interrupted install) is detected and rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
req=sdk/python/requirements-dev.txt
base_python=${FLOWRUN_BASE_PYTHON:-}
if [ -z "$base_python" ]; then
  if [ -x /usr/bin/python3 ]; then base_python=/usr/bin/python3; else base_python=$(command -v python3); fi
fi
pyver=$("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
hash=$( (cat "$req"; echo "$base_python $pyver") | sha256sum | cut -c1-12)
root=${FLOWRUN_PYTHON_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flowrun/python}
venv="$root/venv-$pyver-$hash"
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ ! -f "$venv/.flowrun-complete" ]; then
  echo "python-env: creating $venv from $base_python ($pyver)" >&2
  rm -rf "$venv"
  "$base_python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
  touch "$venv/.flowrun-complete"
fi
echo "$venv/bin/python"
