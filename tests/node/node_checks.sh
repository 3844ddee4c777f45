# Helpers of the real-node suites (source after tests/cluster/checks.sh).
#   need_real_node_host   true if this machine can run the real node (root, containerd, runc, CNI,
#                         overlayfs); otherwise says why on stderr (the caller exits 77: skipped)
#   host_sysctls          the shared kernel settings a node could change, one "sysctl k v" a line
#   host_snapshot         host_sysctls plus whether the fixed paths kubelet, containerd and libcni
#                         write to exist on the host (they must not appear). Not /etc/cni: buildah
#                         with its default configuration (images_test, maybe running beside) makes it

need_real_node_host() {
  local why=""
  [[ $(id -u) == 0 ]] || why="not root"
  command -v containerd >/dev/null && command -v runc >/dev/null || why="containerd or runc missing (scripts/install-deps.sh)"
  [[ -x /usr/lib/cni/bridge ]] || why="CNI plugins missing (scripts/install-deps.sh)"
  grep -qw overlay /proc/filesystems || why="no overlayfs"
  [[ -z $why ]] && return 0
  echo "skipped: the real node needs this machine to have: $why" >&2
  return 1
}

host_sysctls() {
  local k
  for k in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys \
    kernel/keys/root_maxbytes net/ipv4/ip_forward net/ipv4/conf/all/forwarding net/ipv4/conf/all/route_localnet \
    net/bridge/bridge-nf-call-iptables; do
    [[ -r /proc/sys/$k ]] && echo "sysctl $k $(tr '\t' ' ' </proc/sys/$k)"
  done
}

host_snapshot() {
  host_sysctls
  local p
  for p in /var/lib/kubelet /var/lib/cni /var/lib/containerd /run/containerd /run/nri /var/log/pods \
    /var/log/containers /opt/containerd; do
    if [[ -e $p ]]; then echo "path $p exists"; else echo "path $p absent"; fi
  done
}
