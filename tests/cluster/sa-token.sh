#!/usr/bin/env bash
# sa-token.sh <cluster dir> <namespace> <serviceaccount> [duration]
# Gets a token for the ServiceAccount through the TokenRequest API
# (kubectl create token, as the cluster admin), writes a kubeconfig that uses
# it and prints its path: <cluster dir>/users/sa-<namespace>-<serviceaccount>.kubeconfig
# duration: e.g. 10m, 1h (default 1h; the apiserver may clamp it).
set -euo pipefail
[[ $# -ge 3 && $# -le 4 ]] || { echo "usage: $0 <cluster dir> <namespace> <serviceaccount> [duration]" >&2; exit 2; }
DIR=$(cd "$1" && pwd); ns=$2; sa=$3; duration=${4:-1h}
[[ -f $DIR/cluster.env ]] || { echo "sa-token.sh: no cluster in $DIR" >&2; exit 1; }
BIN=$(sed -n 's/^BIN=//p' "$DIR/cluster.env" | tail -n1)
port=$(sed -n 's/^APISERVER_PORT=//p' "$DIR/cluster.env" | tail -n1)
token=$("$BIN/kubectl" --kubeconfig="$DIR/admin.kubeconfig" create token "$sa" -n "$ns" --duration="$duration")
[[ -n $token ]] || { echo "sa-token.sh: empty token" >&2; exit 1; }
mkdir -p "$DIR/users"
cfg=$DIR/users/sa-$ns-$sa.kubeconfig
cat >"$cfg.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: flowrun-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $DIR/pki/ca.crt
users:
- name: system:serviceaccount:$ns:$sa
  user:
    token: $token
contexts:
- name: flowrun-test
  context:
    cluster: flowrun-test
    user: system:serviceaccount:$ns:$sa
    namespace: $ns
current-context: flowrun-test
YAML
chmod 600 "$cfg.tmp"; mv -f "$cfg.tmp" "$cfg"
echo "$cfg"
