#!/usr/bin/env python3
"""The real node's cluster DNS (tests/cluster/node.sh starts it; test infrastructure only).

A stand-in for CoreDNS on a node without kube-proxy: it answers A queries for
  <service>.<namespace>.svc.<domain>             the Service's ready endpoint addresses
                                                 (kubernetes.default: its ClusterIP, which the
                                                 node's DNAT serves)
  <hostname>.<service>.<namespace>.svc.<domain>  one endpoint by its hostname (StatefulSet pods)
from the API server's Services and EndpointSlices (re-read at most once a second, when a query
needs them). It answers with endpoint addresses, as for a headless Service, because no
kube-proxy translates ClusterIPs here: a client connects straight to the pod, so a Service's port
must equal its target port (true of the chart's bundled PostgreSQL). Other record types of a
cluster name get an empty answer; unknown cluster names NXDOMAIN; every other name is relayed to
the host's resolver (the first nameserver of /etc/resolv.conf).

UDP only (answers here are far below 512 bytes). Never logs a query's name: one line per start
and per API error on stderr.

  node-dns.py --listen 127.0.0.1:<port> --api https://127.0.0.1:<port> --ca <ca.crt>
              --cert <client.crt> --key <client.key> [--domain cluster.local]
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

TTL = 5
A, AAAA = 1, 28


class Cluster:
    """Services and EndpointSlices, read from the API server when older than a second."""

    def __init__(self, api, ctx):
        self.api, self.ctx = api.rstrip("/"), ctx
        self.lock = threading.Lock()
        self.read_at = 0.0
        self.services = {}   # (ns, name) -> clusterIP
        self.endpoints = {}  # (ns, name) -> [(ip, hostname)]

    def _get(self, path):
        with urllib.request.urlopen(self.api + path, context=self.ctx, timeout=5) as r:
            return json.load(r)

    def refresh(self):
        with self.lock:
            if time.monotonic() - self.read_at < 1.0:
                return
            try:
                svcs = self._get("/api/v1/services")
                slices = self._get("/apis/discovery.k8s.io/v1/endpointslices")
            except Exception as e:  # keep the last view; the next query retries
                print(f"node-dns: reading the API server failed: {e}", file=sys.stderr, flush=True)
                return
            services, endpoints = {}, {}
            for s in svcs.get("items", []):
                m = s["metadata"]
                services[(m["namespace"], m["name"])] = s.get("spec", {}).get("clusterIP", "")
            for sl in slices.get("items", []):
                if sl.get("addressType") != "IPv4":
                    continue
                m = sl["metadata"]
                svc = m.get("labels", {}).get("kubernetes.io/service-name")
                if not svc:
                    continue
                for ep in sl.get("endpoints") or []:
                    if ep.get("conditions", {}).get("ready") is False:
                        continue
                    for ip in ep.get("addresses", []):
                        endpoints.setdefault((m["namespace"], svc), []).append((ip, ep.get("hostname", "")))
            self.services, self.endpoints, self.read_at = services, endpoints, time.monotonic()

    def lookup(self, labels):
        """labels below .svc.<domain> -> list of IPv4 addresses, or None when the name does not exist."""
        self.refresh()
        if len(labels) == 2:
            svc, ns = labels
            if (ns, svc) not in self.services:
                return None
            ips = [ip for ip, _ in self.endpoints.get((ns, svc), [])]
            if not ips and (ns, svc) == ("default", "kubernetes"):
                ips = [self.services[(ns, svc)]]
            return sorted(set(ips))
        if len(labels) == 3:
            host, svc, ns = labels
            ips = [ip for ip, h in self.endpoints.get((ns, svc), []) if h == host]
            return ips or None
        return None


def parse_question(q):
    """-> (id, flags, labels, qtype, end offset) of the first question, or None."""
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    if qd < 1 or flags & 0x8000:
        return None
    i, labels = 12, []
    while i < len(q):
        n = q[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 or i + 1 + n > len(q):
            return None
        labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 4 > len(q):
        return None
    qtype, _ = struct.unpack("!HH", q[i:i + 4])
    return qid, flags, labels, qtype, i + 4


def answer(q, parsed, rcode, ips):
    qid, flags, _, _, end = parsed
    rd = flags & 0x0100
    head = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(ips), 0, 0)
    rrs = b"".join(struct.pack("!HHHIH", 0xC00C, A, 1, TTL, 4) + socket.inet_aton(ip) for ip in ips)
    return head + q[12:end] + rrs


def relay(q, upstream):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (upstream, 53))
        return s.recvfrom(4096)[0]
    except OSError:
        return None
    finally:
        s.close()


def host_resolver():
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0] == "nameserver" and not p[1].startswith("127."):
                    return p[1]
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--api", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--domain", default="cluster.local")
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    cluster = Cluster(a.api, ctx)
    suffix = ["svc"] + a.domain.lower().split(".")
    upstream = host_resolver()
    host, port = a.listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    print(f"node-dns: serving {a.domain} on {a.listen} (upstream {upstream or 'none'})", file=sys.stderr, flush=True)

    def handle(q, peer):
        parsed = parse_question(q)
        if not parsed:
            return
        labels, qtype = parsed[2], parsed[3]
        if labels[-len(suffix):] == suffix or labels[-len(suffix) + 1:] == suffix[1:]:
            below = labels[:-len(suffix)] if labels[-len(suffix):] == suffix else None
            ips = cluster.lookup(below) if below else None
            if ips is None:
                out = answer(q, parsed, 3, [])  # NXDOMAIN
            else:
                out = answer(q, parsed, 0, ips if qtype == A else [])
        elif upstream:
            out = relay(q, upstream)
            if out is None:
                out = answer(q, parsed, 2, [])  # SERVFAIL
        else:
            out = answer(q, parsed, 2, [])
        sock.sendto(out, peer)

    while True:
        q, peer = sock.recvfrom(4096)
        threading.Thread(target=handle, args=(q, peer), daemon=True).start()


if __name__ == "__main__":
    main()
