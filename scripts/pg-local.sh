#!/usr/bin/env bash
# A private, durable PostgreSQL for the flowrun demo, kept entirely in <dir>.
#
#   scripts/pg-local.sh start  <dir>   start it (initdb on first use); prints the
#                                      connection string as stdout's last line
#   scripts/pg-local.sh url    <dir>   print the connection string (exit 1 if stopped)
#   scripts/pg-local.sh status <dir>   exit 0 if running, 3 if not
#   scripts/pg-local.sh stop   <dir>   stop it (no-op if stopped)
#
# The connection string is a libpq URI, postgresql://flowrun@127.0.0.1:PORT/flowrun
# (superuser "flowrun", trust auth, listening on 127.0.0.1 only, database
# "flowrun" created on first start). `start` is idempotent: when the server is
# already running it just prints the string. The port is chosen free on the
# first start and reused afterwards while it stays free. Unlike the test
# servers (tests/support/postgres_server.h) this one keeps fsync on and
# outlives the script; `stop` it when done.
#
# PostgreSQL refuses to run as root: as root, <dir> is chowned to the
# `postgres` system user and initdb/pg_ctl run through `runuser -u postgres`,
# so <dir> and its parents must be traversable by that user (/tmp/... is).
# Binaries: $FLOWRUN_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin,
# else `pg_config --bindir`. Logs: <dir>/postgres.log, <dir>/initdb.log.
set -euo pipefail

die() { echo "pg-local: $*" >&2; exit 1; }
usage() { echo "usage: $0 start|url|status|stop <dir>" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
case "$cmd" in start|url|status|stop) ;; *) usage ;; esac

# libpq variables from the caller's shell must not redirect our own tools.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGDATA PGSSLMODE
export LC_ALL=C

find_bindir() {
  if [ -n "${FLOWRUN_PG_BINDIR:-}" ]; then
    [ -x "$FLOWRUN_PG_BINDIR/postgres" ] || die "FLOWRUN_PG_BINDIR=$FLOWRUN_PG_BINDIR has no postgres"
    echo "$FLOWRUN_PG_BINDIR"; return
  fi
  local best
  # The glob sorts lexically ("9" after "15"), so pick the highest number.
  best=$(for d in /usr/lib/postgresql/*/bin; do
           if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then basename "$(dirname "$d")"; fi
         done | sort -n | tail -n1)
  if [ -n "$best" ]; then echo "/usr/lib/postgresql/$best/bin"; return; fi
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  die "no PostgreSQL server binaries found; run scripts/install-deps.sh"
}

# Absolute path without requiring the directory to exist yet (url/status/stop
# on a missing dir just report "not running").
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
data="$dir/data"
portfile="$dir/port"
bindir=$(find_bindir)

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$data/PG_VERSION" ] && [ -f "$portfile" ] &&
    (cd "$dir" && as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1)
}

conn_string() { echo "postgresql://flowrun@127.0.0.1:$(cat "$portfile")/flowrun"; }

port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
# PostgreSQL listens with SO_REUSEADDR, so a port whose old connections sit in
# TIME_WAIT after a stop is still usable: probe the same way.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$cmd" in
  status)
    running && exit 0 || exit 3
    ;;
  url)
    running || die "not running in $dir (run: $0 start $dir)"
    conn_string
    exit 0
    ;;
  stop)
    if running; then
      (cd "$dir" && as_pg "$bindir/pg_ctl" stop -D "$data" -m fast -w -t 60 >&2)
    fi
    exit 0
    ;;
esac

# --- start --------------------------------------------------------------------
mkdir -p "$dir"
# The unix socket lives in $dir; socket paths are limited to ~107 bytes.
[ ${#dir} -le 80 ] || die "directory path too long for a unix socket (max 80 chars): $dir"
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run PostgreSQL as"
  chown postgres:postgres "$dir"
  runuser -u postgres -- test -w "$dir" ||
    die "the postgres user cannot reach $dir (its parents must be o+x); use a directory under /tmp"
fi
cd "$dir"

# Serialize concurrent starts/inits on the same directory.
exec 9>>"$dir/.lock"
flock 9

if running; then
  conn_string
  exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
  if [ -e "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
    die "$data exists but is not a PostgreSQL data directory; remove it"
  fi
  as_pg "$bindir/initdb" -D "$data" -U flowrun --auth=trust -E UTF8 --locale=C \
    >"$dir/initdb.log" 2>&1 || { tail -n 30 "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >>"$data/postgresql.conf" <<EOF

# --- scripts/pg-local.sh (the port is passed by pg_ctl -o) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
logging_collector = off
log_line_prefix = '%m [%p] %q%a@%d '
EOF
fi

port=""
if [ -f "$portfile" ] && port_free "$(cat "$portfile")"; then
  port=$(cat "$portfile")
fi
started=0
for _ in 1 2 3 4 5; do
  [ -n "$port" ] || port=$(free_port)
  echo "$port" >"$portfile"
  logsize=$(stat -c %s "$dir/postgres.log" 2>/dev/null || echo 0)
  # 9>&-: the postmaster must not inherit (and forever hold) the start lock.
  if as_pg "$bindir/pg_ctl" start -D "$data" -l "$dir/postgres.log" -w -t 60 -o "-p $port" >&2 9>&-; then
    started=1
    break
  fi
  # Someone may have taken the port between the probe and the bind.
  if tail -c +$((logsize + 1)) "$dir/postgres.log" 2>/dev/null |
       grep -q "could not bind\|Address already in use"; then
    port=""
    continue
  fi
  break
done
if [ "$started" -ne 1 ]; then
  tail -n 30 "$dir/postgres.log" >&2 || true
  die "postgres failed to start (log: $dir/postgres.log)"
fi

psql_admin() {
  "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U flowrun -d postgres -c "$1"
}
# First start (or someone dropped it): the demo's database.
if [ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'flowrun'")" ]; then
  psql_admin "CREATE DATABASE flowrun" >&2
fi

conn_string
