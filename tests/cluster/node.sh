#!/usr/bin/env bash
# The real node of the test cluster: a real kubelet (tests/cluster/build-node.sh)
# with Debian's containerd + runc and the CNI bridge plugin, registered with a
# control plane that cluster.sh started with FLOWRUN_NODE=real (cluster.sh
# calls `up` and `down`; use them directly only to restart the node).
#
#   node.sh up <cluster dir>              start containerd + kubelet, import the base images,
#                                         wait until the Node is Ready
#   node.sh down <cluster dir>            stop everything the node started and remove what it
#                                         created (idempotent; also after a crash)
#   node.sh stop-kubelet <cluster dir>    stop kubelet only (containers keep running)
#   node.sh start-kubelet <cluster dir>   start it again
#   node.sh import <cluster dir> <image>...  copy images from buildah's storage into containerd
#                                         under the names pods use (flowrun/x:t = docker.io/flowrun/x:t)
#   node.sh ctr <cluster dir> <args...>   ctr against the node's containerd (namespace k8s.io)
#   node.sh env <cluster dir>             print the node's variables (NODE_NAME, NODE_GATEWAY, ...)
#   node.sh prepare /                     build what `up` needs (binaries, pause + busybox images) only
#   node.sh buildah-env /                 print exports pointing buildah (and images/build.sh) at the
#                                         node's image storage under ${FLOWRUN_CACHE}/node-images
#
# What it leaves alone on the host (machine facts and reasons: docs/control-plane.md):
#   - containerd and kubelet run in a private mount namespace: every mount they make (overlay
#     rootfs, netns, secret tmpfs, kubelet's rshared root) dies with it; /var/lib, /var/log and
#     /run are private directories in there (kubelet and libcni write fixed paths under them);
#     the kernel settings kubelet insists on writing (vm.overcommit_memory, kernel.panic, ...)
#     and the CNI plugin's net.ipv4.ip_forward are files bind-mounted over /proc/sys in there.
#   - cgroups: a root of its own, /flowrun-node-<slot>, in every hierarchy.
#   - network: a bridge frn<slot> (10.244.<slot>.1/24, the node IP), with route_localnet on that
#     bridge only, and one nat chain FLOWRUN-NODE-<slot> jumped to from PREROUTING for packets
#     arriving on that bridge: 10.0.0.1:443 (the kubernetes Service) -> the API server on
#     127.0.0.1, and <gateway>:<port> -> 127.0.0.1:<port>, so pods reach test services that
#     listen on the host's loopback (fake LLM, PostgreSQL) at NODE_GATEWAY; <gateway>:53/udp is
#     the kubelet's clusterDNS, node-dns.py on the loopback (Service names -> endpoint addresses).
#   Slots 0-7: a free slot is taken with flock on /tmp/flowrun-node-slots/<slot>.lock, held by
#   the node's namespace process; two clusters with real nodes on one machine get different
#   slots. `down` removes the bridge, the chain, the cgroups and the private directories.
# Needs root, cgroup v1 roots writable (or cgroup v2), overlayfs, bridge + veth, iptables.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "node.sh: $*" >&2; exit 1; }
log() { echo "node.sh: $*" >&2; }
[[ $# -ge 2 ]] || { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
cmd=$1
[[ -d $2 ]] || { [[ $cmd == down ]] && exit 0; die "no such directory: $2"; }
CDIR=$(cd "$2" && pwd)
shift 2
ND=$CDIR/node
SLOTS=/tmp/flowrun-node-slots
NODE_NAME=${FLOWRUN_REAL_NODE_NAME:-realnode}
READY_TIMEOUT=${FLOWRUN_READY_TIMEOUT:-60}
CGROUP_BASE=/sys/fs/cgroup

kv() { sed -n "s/^$1=//p" "$2" 2>/dev/null | tail -n1 || true; }
BIN=$(kv BIN "$CDIR/cluster.env")
kubectl_admin() { "$BIN/kubectl" --kubeconfig="$CDIR/admin.kubeconfig" "$@"; }

# slot variables from node.env (written by up)
load_env() {
  SLOT=$(kv SLOT "$ND/node.env")
  [[ -n $SLOT ]] || return 1
  BRIDGE=frn$SLOT GW=10.244.$SLOT.1 SUBNET=10.244.$SLOT.0/24 CHAIN=FLOWRUN-NODE-$SLOT CGROOT=/flowrun-node-$SLOT
  SOCK=$ND/containerd/containerd.sock
}

alive() {
  local state
  state=$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}
# pid_file_alive <file>: the pid in it, if alive and started for this node (environment mark).
pid_alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  { tr "\\0" "\\n" <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "FLOWRUN_NODE_PROC=$ND" || return 1
  echo "$pid"
}
# kill_wait <pid> <grace s>
kill_wait() {
  local pid=$1 grace=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

cg_hierarchies() {
  local h
  if [[ -e $CGROUP_BASE/cgroup.controllers ]]; then echo "$CGROUP_BASE"; return; fi # cgroup v2 only
  for h in "$CGROUP_BASE"/*/; do h=${h%/}; [[ -e $h/cgroup.procs ]] && echo "$h"; done; }

# ---------- images of the node itself (pause, busybox), cached as OCI archives ----------

CACHE=${FLOWRUN_CACHE:-$HOME/.cache/flowrun}
IMG_CACHE=$CACHE/node-images
# buildah with a storage of its own (the node's images never meet images/build.sh's or
# images_test's) and no CNI configuration on the host.
node_buildah_env() {
  mkdir -p "$IMG_CACHE/cni"
  [[ -f $IMG_CACHE/storage.conf ]] || printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$IMG_CACHE/storage" "$IMG_CACHE/runroot" >"$IMG_CACHE/storage.conf"
  [[ -f $IMG_CACHE/containers.conf ]] || printf '[network]\nnetwork_config_dir = "%s"\n' "$IMG_CACHE/cni" >"$IMG_CACHE/containers.conf"
  export CONTAINERS_STORAGE_CONF=$IMG_CACHE/storage.conf CONTAINERS_CONF=$IMG_CACHE/containers.conf
}

# pause: what the kubelet's sandbox container runs (like kubernetes' build/pause/linux/pause.c).
PAUSE_C='#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &q, 0); sigaction(SIGTERM, &q, 0); sigaction(SIGCHLD, &r, 0);
  for (;;) pause();
}'

base_images() {
  local key
  key=$( (echo "$PAUSE_C"; sha256sum /bin/busybox; echo v1) | sha256sum | cut -c1-12)
  PAUSE_TAR=$IMG_CACHE/pause-$key.tar BUSYBOX_TAR=$IMG_CACHE/busybox-$key.tar
  [[ -s $PAUSE_TAR && -s $BUSYBOX_TAR ]] && return 0
  command -v buildah >/dev/null || die "buildah is not installed (scripts/install-deps.sh)"
  [[ -x /bin/busybox ]] || die "busybox-static is not installed (scripts/install-deps.sh)"
  (
    node_buildah_env
    exec 9>"$IMG_CACHE/.lock"; flock 9
    [[ -s $PAUSE_TAR && -s $BUSYBOX_TAR ]] && exit 0
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/pause" "$tmp/bb/bin" "$tmp/bb/tmp"
    echo "$PAUSE_C" >"$tmp/pause.c"
    gcc -Os -static -o "$tmp/pause/pause" "$tmp/pause.c"
    c=$(buildah from scratch)
    buildah copy "$c" "$tmp/pause/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    buildah commit --rm "$c" localhost/pause:flowrun >/dev/null
    buildah push --quiet localhost/pause:flowrun "oci-archive:$PAUSE_TAR.tmp:localhost/pause:flowrun" >/dev/null
    cp /bin/busybox "$tmp/bb/bin/busybox"
    for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$tmp/bb/bin/$a"; done
    chmod 1777 "$tmp/bb/tmp"
    c=$(buildah from scratch)
    buildah copy "$c" "$tmp/bb" / >/dev/null
    buildah config --env PATH=/bin --cmd /bin/sh "$c"
    buildah commit --rm "$c" localhost/busybox:flowrun >/dev/null
    buildah push --quiet localhost/busybox:flowrun "oci-archive:$BUSYBOX_TAR.tmp:localhost/busybox:flowrun" >/dev/null
    mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"; mv "$BUSYBOX_TAR.tmp" "$BUSYBOX_TAR"
  )
}

ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }

# import <image>...: from the storage images/build.sh uses (CONTAINERS_STORAGE_CONF decides, as
# for buildah itself) into containerd, named as the kubelet resolves pod images.
do_import() {
  local img name tar
  for img in "$@"; do
    name=$img
    case $name in
      localhost/*|docker.io/*|*.*/*|*:*/*) ;;
      */*) name=docker.io/$name ;;
      *) name=docker.io/library/$name ;;
    esac
    tar=$ND/import.tar
    buildah --storage-driver vfs push --quiet "$img" "oci-archive:$tar:$name" >/dev/null || die "buildah push $img failed"
    ctr_ images import "$tar" >/dev/null || die "ctr import of $img failed"
    rm -f "$tar"
    log "imported $img as $name"
  done
}

# ---------- network ----------

net_up() {
  ip link add "$BRIDGE" type bridge 2>/dev/null || true
  ip addr replace "$GW/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Packets from pods to loopback addresses after DNAT (this bridge only).
  echo 1 >"/proc/sys/net/ipv4/conf/$BRIDGE/route_localnet"
  local apiport
  apiport=$(kv APISERVER_PORT "$CDIR/cluster.env")
  iptables -w -t nat -N "$CHAIN" 2>/dev/null || iptables -w -t nat -F "$CHAIN"
  iptables -w -t nat -A "$CHAIN" -d 10.0.0.1/32 -p tcp --dport 443 -j DNAT --to-destination "127.0.0.1:$apiport"
  iptables -w -t nat -A "$CHAIN" -d "$GW/32" -p tcp -j DNAT --to-destination 127.0.0.1
  # The cluster DNS stand-in (node-dns.py) on the host's loopback: the kubelet's clusterDNS.
  iptables -w -t nat -A "$CHAIN" -d "$GW/32" -p udp --dport 53 -j DNAT --to-destination "127.0.0.1:$DNS_PORT"
  iptables -w -t nat -C PREROUTING -i "$BRIDGE" -j "$CHAIN" 2>/dev/null ||
    iptables -w -t nat -A PREROUTING -i "$BRIDGE" -j "$CHAIN"
}

net_down() {
  while iptables -w -t nat -D PREROUTING -i "$BRIDGE" -j "$CHAIN" 2>/dev/null; do :; done
  iptables -w -t nat -F "$CHAIN" 2>/dev/null || true
  iptables -w -t nat -X "$CHAIN" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

# ---------- cgroups ----------

cg_up() {
  local h
  for h in $(cg_hierarchies); do
    mkdir -p "$h$CGROOT"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" >"$h$CGROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$CGROOT/cpuset.mems"
    fi
  done
}

# Kills whatever is left in the node's cgroups, then removes them depth-first.
cg_down() {
  local h d p i
  for h in $(cg_hierarchies); do
    [[ -d $h$CGROOT ]] || continue
    for ((i = 0; i < 50; i++)); do
      local left=0
      while read -r p; do [[ -n $p ]] && { kill -KILL "$p" 2>/dev/null || true; left=1; }; done \
        < <(find "$h$CGROOT" -name cgroup.procs -exec cat {} + 2>/dev/null)
      [[ $left == 0 ]] && break
      sleep 0.1
    done
    find "$h$CGROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ ! -d $h$CGROOT ]] || log "could not remove $h$CGROOT"
  done
}

# ---------- configuration ----------

write_config() {
  mkdir -p "$ND"/{containerd,cni/net.d,cni/ipam,kubelet/root,kubelet/pki,pod-logs,private/var-lib,private/var-log,private/run,sysctl,logs}
  cat >"$ND/containerd/config.toml" <<EOF
version = 2
root = "$ND/containerd/root"
state = "$ND/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$ND/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  sandbox_image = "localhost/pause:flowrun"
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$ND/containerd/runc-root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ND/cni/net.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ND/containerd/opt"
EOF
  cat >"$ND/cni/net.d/10-flowrun-node.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "flowrun-node-$SLOT", "plugins": [ { "type": "bridge", "bridge": "$BRIDGE",
  "isGateway": true, "ipMasq": false, "hairpinMode": true, "ipam": { "type": "host-local",
  "dataDir": "$ND/cni/ipam", "ranges": [[{ "subnet": "$SUBNET", "gateway": "$GW" }]],
  "routes": [{ "dst": "0.0.0.0/0" }] } } ] }
EOF
  cat >"$ND/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROOT
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
podLogsDir: $ND/pod-logs
address: $GW
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CDIR/pki/ca.crt}
authorization:
  mode: Webhook
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
clusterDomain: cluster.local
clusterDNS: [$GW]
resolvConf: /etc/resolv.conf
rotateCertificates: false
makeIPTablesUtilChains: false
# Lease renewed every 2 s (a quarter of this): node-loss tests can use a short
# --node-monitor-grace-period without flapping.
nodeLeaseDurationSeconds: 8
EOF
  printf '%s\n' --config="$ND/kubelet/config.yaml" --kubeconfig="$ND/kubelet.kubeconfig" \
    --root-dir="$ND/kubelet/root" --cert-dir="$ND/kubelet/pki" --hostname-override="$NODE_NAME" \
    --node-ip="$GW" --v=2 >"$ND/kubelet.args"
  # What kubelet writes into the kernel (setupKernelTunables) and the bridge plugin's forwarding
  # switch: private files with the values they want, so they find them set and write nothing.
  printf '%s\n' vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000 net/ipv4/ip_forward=1 >"$ND/sysctl.list"
}

# The namespace's init: private mounts, then containerd and kubelet as children it waits for.
NS_SCRIPT='set -u
ND=$1
mount --make-rshared /
while IFS== read -r f v; do
  [ -e /proc/sys/$f ] || continue
  p=$ND/sysctl/$(echo "$f" | tr / _); echo "$v" >"$p"; mount --bind "$p" "/proc/sys/$f"
done <"$ND/sysctl.list"
mount --bind "$ND/private/var-lib" /var/lib
mount --bind "$ND/private/var-log" /var/log
mount --bind "$ND/private/run" /run
mkdir -p /run/lock
touch "$ND/ns-ready"
containerd --config "$ND/containerd/config.toml" >>"$ND/logs/containerd.log" 2>&1 8>&- &
echo $! >"$ND/containerd.pid"
# kubelet: started (and restarted) by the start-kubelet command file, so that it can be
# stopped and started inside this namespace.
while :; do
  if [ -f "$ND/kubelet.want" ] && ! kill -0 "$(cat "$ND/kubelet.pid" 2>/dev/null || echo x)" 2>/dev/null; then
    rm -f "$ND/kubelet.want"
    mapfile -t args <"$ND/kubelet.args"
    "$KUBELET" "${args[@]}" >>"$ND/logs/kubelet.log" 2>&1 8>&- &
    echo $! >"$ND/kubelet.pid"
  fi
  [ -f "$ND/ns-stop" ] && break
  sleep 0.2
done'

containerd_up() { ctr_ version >/dev/null 2>&1; }
kubelet_healthy() { curl -fsS "http://127.0.0.1:$HEALTHZ_PORT/healthz" >/dev/null 2>&1; }
node_ready() {
  [[ $(kubectl_admin get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
wait_for() { # <secs> <what> <cmd...>
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do "$@" && return 0; sleep 0.1; done
  log "timed out after ${secs}s waiting for $what"; return 1
}

start_kubelet() {
  rm -f "$ND/kubelet.pid"
  touch "$ND/kubelet.want"
  wait_for 20 "kubelet to start" test -s "$ND/kubelet.pid"
}

do_up() {
  [[ -n $BIN && -x $BIN/kubectl ]] || die "no cluster in $CDIR (cluster.sh start first)"
  [[ $(id -u) == 0 ]] || die "the real node needs root"
  command -v containerd >/dev/null && command -v runc >/dev/null && [[ -x /usr/lib/cni/bridge ]] ||
    die "containerd, runc or the CNI plugins are missing (scripts/install-deps.sh)"
  NODE_BIN=$("$HERE/build-node.sh" | tail -n1)
  [[ -x $NODE_BIN/kubelet ]] || die "build-node.sh gave no kubelet"
  if [[ -f $ND/ns.pid ]] && pid_alive "$ND/ns.pid" >/dev/null; then die "a node already runs in $CDIR"; fi
  do_down >/dev/null 2>&1 || true
  base_images
  mkdir -p "$SLOTS" "$ND"
  local s
  exec 8>&-
  for ((s = 0; s < 8; s++)); do
    exec 8>>"$SLOTS/$s.lock"
    if flock -n 8; then SLOT=$s; break; fi
    exec 8>&-
  done
  [[ -n ${SLOT:-} ]] || die "all 8 node slots are taken (/tmp/flowrun-node-slots)"
  echo "SLOT=$SLOT" >"$ND/node.env"
  load_env
  # Leftovers of a crashed node that had this slot (its lock is free, so it is dead).
  net_down; cg_down
  local p1 p2
  p1=$(free_port) p2=$(free_port)
  KUBELET_PORT=$p1 HEALTHZ_PORT=$p2 DNS_PORT=$(free_udp_port)
  printf 'KUBELET_PORT=%s\nHEALTHZ_PORT=%s\nDNS_PORT=%s\nNODE_NAME=%s\nNODE_GATEWAY=%s\nNODE_BIN=%s\n' \
    "$KUBELET_PORT" "$HEALTHZ_PORT" "$DNS_PORT" "$NODE_NAME" "$GW" "$NODE_BIN" >>"$ND/node.env"
  UP_OK=0
  trap '[[ $UP_OK == 1 ]] || { log "node start failed; stopping it (logs in $ND/logs)"; do_down; }' EXIT
  write_config
  cfg=$("$HERE/mint-user.sh" "$CDIR" "system:node:$NODE_NAME" system:nodes)
  cp "$cfg" "$ND/kubelet.kubeconfig"
  cg_up
  net_up
  dns_up
  rm -f "$ND/ns-ready" "$ND/ns-stop"
  FLOWRUN_NODE_PROC=$ND KUBELET=$NODE_BIN/kubelet PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    setsid unshare --mount --propagation private --fork --kill-child=SIGTERM bash -c "$NS_SCRIPT" node-ns "$ND" \
    </dev/null >>"$ND/logs/node-ns.log" 2>&1 &
  echo $! >"$ND/ns.pid"
  exec 8>&-
  wait_for 10 "the node's namespace" test -f "$ND/ns-ready"
  wait_for 30 "containerd" containerd_up || { tail -20 "$ND/logs/containerd.log" >&2; return 1; }
  ctr_ images import "$PAUSE_TAR" >/dev/null
  ctr_ images import "$BUSYBOX_TAR" >/dev/null
  start_kubelet
  wait_for "$READY_TIMEOUT" "kubelet /healthz" kubelet_healthy || { tail -20 "$ND/logs/kubelet.log" >&2; return 1; }
  wait_for "$READY_TIMEOUT" "node $NODE_NAME Ready" node_ready || { tail -20 "$ND/logs/kubelet.log" >&2; return 1; }
  UP_OK=1
  trap - EXIT
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
free_udp_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The cluster DNS stand-in (no CoreDNS, no kube-proxy here): Service names -> ready endpoint
# addresses, other names relayed to the host's resolver (node-dns.py says why).
dns_up() {
  local apiport
  apiport=$(kv APISERVER_PORT "$CDIR/cluster.env")
  FLOWRUN_NODE_PROC=$ND setsid python3 "$HERE/node-dns.py" --listen "127.0.0.1:$DNS_PORT" \
    --api "https://127.0.0.1:$apiport" --ca "$CDIR/pki/ca.crt" --cert "$CDIR/pki/admin.crt" --key "$CDIR/pki/admin.key" \
    </dev/null >>"$ND/logs/dns.log" 2>&1 8>&- &
  echo $! >"$ND/dns.pid"
  wait_for 20 "the cluster DNS" grep -q "node-dns: serving" "$ND/logs/dns.log" || { tail -5 "$ND/logs/dns.log" >&2; return 1; }
}

do_down() {
  load_env || { rm -rf "$ND"; return 0; }
  local pid
  # kubelet first (it would restart containers), then every container, then containerd.
  if pid=$(pid_alive "$ND/kubelet.pid"); then kill_wait "$pid" 10; fi
  if [[ -S $SOCK ]]; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  if pid=$(pid_alive "$ND/containerd.pid"); then kill_wait "$pid" 10; fi
  if pid=$(pid_alive "$ND/dns.pid"); then kill_wait "$pid" 2; fi
  touch "$ND/ns-stop" 2>/dev/null || true
  if pid=$(pid_alive "$ND/ns.pid"); then kill_wait "$pid" 5; fi
  # Shims and anything else still in the node's cgroups or marked as the node's.
  cg_down
  for pid in $(grep -lsxF "FLOWRUN_NODE_PROC=$ND" --null-data /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  net_down
  if kubectl_admin get node "$NODE_NAME" >/dev/null 2>&1; then
    kubectl_admin delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
  fi
  # Files written by containers as root (overlay upper dirs) can be read-only for the owner.
  rm -rf "$ND" 2>/dev/null || { chmod -R u+w "$ND" 2>/dev/null; rm -rf "$ND"; }
}

case $cmd in
  up) do_up ;;
  down) do_down ;;
  stop-kubelet)
    load_env || die "no node in $CDIR"
    pid=$(pid_alive "$ND/kubelet.pid") && kill_wait "$pid" 10
    true ;;
  start-kubelet)
    load_env || die "no node in $CDIR"
    HEALTHZ_PORT=$(kv HEALTHZ_PORT "$ND/node.env")
    pid_alive "$ND/kubelet.pid" >/dev/null && die "kubelet already runs"
    start_kubelet
    wait_for "$READY_TIMEOUT" "kubelet /healthz" kubelet_healthy ;;
  prepare) # <any dir>: build kubelet/kube-scheduler and the pause/busybox images, start nothing
    base_images
    "$HERE/build-node.sh" >/dev/null ;;
  import) load_env || die "no node in $CDIR"; do_import "$@" ;;
  ctr) load_env || die "no node in $CDIR"; ctr_ "$@" ;;
  env) load_env || die "no node in $CDIR"; cat "$ND/node.env" ;;
  buildah-env) # <any dir>: the exports that point buildah (and images/build.sh) at the node's storage
    node_buildah_env
    echo "export CONTAINERS_STORAGE_CONF='$CONTAINERS_STORAGE_CONF' CONTAINERS_CONF='$CONTAINERS_CONF'" ;;
  *) die "unknown command $cmd" ;;
esac
