# Shared helpers of the shell test suites (source it; bash only). Each check
# prints "ok   - <what>" or "FAIL - <what>"; `summary` prints the last line
# "N passed, M failed". Commands' output goes to $OUT (set it to a file first).
#
#   check <description> <command...>      counts the command's success
#   expect_ok <command...>                succeeds; its output in $OUT (shown on failure)
#   expect_reject <text...> -- <command...>  fails, and its output contains every text
#   contains <file> <text...>             the file contains every text
#   eq <expected> <command...>            the command prints exactly <expected>
#   wait_until <seconds> <command...>     polls every 0.2 s until the command succeeds
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
nok() { fail=$((fail + 1)); echo "FAIL - $*"; }
summary() { echo "$pass passed, $fail failed"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }

wait_until() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
# crd_established <kubectl> <crd> <seconds>: polls until the CRD reports
# Established. `kubectl wait --for=condition=Established` is no substitute: it
# fails at once ("accessor error: <nil> ... expected []interface{}") while a new
# CRD has no status.conditions yet, which a busy apiserver leaves for a while.
crd_is_established() {
  [[ $("$1" get crd "$2" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]]
}
crd_established() { wait_until "$3" crd_is_established "$1" "$2"; }
expect_ok() {
  if "$@" >"$OUT" 2>&1; then return 0; fi
  sed 's/^/    | /' "$OUT" >&2
  return 1
}
# The message is shown, as a person would see it.
expect_reject() {
  local -a texts=()
  while [[ $1 != -- ]]; do texts+=("$1"); shift; done
  shift
  if "$@" >"$OUT" 2>&1; then
    echo "    | accepted, but should have been rejected:" >&2
    sed 's/^/    | /' "$OUT" >&2
    return 1
  fi
  sed 's/^/    > /' "$OUT"
  local t
  for t in "${texts[@]}"; do
    if ! grep -qF -- "$t" "$OUT"; then
      echo "    | message lacks: $t" >&2
      return 1
    fi
  done
}
contains() {
  local f=$1 t; shift
  for t in "$@"; do
    if ! grep -qF -- "$t" "$f"; then
      echo "    | lacks: $t" >&2
      sed 's/^/    | /' "$f" >&2
      return 1
    fi
  done
}
eq() {
  local want=$1 got; shift
  got=$("$@" 2>&1)
  [[ $got == "$want" ]] && return 0
  echo "    | want '$want', got '$got'" >&2
  return 1
}

# test_cluster <name>: builds (or finds) the control plane's binaries, starts a
# cluster in a new temporary dir and points kubectl at it. Sets BIN (the
# binaries), DIR (the temporary dir; the cluster in $DIR/cluster), K (kubectl),
# OUT and KUBECONFIG. Stops the cluster and removes DIR on exit, unless
# FLOWRUN_TEST_KEEP=1 (the stopped cluster's logs stay). Exits on failure.
test_cluster() {
  local cluster_sh
  cluster_sh=$(dirname "${BASH_SOURCE[0]}")/cluster.sh
  if ! BIN=$("$(dirname "${BASH_SOURCE[0]}")/build.sh" | tail -n1) || [[ ! -x $BIN/kubectl ]]; then
    nok "tests/cluster/build.sh"
    summary; exit 1
  fi
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/flowrun-$1.XXXXXX")
  _TEST_CLUSTER_SH=$cluster_sh
  trap '"$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true
    if [[ ${FLOWRUN_TEST_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi' EXIT
  trap 'exit 130' INT TERM
  if ! "$cluster_sh" start "$DIR/cluster" >"$DIR/start.log" 2>&1; then
    cat "$DIR/start.log" >&2
    nok "cluster.sh start"
    summary; exit 1
  fi
  ok "cluster.sh start"
  eval "$("$cluster_sh" env "$DIR/cluster")"
  K="$BIN/kubectl"
  OUT=$DIR/out
}
