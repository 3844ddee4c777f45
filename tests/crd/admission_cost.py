#!/usr/bin/env python3
"""Latency of FlowRun writes against a test cluster (tests/cluster), to see what
the CRD's schema, its CEL rules and the admission policies of
crds/flowrun-policies.yaml cost per request.

  admission_cost.py <cluster dir> [--n N] [--user NAME]

Sends N PATCH requests of each kind over one kept-alive HTTPS connection (so
neither kubectl's start-up nor TLS handshakes are measured) and prints the
median and p90 in ms beside a ConfigMap patch on the same apiserver (the
baseline). The caller installs whatever CRD and policies it wants to compare
(docs/flowrun-api.md, "Admission cost"). Kinds:

  configmap      merge patch of a ConfigMap's data (baseline)
  spec           merge patch of spec.budgetUSD of a FlowRun
  status         merge patch of status.message (what the controller sends)
  answer-admin   merge patch of status.answers.proceed, true/false alternately,
                 by the cluster admin (skips flowrun.dev-status-writers)
  answer-user    add status.answers.proceed on a fresh Waiting FlowRun per
                 request, by --user (default alice; minted, with RBAC)

It also prints, from the apiserver's own /metrics (a delta over the run),
the mean time of the ValidatingAdmissionPolicy admission step per UPDATE and
the mean server-side duration of each kind of PATCH: the admission cost
without the client's and the network's noise.

A measurement tool, not a test: it asserts nothing about time.
"""
import argparse
import http.client
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import time


def connect(cluster, crt, key):
    env = dict(line.split("=", 1) for line in open(os.path.join(cluster, "cluster.env")).read().split() if "=" in line)
    ctx = ssl.create_default_context(cafile=os.path.join(cluster, "pki", "ca.crt"))
    ctx.load_cert_chain(crt, key)
    return http.client.HTTPSConnection("127.0.0.1", int(env["APISERVER_PORT"]), context=ctx)


def request(conn, method, path, body=None, ctype="application/merge-patch+json"):
    headers = {"Content-Type": ctype, "Accept": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    t0 = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.read()
    dt = (time.perf_counter() - t0) * 1000
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {out[:400]!r}")
    return dt


FR = "/apis/flowrun.dev/v1alpha1/namespaces/default/flowruns"


def flowrun(name):
    return {"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
            "spec": {"template": {"image": "a"}, "parameters": {"topic": "x"}}}


def waiting(conn, name):
    request(conn, "POST", FR, flowrun(name), "application/json")
    request(conn, "PATCH", f"{FR}/{name}/status", {"status": WAITING})


# A status as the controller writes it for a research-agent run waiting for "proceed".
T = "2026-01-02T03:04:05Z"
WAITING = {
    "phase": "Waiting", "attempt": 1, "observedGeneration": 1, "message": "waiting for an answer to 'proceed'",
    "wait": {"name": "proceed", "question": "Research on 'durable execution for AI agents' is complete. Proceed?",
             "schema": {"type": "boolean"}, "askedAt": T, "onTimeout": "fail"},
    "attempts": [{"attempt": 1, "job": "r-a1", "startTime": T, "endTime": T, "outcome": "waiting",
                  "reason": "Completed"}],
    "checkpoints": {"live": 3, "cached": 0, "completed": 3},
    "cost": {"usd": 1.905e-05, "inputTokens": 90, "outputTokens": 9, "llmCalls": 3},
    "conditions": [{"type": t, "status": "True", "reason": "R", "message": "m", "lastTransitionTime": T,
                    "observedGeneration": 1} for t in ("Ready", "Waiting")],
}


# The apiserver's counters this tool reports on: (sum, count) per label set.
METRICS = re.compile(r'^(apiserver_admission_controller_admission_duration_seconds|apiserver_request_duration_seconds)'
                     r'_(sum|count)(\{[^}]*\}) (\S+)$')


def scrape(conn):
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        m = METRICS.match(line)
        if not m:
            continue
        name, kind, labels, value = m.groups()
        if name.startswith("apiserver_admission") and 'name="ValidatingAdmissionPolicy",operation="UPDATE"' not in labels:
            continue
        if name.startswith("apiserver_request") and not ('verb="PATCH"' in labels and
                                                        ('flowruns' in labels or 'configmaps' in labels)):
            continue
        key = (name, labels)
        out.setdefault(key, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return out


def report_metrics(before, after):
    for key in sorted(after):
        s0, c0 = before.get(key, [0.0, 0.0])
        s1, c1 = after[key]
        if c1 > c0:
            name, labels = key
            what = ("ValidatingAdmissionPolicy step, UPDATE " + re.search(r'rejected="(\w+)"', labels).group(1)
                    if name.startswith("apiserver_admission") else
                    "PATCH " + re.search(r'resource="(\w+)"', labels).group(1) +
                    ("/" + re.search(r'subresource="(\w*)"', labels).group(1)).rstrip("/") + " (server side)")
            print(f"  apiserver: {what:50s} mean {1000 * (s1 - s0) / (c1 - c0):7.3f} ms  (x{c1 - c0:.0f})")


def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[int(len(xs) * 0.9)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cluster")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--kinds", default="configmap,spec,status,answer-admin,answer-user")
    a = ap.parse_args()
    pki = os.path.join(a.cluster, "pki")
    admin = connect(a.cluster, os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    tag = str(int(time.time() * 1000) % 10**8)
    before = scrape(admin)
    kinds = a.kinds.split(",")
    results = {}
    if "configmap" in kinds:
        request(admin, "POST", "/api/v1/namespaces/default/configmaps",
                {"metadata": {"name": "cost-" + tag}, "data": {"k": "0"}}, "application/json")
        results["configmap"] = [request(admin, "PATCH", f"/api/v1/namespaces/default/configmaps/cost-{tag}",
                                        {"data": {"k": str(i)}}) for i in range(a.n)]
    name = "cost-" + tag
    waiting(admin, name)
    if "spec" in kinds:
        results["spec"] = [request(admin, "PATCH", f"{FR}/{name}", {"spec": {"budgetUSD": i + 1}}) for i in range(a.n)]
    if "status" in kinds:
        results["status"] = [request(admin, "PATCH", f"{FR}/{name}/status", {"status": {"message": f"m{i}"}})
                             for i in range(a.n)]
    if "answer-admin" in kinds:
        results["answer-admin"] = [request(admin, "PATCH", f"{FR}/{name}/status",
                                           {"status": {"answers": {"proceed": i % 2 == 0}}}) for i in range(a.n)]
    if "answer-user" in kinds:
        user_dir = os.path.join(a.cluster, "users")
        user = connect(a.cluster, os.path.join(user_dir, a.user + ".crt"), os.path.join(user_dir, a.user + ".key"))
        names = [f"cost-{tag}-{i}" for i in range(a.n)]
        for n in names:
            waiting(admin, n)
        results["answer-user"] = [request(user, "PATCH", f"{FR}/{n}/status", {"status": {"answers": {"proceed": True}}})
                                  for n in names]
        for n in names:
            request(admin, "DELETE", f"{FR}/{n}")
    after = scrape(admin)
    request(admin, "DELETE", f"{FR}/{name}")
    for k in kinds:
        p50, p90 = stats(results[k])
        print(f"{k:13s} p50 {p50:7.2f} ms  p90 {p90:7.2f} ms  (n={len(results[k])})")
    report_metrics(before, after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
