#!/bin/sh
# A test exec credential plugin (client.authentication.k8s.io/v1): prints an
# ExecCredential that expires $PLUGIN_TTL seconds from now and appends a line
# to $PLUGIN_RUNS_FILE on every run (the test counts the runs). Its status is
# either a token, the content of $PLUGIN_TOKEN_FILE, or, when
# $PLUGIN_CERT_DIR is set, a client certificate: clientCertificateData and
# clientKeyData from $PLUGIN_CERT_DIR/<name>.crt and .key, where <name> is the
# content of $PLUGIN_CERT_DIR/current (the test switches identities by
# rewriting it).
set -eu
echo run >>"$PLUGIN_RUNS_FILE"
exp=$(date -u -d "@$(( $(date +%s) + ${PLUGIN_TTL:-3600} ))" +%Y-%m-%dT%H:%M:%SZ)
if [ -n "${PLUGIN_CERT_DIR:-}" ]; then
  name=$(cat "$PLUGIN_CERT_DIR/current")
  pem() { awk '{ printf "%s\\n", $0 }' "$1"; }  # JSON string body: newlines as \n
  printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"%s","clientKeyData":"%s","expirationTimestamp":"%s"}}\n' \
    "$(pem "$PLUGIN_CERT_DIR/$name.crt")" "$(pem "$PLUGIN_CERT_DIR/$name.key")" "$exp"
  exit 0
fi
token=$(cat "$PLUGIN_TOKEN_FILE")
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\n' "$token" "$exp"
