#!/usr/bin/env bash
# A real Kubernetes control plane for flowrun's tests: etcd, kube-apiserver,
# kube-controller-manager (Job controller, garbage collector, ...) and nodesim
# (a kubelet stand-in that runs pods as local processes). Everything lives in
# <dir> (plus etcd's data on tmpfs); ports are picked free, so several clusters
# in different dirs do not collide. Binaries come from tests/cluster/build.sh.
#
#   cluster.sh start <dir>              start everything, wait until ready
#   cluster.sh stop <dir>               stop everything started in <dir>, remove etcd data
#   cluster.sh env <dir>                print `export KUBECONFIG=...` lines (eval them)
#   cluster.sh restart-apiserver <dir>  stop and start kube-apiserver (same port, certs, etcd)
#   cluster.sh stop-apiserver <dir>     stop kube-apiserver only
#   cluster.sh start-apiserver <dir>    start it again after stop-apiserver
#   cluster.sh restart-nodesim <dir>    stop and start nodesim (pods it ran are marked Failed/NodeLost)
#   cluster.sh status <dir>             which components run
#
# Environment read by `start`:
#   FLOWRUN_ETCD_COMPACTION_INTERVAL  kube-apiserver --etcd-compaction-interval (default 5m;
#                                     e.g. 2s to make watches hit 410 Gone quickly)
#   FLOWRUN_APISERVER_ARGS            extra kube-apiserver flags (word-split)
#   FLOWRUN_KCM_CONTROLLERS           kube-controller-manager --controllers
#   FLOWRUN_KCM_ARGS                  extra kube-controller-manager flags (word-split), e.g.
#                                     --node-monitor-grace-period=8s for node-loss tests
#   FLOWRUN_NODESIM_ARGS              extra nodesim flags (word-split), e.g. --image-map=<file>
#   FLOWRUN_NODE_NAME                 nodesim's node name (default nodesim)
#   FLOWRUN_NODE                      "real": a real kubelet + containerd node (tests/cluster/node.sh,
#                                     root only) and kube-scheduler instead of nodesim; the API server
#                                     then admits ServiceAccounts (token volumes), and the controller
#                                     manager also runs the Deployment, ReplicaSet, StatefulSet,
#                                     EndpointSlice, node-lifecycle, taint-eviction, pod-GC,
#                                     disruption, root-CA publisher and token controllers
#                                     (docs/control-plane.md)
#   FLOWRUN_AGGREGATION               "1": configure kube-apiserver for aggregated APIs (docs/read-api.md):
#                                     a front-proxy CA and client certificate (CN front-proxy-client) in
#                                     pki/, the --requestheader-* and --proxy-client-* flags and
#                                     --enable-aggregator-routing (no kube-proxy here: dial endpoints);
#                                     env.sh then exports FLOWRUN_FRONT_PROXY_CA/_CERT/_KEY
#   FLOWRUN_CACHE                     cache root for build.sh
# Layout of <dir>: see docs/control-plane.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
READY_TIMEOUT=${FLOWRUN_READY_TIMEOUT:-60}

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
if [[ $cmd == start ]]; then
  mkdir -p "$2"
elif [[ ! -d $2 ]]; then
  [[ $cmd == stop ]] && exit 0 # nothing was started there
  die "no such directory: $2"
fi
DIR=$(cd "$2" && pwd)
PIDS=$DIR/pids
LOGS=$DIR/logs
PKI=$DIR/pki

# ---------- helpers ----------

# pid_of <name>: the pid in pids/<name>.pid if that process is alive and is
# ours (launch marks its environment with FLOWRUN_CLUSTER_PROC=$DIR; guards
# against pid reuse).
pid_of() {
  local f=$PIDS/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/environ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF -- "FLOWRUN_CLUSTER_PROC=$DIR" || return 1
  echo "$pid"
}

# alive <pid>: running (a zombie waiting for its reaper counts as gone).
alive() {
  local state
  state=$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# stop_proc <name> [grace seconds]: SIGTERM, then SIGKILL.
stop_proc() {
  local name=$1 grace=${2:-10} pid i
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$name (pid $pid) did not stop; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$PIDS/$name.pid"
}

# launch <name> <binary> args...: start detached, output to logs/<name>.log.
# Returns once the child has exec'd (its environment carries the marker
# pid_of checks) or died: until the exec, /proc/<pid>/environ is this shell's,
# and on a loaded machine a caller's first pid_of would take a starting
# process for a dead one.
launch() {
  local name=$1 pid i; shift
  FLOWRUN_CLUSTER_PROC=$DIR setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  for ((i = 0; i < 600; i++)); do
    pid_of "$name" >/dev/null && return 0
    alive "$pid" || return 0
    sleep 0.05
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free port outside the kernel's ephemeral range (so outgoing connections
# cannot grab it between the pick and the bind).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# exit_status <name>: how a process launch started ended ("exit status 1",
# "killed by signal 9", or why it cannot be told). It is this shell's child
# until reaped, so its pid cannot have been reused.
exit_status() {
  local pid rc=0
  pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || { echo "no pid file"; return; }
  [[ $pid =~ ^[0-9]+$ ]] || { echo "no pid"; return; }
  if alive "$pid"; then echo "pid $pid still runs, its marker is unreadable"; return; fi
  wait "$pid" 2>/dev/null || rc=$?
  if ((rc == 127)) && ! [[ -e /proc/$pid ]]; then echo "status unknown (not this shell's child)"
  elif ((rc > 128)); then echo "killed by signal $((rc - 128))"
  else echo "exit status $rc"; fi
}

# wait_for <seconds> <description> <pid name> <command...>: poll until the
# command succeeds; fail early if the process died.
wait_for() {
  local secs=$1 what=$2 name=$3 i; shift 3
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n $name ]] && ! pid_of "$name" >/dev/null; then
      log "$name exited while waiting for $what ($(exit_status "$name")); last log lines:"
      tail -n 25 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "timed out after ${secs}s waiting for $what; last log lines of $name:"
  tail -n 25 "$LOGS/$name.log" >&2 || true
  return 1
}

kv() { sed -n "s/^$1=//p" "$DIR/cluster.env" 2>/dev/null | tail -n1; }

# ---------- certificates ----------

gen_certs() {
  mkdir -p "$PKI"
  local d=$PKI
  (
    cd "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=flowrun-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out ca.crt 2>/dev/null
    # serving certificate of kube-apiserver
    issue serving "/CN=kube-apiserver" "serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:::1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue admin "/O=system:masters/CN=admin" clientAuth
    issue kube-controller-manager "/O=system:masters/CN=system:kube-controller-manager" clientAuth
    issue nodesim "/O=system:masters/CN=system:nodesim" clientAuth
    if aggregation; then
      # kube-apiserver's front proxy: its own CA (never the client CA), as kubeadm does.
      openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-ca.key 2>/dev/null
      openssl req -x509 -new -key front-proxy-ca.key -sha256 -days 3650 -subj "/CN=flowrun-test-front-proxy-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out front-proxy-ca.crt 2>/dev/null
      ISSUER=front-proxy-ca issue front-proxy-client "/CN=front-proxy-client" clientAuth
    fi
    # service-account token signing key pair
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

# issue <name> <subject> <extendedKeyUsage> [extra extension]  (run inside $PKI;
# signed by ca, or by $ISSUER)
issue() {
  local name=$1 subj=$2 eku=$3 extra=${4:-} ca=${ISSUER:-ca}
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -z $extra ]] || echo "$extra"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

# write_kubeconfig <file> <user> <cert> <key>
write_kubeconfig() {
  local file=$1 user=$2 cert=$3 key=$4
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: flowrun-test
  cluster:
    server: https://127.0.0.1:$(kv APISERVER_PORT)
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $cert
    client-key: $key
contexts:
- name: $user@flowrun-test
  context:
    cluster: flowrun-test
    user: $user
    namespace: default
current-context: $user@flowrun-test
EOF
  chmod 600 "$file"
}

# ---------- components ----------

start_etcd() {
  local data
  data=$(kv ETCD_DATA)
  for _ in 1 2 3; do
    local cport pport
    cport=$(free_port); pport=$(free_port)
    [[ $cport != "$pport" ]] || continue
    launch etcd "$BIN/etcd" --name=flowrun --data-dir="$data" \
      --listen-client-urls="http://127.0.0.1:$cport" --advertise-client-urls="http://127.0.0.1:$cport" \
      --listen-peer-urls="http://127.0.0.1:$pport" --initial-advertise-peer-urls="http://127.0.0.1:$pport" \
      --initial-cluster="flowrun=http://127.0.0.1:$pport" --initial-cluster-state=new \
      --unsafe-no-fsync=true --log-level=warn --logger=zap --log-outputs=stderr
    if wait_for 20 "etcd /health" etcd curl -fsS "http://127.0.0.1:$cport/health"; then
      echo "ETCD_PORT=$cport" >>"$DIR/cluster.env"
      return 0
    fi
    grep -q "address already in use" "$LOGS/etcd.log" 2>/dev/null || return 1
    stop_proc etcd 2
    rm -rf "${data:?}"/*
    log "etcd port taken, retrying with other ports"
  done
  return 1
}

apiserver_args() {
  local port=$1 etcd=$2
  # shellcheck disable=SC2054 # commas inside flag values
  local args=(
    --etcd-servers="http://127.0.0.1:$etcd"
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port"
    --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key"
    --cert-dir="$DIR/apiserver-certs"
    --client-ca-file="$PKI/ca.crt"
    --authorization-mode=Node,RBAC
    --service-cluster-ip-range=10.0.0.0/24
    --service-account-issuer="https://127.0.0.1:$port"
    --service-account-key-file="$PKI/sa.pub"
    --service-account-signing-key-file="$PKI/sa.key"
    --allow-privileged=true
    --endpoint-reconciler-type=none
    --shutdown-watch-termination-grace-period=2s
    --etcd-compaction-interval="${FLOWRUN_ETCD_COMPACTION_INTERVAL:-5m}"
    --profiling=false
    --v=1
  )
  if real_node; then
    # kubectl logs/exec reach the kubelet as admin, at the node's IP (not its name).
    args+=(--kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key"
      --kubelet-preferred-address-types=InternalIP)
  else
    # nodesim runs no token volumes.
    args+=(--disable-admission-plugins=ServiceAccount)
  fi
  if aggregation; then
    args+=(--requestheader-client-ca-file="$PKI/front-proxy-ca.crt"
      --requestheader-allowed-names=front-proxy-client
      --requestheader-username-headers=X-Remote-User
      --requestheader-group-headers=X-Remote-Group
      --requestheader-extra-headers-prefix=X-Remote-Extra-
      --proxy-client-cert-file="$PKI/front-proxy-client.crt"
      --proxy-client-key-file="$PKI/front-proxy-client.key"
      --enable-aggregator-routing=true)
  fi
  # shellcheck disable=SC2206
  [[ -z ${FLOWRUN_APISERVER_ARGS:-} ]] || args+=($FLOWRUN_APISERVER_ARGS)
  printf '%s\n' "${args[@]}"
}

readyz() { curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$1/readyz"; }

launch_apiserver() {
  local args=()
  mapfile -t args <"$DIR/apiserver.args"
  launch kube-apiserver "$BIN/kube-apiserver" "${args[@]}"
  wait_for "$READY_TIMEOUT" "kube-apiserver /readyz" kube-apiserver readyz "$(kv APISERVER_PORT)"
}

start_apiserver_first() {
  local port
  for _ in 1 2 3; do
    port=$(free_port)
    echo "APISERVER_PORT=$port" >>"$DIR/cluster.env"
    apiserver_args "$port" "$(kv ETCD_PORT)" >"$DIR/apiserver.args"
    if launch_apiserver; then return 0; fi
    stop_proc kube-apiserver 2
    if grep -q "address already in use" "$LOGS/kube-apiserver.log" 2>/dev/null; then
      log "kube-apiserver port taken, retrying with another port"
    elif [[ ! -s $LOGS/kube-apiserver.log ]]; then
      # Seen once in CI: the process gone before it wrote one line. Nothing it
      # could have done is half-done (etcd holds no data yet), so start again.
      log "kube-apiserver ended before writing a log line; starting it again"
    else
      return 1
    fi
    mv "$LOGS/kube-apiserver.log" "$LOGS/kube-apiserver.$(date +%s%N).log" 2>/dev/null || true
  done
  return 1
}

start_kcm() {
  local controllers=job-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,ttl-after-finished-controller
  local extra=()
  if real_node; then
    controllers+=,deployment-controller,replicaset-controller,statefulset-controller,endpointslice-controller,persistentvolume-binder-controller
    controllers+=,persistentvolumeclaim-protection-controller,persistentvolume-protection-controller
    controllers+=,node-lifecycle-controller,taint-eviction-controller,pod-garbage-collector-controller,disruption-controller
    controllers+=,root-ca-certificate-publisher-controller,serviceaccount-token-controller
    # kube-root-ca.crt in every namespace (in-cluster clients verify the API server with it).
    extra=(--root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key")
  fi
  controllers=${FLOWRUN_KCM_CONTROLLERS:-$controllers}
  # shellcheck disable=SC2206
  [[ -z ${FLOWRUN_KCM_ARGS:-} ]] || extra+=($FLOWRUN_KCM_ARGS)
  launch kube-controller-manager "$BIN/kube-controller-manager" "${extra[@]}" \
    --kubeconfig="$DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 \
    --cert-dir="$DIR/kcm-certs" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --controllers="$controllers" \
    --kube-api-qps=100 --kube-api-burst=200 \
    --v=1
}

real_node() { [[ ${FLOWRUN_NODE:-} == real ]]; }
aggregation() { [[ ${FLOWRUN_AGGREGATION:-} == 1 ]]; }

# The scheduler of the real node's cluster (nodesim binds its own pods; kubelet does not).
start_scheduler() {
  launch kube-scheduler "$NODE_BIN/kube-scheduler" --kubeconfig="$DIR/admin.kubeconfig" \
    --leader-elect=false --secure-port=0 --v=1
}

start_nodesim() {
  if [[ ! -f $DIR/nodesim.args ]]; then
    local args=(--kubeconfig="$DIR/nodesim.kubeconfig" --node-name="${FLOWRUN_NODE_NAME:-nodesim}" --state-dir="$DIR/nodesim")
    # shellcheck disable=SC2206
    [[ -z ${FLOWRUN_NODESIM_ARGS:-} ]] || args+=($FLOWRUN_NODESIM_ARGS)
    printf '%s\n' "${args[@]}" >"$DIR/nodesim.args"
  fi
  local args=()
  mapfile -t args <"$DIR/nodesim.args"
  rm -f "$DIR/nodesim/ready"
  launch nodesim "$BIN/nodesim" "${args[@]}"
}

# nodesim writes <state dir>/ready (its pid) once its pod cache is synced.
nodesim_ready() { [[ -f $DIR/nodesim/ready && $(<"$DIR/nodesim/ready") == "$(pid_of nodesim)" ]]; }

write_env() {
  cat >"$DIR/env.sh" <<EOF
export KUBECONFIG='$DIR/admin.kubeconfig'
export PATH='$BIN':"\$PATH"
export FLOWRUN_CLUSTER_DIR='$DIR'
export FLOWRUN_CLUSTER_BIN='$BIN'
export FLOWRUN_APISERVER_URL='https://127.0.0.1:$(kv APISERVER_PORT)'
export FLOWRUN_CLUSTER_CA='$PKI/ca.crt'
export FLOWRUN_ETCD_ENDPOINT='http://127.0.0.1:$(kv ETCD_PORT)'
export FLOWRUN_NODESIM_STATE_DIR='$DIR/nodesim'
export FLOWRUN_NODE_NAME='$(node_name)'
EOF
  if aggregation; then
    cat >>"$DIR/env.sh" <<EOF
export FLOWRUN_FRONT_PROXY_CA='$PKI/front-proxy-ca.crt'
export FLOWRUN_FRONT_PROXY_CERT='$PKI/front-proxy-client.crt'
export FLOWRUN_FRONT_PROXY_KEY='$PKI/front-proxy-client.key'
EOF
  fi
  if real_node; then
    cat >>"$DIR/env.sh" <<EOF
export FLOWRUN_NODE=real
export FLOWRUN_NODE_BIN='$NODE_BIN'
export FLOWRUN_NODE_GATEWAY='$(sed -n 's/^NODE_GATEWAY=//p' "$DIR/node/node.env")'
EOF
  fi
}
node_name() { if real_node; then echo "${FLOWRUN_REAL_NODE_NAME:-realnode}"; else echo "${FLOWRUN_NODE_NAME:-nodesim}"; fi; }

kubectl_admin() { "$BIN/kubectl" --kubeconfig="$DIR/admin.kubeconfig" "$@"; }

node_ready() {
  [[ $(kubectl_admin get node "$(node_name)" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# ---------- commands ----------

do_stop() {
  local p
  # The real node, if any (node.sh knows what it started; nothing to do without one).
  [[ ! -f $DIR/node/node.env ]] || "$HERE/node.sh" down "$DIR" || log "node.sh down failed"
  stop_proc kube-scheduler 5
  stop_proc nodesim 5
  # Pod processes that outlived nodesim (it kills them on SIGTERM; this
  # covers a nodesim that died): only process groups whose environment names
  # this cluster's state dir.
  if [[ -d $DIR/nodesim/pods ]]; then
    for p in "$DIR"/nodesim/pods/*/*.pid; do
      [[ -f $p ]] || continue
      local pid
      pid=$(<"$p")
      if [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/environ ]] &&
        tr '\0' '\n' <"/proc/$pid/environ" | grep -qF "FLOWRUN_TERMINATION_MESSAGE_PATH=$DIR/"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  fi
  stop_proc kube-controller-manager 5
  stop_proc kube-apiserver 10
  stop_proc etcd 5
  local data
  data=$(kv ETCD_DATA)
  if [[ -n $data && -d $data && ( $data == /dev/shm/flowrun-etcd.* || $data == "$DIR"/* ) ]]; then
    rm -rf "$data"
  fi
}

do_start() {
  if pid_of kube-apiserver >/dev/null || pid_of etcd >/dev/null || pid_of nodesim >/dev/null; then
    die "a cluster is already running in $DIR (cluster.sh stop $DIR first)"
  fi
  local t0=$SECONDS
  BIN=$("$HERE/build.sh" | tail -n1)
  [[ -x $BIN/kube-apiserver ]] || die "build.sh gave no binaries"
  if real_node; then
    NODE_BIN=$("$HERE/build-node.sh" | tail -n1)
    [[ -x $NODE_BIN/kube-scheduler ]] || die "build-node.sh gave no binaries"
  fi
  do_stop >/dev/null 2>&1 || true   # leftovers of an earlier half-started run
  rm -rf "$PKI" "$LOGS" "$PIDS" "$DIR/nodesim" "$DIR/nodesim.args" "$DIR/apiserver.args" "$DIR/apiserver-certs" "$DIR/kcm-certs" "$DIR"/*.kubeconfig "$DIR/cluster.env" "$DIR/env.sh"
  mkdir -p "$PIDS" "$LOGS"
  START_OK=0
  trap '[[ ${START_OK:-0} == 1 ]] || { log "start failed; stopping what was started (logs in $LOGS)"; do_stop; }' EXIT
  local data
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    data=$(mktemp -d /dev/shm/flowrun-etcd.XXXXXX)
  else
    data=$DIR/etcd-data; mkdir -p "$data"
  fi
  {
    echo "BIN=$BIN"
    echo "ETCD_DATA=$data"
  } >"$DIR/cluster.env"
  gen_certs
  start_etcd
  start_apiserver_first
  write_kubeconfig "$DIR/admin.kubeconfig" admin "$PKI/admin.crt" "$PKI/admin.key"
  write_kubeconfig "$DIR/kube-controller-manager.kubeconfig" kube-controller-manager "$PKI/kube-controller-manager.crt" "$PKI/kube-controller-manager.key"
  write_kubeconfig "$DIR/nodesim.kubeconfig" nodesim "$PKI/nodesim.crt" "$PKI/nodesim.key"
  start_kcm
  if real_node; then
    start_scheduler
    "$HERE/node.sh" up "$DIR"
    write_env
  else
    start_nodesim
    write_env
    wait_for "$READY_TIMEOUT" "node $(node_name) Ready" nodesim node_ready
    wait_for "$READY_TIMEOUT" "nodesim pod cache" nodesim nodesim_ready
  fi
  case ",${FLOWRUN_KCM_CONTROLLERS:-serviceaccount-controller}," in
    *,serviceaccount-controller,*)
      wait_for "$READY_TIMEOUT" "kube-controller-manager (serviceaccount default/default)" \
        kube-controller-manager kubectl_admin get serviceaccount default -n default ;;
    *) wait_for 10 "kube-controller-manager" kube-controller-manager true ;;
  esac
  START_OK=1
  trap - EXIT
  log "cluster ready in $((SECONDS - t0)) s: eval \"\$($0 env $DIR)\""
}

need_running() { pid_of "$1" >/dev/null || die "$1 is not running in $DIR"; }

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  env)
    [[ -f $DIR/env.sh ]] || die "no cluster started in $DIR"
    cat "$DIR/env.sh" ;;
  stop-apiserver)
    BIN=$(kv BIN)
    stop_proc kube-apiserver 10 ;;
  start-apiserver)
    BIN=$(kv BIN)
    [[ -f $DIR/apiserver.args ]] || die "no cluster started in $DIR"
    pid_of kube-apiserver >/dev/null && die "kube-apiserver already runs"
    need_running etcd
    launch_apiserver ;;
  restart-apiserver)
    BIN=$(kv BIN)
    [[ -f $DIR/apiserver.args ]] || die "no cluster started in $DIR"
    need_running etcd
    stop_proc kube-apiserver 10
    launch_apiserver ;;
  restart-nodesim)
    BIN=$(kv BIN)
    [[ -f $DIR/nodesim.args ]] || die "no cluster started in $DIR"
    stop_proc nodesim 5
    start_nodesim
    wait_for 30 "nodesim" nodesim nodesim_ready ;;
  status)
    for c in etcd kube-apiserver kube-controller-manager kube-scheduler nodesim; do
      if pid=$(pid_of "$c"); then echo "$c running (pid $pid)"; else echo "$c stopped"; fi
    done ;;
  *) usage ;;
esac
