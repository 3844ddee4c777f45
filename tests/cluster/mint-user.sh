#!/usr/bin/env bash
# mint-user.sh <cluster dir> <user> [group...]
# Writes a kubeconfig for <user> (and groups) authenticated by a client
# certificate signed by the cluster's CA, and prints its path:
#   <cluster dir>/users/<user>.kubeconfig
# The user has no permissions until RBAC grants some (unless a group is
# system:masters).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 <cluster dir> <user> [group...]" >&2; exit 2; }
DIR=$(cd "$1" && pwd); user=$2; shift 2
PKI=$DIR/pki
[[ -f $PKI/ca.key && -f $DIR/cluster.env ]] || { echo "mint-user.sh: no cluster in $DIR" >&2; exit 1; }
port=$(sed -n 's/^APISERVER_PORT=//p' "$DIR/cluster.env" | tail -n1)

# openssl -subj needs / and = escaped; groups become O= entries.
esc() { printf '%s' "$1" | sed 's/[\/=+,]/\\&/g'; }
subj=""
for g in "$@"; do subj+="/O=$(esc "$g")"; done
subj+="/CN=$(esc "$user")"

safe=$(printf '%s' "$user" | tr '/ ' '__')
mkdir -p "$DIR/users"
key=$DIR/users/$safe.key crt=$DIR/users/$safe.crt cfg=$DIR/users/$safe.kubeconfig
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key" 2>/dev/null
openssl req -new -key "$tmp/key" -subj "$subj" -out "$tmp/csr" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=clientAuth" >"$tmp/ext"
openssl x509 -req -in "$tmp/csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
  -days 3650 -sha256 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
install -m 600 "$tmp/key" "$key"
install -m 644 "$tmp/crt" "$crt"
cat >"$cfg.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: flowrun-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $PKI/ca.crt
users:
- name: "$user"
  user:
    client-certificate: $crt
    client-key: $key
contexts:
- name: flowrun-test
  context:
    cluster: flowrun-test
    user: "$user"
    namespace: default
current-context: flowrun-test
YAML
chmod 600 "$cfg.tmp"; mv -f "$cfg.tmp" "$cfg"
echo "$cfg"
