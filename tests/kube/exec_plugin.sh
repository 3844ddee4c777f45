#!/bin/sh
# A test exec credential plugin (client.authentication.k8s.io/v1): prints an
# ExecCredential whose token is the content of $PLUGIN_TOKEN_FILE and that
# expires $PLUGIN_TTL seconds from now; appends a line to $PLUGIN_RUNS_FILE
# on every run (the test counts the runs).
set -eu
echo run >>"$PLUGIN_RUNS_FILE"
token=$(cat "$PLUGIN_TOKEN_FILE")
exp=$(date -u -d "@$(( $(date +%s) + ${PLUGIN_TTL:-3600} ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\n' "$token" "$exp"
