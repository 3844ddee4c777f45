#!/usr/bin/env python3
"""Questions about rendered Helm manifests, for tests/helm/helm_test.sh.

Reads a multi-document YAML stream (helm template's output) on stdin:

  manifests.py pod <kind> <name>        prints a Pod (JSON) made from the workload's pod template,
                                        so the apiserver's Pod Security admission judges it
  manifests.py same-policies <file>     exit 0 iff the ValidatingAdmissionPolicies and bindings on
                                        stdin equal those in <file> (metadata.labels ignored)
  manifests.py get <kind> <name> <path> prints the value at a dotted path (JSON), e.g.
                                        spec.template.spec.containers.0.args
  manifests.py kinds                    prints "<kind> <name>" per document, sorted
  manifests.py drop <kind>...           prints the stream without documents of these kinds

Errors (missing document, bad path) go to stderr with exit status 1.
"""
import json
import sys

import yaml


def docs(stream):
    return [d for d in yaml.safe_load_all(stream) if d]


def find(ds, kind, name):
    for d in ds:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    sys.exit(f"manifests.py: no {kind} {name}")


def policies(ds):
    out = {}
    for d in ds:
        if d.get("kind", "").startswith("ValidatingAdmissionPolicy"):
            d = json.loads(json.dumps(d))
            d["metadata"].pop("labels", None)
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "pod" and len(argv) == 4:
        w = find(docs(sys.stdin), argv[2], argv[3])
        t = json.loads(json.dumps(w["spec"]["template"]))
        # A StatefulSet's volumeClaimTemplates become PVC volumes of its pods; an emptyDir stands in.
        for claim in w["spec"].get("volumeClaimTemplates", []):
            t["spec"].setdefault("volumes", []).append({"name": claim["metadata"]["name"], "emptyDir": {}})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": argv[3].lower() + "-pod", "labels": t["metadata"].get("labels", {})},
               "spec": t["spec"]}
        print(json.dumps(pod))
    elif cmd == "same-policies" and len(argv) == 3:
        got = policies(docs(sys.stdin))
        with open(argv[2]) as f:
            want = policies(docs(f))
        if not want:
            sys.exit(f"manifests.py: no policies in {argv[2]}")
        if got != want:
            for k in sorted(set(got) | set(want)):
                if got.get(k) != want.get(k):
                    print(f"differs: {k[0]} {k[1]}", file=sys.stderr)
            return 1
    elif cmd == "get" and len(argv) == 5:
        v = find(docs(sys.stdin), argv[2], argv[3])
        parts = argv[4].split(".")
        while parts:
            # Keys may contain dots (data.prices.yaml): take the longest key that exists.
            for n in range(len(parts), 0, -1):
                key = ".".join(parts[:n])
                if isinstance(v, dict) and key in v:
                    v, parts = v[key], parts[n:]
                    break
                if isinstance(v, list) and n == 1 and key.isdigit() and int(key) < len(v):
                    v, parts = v[int(key)], parts[1:]
                    break
            else:
                sys.exit(f"manifests.py: no {argv[4]} in {argv[2]} {argv[3]}")
        print(v if isinstance(v, str) else json.dumps(v))
    elif cmd == "kinds":
        for k in sorted(f'{d["kind"]} {d["metadata"]["name"]}' for d in docs(sys.stdin)):
            print(k)
    elif cmd == "drop" and len(argv) >= 3:
        keep = [d for d in docs(sys.stdin) if d.get("kind") not in argv[2:]]
        print(yaml.safe_dump_all(keep, sort_keys=False), end="")
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
