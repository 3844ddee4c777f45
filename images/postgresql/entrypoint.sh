#!/bin/bash
# Entrypoint of flowrun/postgresql (images/Dockerfile target postgresql): Debian's PostgreSQL 15
# with the environment contract of the official postgres image, so that the chart's StatefulSet
# (helm/flowrun/templates/postgresql.yaml) runs either image unchanged:
#   POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB (default: the
#   user), PGDATA (default /var/lib/postgresql/data; the chart uses a subdirectory of its volume).
# First start with an empty PGDATA: initdb (superuser POSTGRES_USER, scram-sha-256 for every TCP
# client, trust on the local socket only), then the database, on a server that listens on no TCP
# address meanwhile. Every start: exec postgres on all addresses, port 5432, as PID 1 (it handles
# SIGTERM as a smart shutdown and reaps its own children). The password is never printed.
# Runs as any non-root uid with write access to PGDATA, /var/run/postgresql and /tmp (a read-only
# root filesystem is fine).
set -euo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
    echo "flowrun-postgresql: POSTGRES_PASSWORD is not set; refusing to create a database without a password" >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  echo "flowrun-postgresql: initializing $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --wait --silent -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start >&2
  if [[ $POSTGRES_DB != postgres ]]; then
    # From stdin: psql quotes the name (:"db") there, not in -c.
    echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 -X -q --username="$POSTGRES_USER" --dbname=postgres \
      -h /var/run/postgresql --set=db="$POSTGRES_DB" >&2
  fi
  pg_ctl --wait --silent -m fast stop >&2
  echo "flowrun-postgresql: initialized" >&2
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
