#!/usr/bin/env bash
# The FlowRun API (crds/) against a real kube-apiserver: starts a cluster from
# tests/cluster in a temporary dir, installs crds/ with the real kubectl and
# proves what a user sees: the example applies, printer columns, kubectl
# explain, rejections with understandable messages, what is mutable, the
# status subresource, the approvers policy, and a server-side dry run of every
# manifest in examples/. Tears the cluster down on exit (also on failure or ^C).
# Last line of output: "N passed, M failed"; exit status non-zero on any failure.
#
# FLOWRUN_TEST_KEEP=1 keeps the (stopped) cluster dir with its logs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER=$ROOT/tests/cluster
EXAMPLE=$ROOT/examples/research-agent/flowrun.yaml

# shellcheck source=../cluster/checks.sh
source "$CLUSTER/checks.sh"

test_cluster crd

# jp <name> <jsonpath>: a field of a FlowRun
jp() { "$K" get flowrun "$1" -o jsonpath="$2"; }
# A minimal FlowRun with extra spec lines: fr <name> [yaml lines for spec...]
fr() {
  local name=$1; shift
  printf 'apiVersion: flowrun.dev/v1alpha1\nkind: FlowRun\nmetadata: {name: %s}\nspec:\n' "$name"
  local l
  for l in "$@"; do printf '  %s\n' "$l"; done
}
# apply_doc <name> <yaml on stdin>: kubectl apply of a document written to a file
apply_doc() {
  cat >"$DIR/$1.yaml"
  "$K" apply -f "$DIR/$1.yaml"
}

# ---- install ----
check "CRD manifest is well under 64 KiB ($(wc -c <"$ROOT/crds/flowrun.dev_flowruns.yaml") bytes)" \
  test "$(wc -c <"$ROOT/crds/flowrun.dev_flowruns.yaml")" -lt 49152
check "kubectl apply -f crds/" expect_ok "$K" apply -f "$ROOT/crds/"
check "CRD becomes Established" crd_established "$K" flowruns.flowrun.dev 30
check "CRD: names, shortName fr, category flowrun, v1alpha1 served+storage, status subresource" eq \
  "FlowRun flowruns fr flowrun Namespaced v1alpha1 true true {}" \
  "$K" get crd flowruns.flowrun.dev -o jsonpath='{.spec.names.kind} {.spec.names.plural} {.spec.names.shortNames[0]} {.spec.names.categories[0]} {.spec.scope} {.spec.versions[0].name} {.spec.versions[0].served} {.spec.versions[0].storage} {.spec.versions[0].subresources.status}'
# The admission policies start acting once the apiserver has loaded them: wait
# until a server-side dry run of a parameters change is refused.
"$K" apply -f - >/dev/null 2>&1 <<<"$(fr probe 'template: {image: probe}' 'parameters: {a: 1}')"
check "admission policies are active" wait_until 30 bash -c \
  "'$K' patch flowrun probe --dry-run=server --type=merge -p '{\"spec\":{\"parameters\":{\"a\":2}}}' 2>&1 | grep -q 'parameters is immutable'"
"$K" delete flowrun probe --wait=false >/dev/null 2>&1

# ---- the example ----
check "examples/research-agent/flowrun.yaml applies" expect_ok "$K" apply -f "$EXAMPLE"
# (The example runs the image's entrypoint: no command.)
check "the example is stored with its defaults (retry, onWaitTimeout, database key)" eq \
  "research flowrun/research-agent:0.1.0 1 3 10 300 fail url flowrun-db" \
  "$K" get flowrun research-1 -o jsonpath='{.spec.flow} {.spec.template.image} {.spec.budgetUSD} {.spec.retry.maxAttempts} {.spec.retry.backoffSeconds} {.spec.retry.maxBackoffSeconds} {.spec.onWaitTimeout} {.spec.database.secretRef.key} {.spec.database.secretRef.name}'

# ---- printer columns ----
header_ok() {
  "$K" "$@" >"$OUT" 2>&1 || { cat "$OUT" >&2; return 1; }
  head -n1 "$OUT" | grep -qE '^NAME +PHASE +ATTEMPT +COST +WAITING-FOR +AGE *$' || { cat "$OUT" >&2; return 1; }
}
check "kubectl get flowruns: NAME PHASE ATTEMPT COST WAITING-FOR AGE" header_ok get flowruns
check "kubectl get fr: the same columns" header_ok get fr
check "kubectl get flowrun (category): the same columns" header_ok get flowrun
check "status written through /status (a controller's patch) is stored" expect_ok "$K" patch flowrun research-1 \
  --subresource=status --type=merge -p '{"status":{"phase":"Waiting","attempt":1,"currentJob":"research-1-1",
  "cost":{"usd":1.905e-05,"display":"$0.000019","inputTokens":120,"outputTokens":80,"llmCalls":1},"checkpoints":{"live":1,"cached":0,"completed":1},
  "wait":{"name":"proceed","question":"Research is complete. Proceed to analysis?","schema":{"type":"boolean"},
          "askedAt":"2026-01-02T03:04:05Z","onTimeout":"fail"},
  "attempts":[{"attempt":1,"job":"research-1-1","startTime":"2026-01-02T03:00:00Z","endTime":"2026-01-02T03:04:06Z","outcome":"waiting","reason":"Completed"}],
  "conditions":[{"type":"Waiting","status":"True","reason":"QuestionAsked","message":"waiting for proceed","lastTransitionTime":"2026-01-02T03:04:05Z","observedGeneration":1}],
  "observedGeneration":1}}'
row_ok() {
  "$K" get fr research-1 --no-headers >"$OUT" 2>&1 || return 1
  grep -qE '^research-1 +Waiting +1 +\$0\.000019 +proceed +[0-9]+[smhd]' "$OUT" || { cat "$OUT" >&2; return 1; }
}
check "kubectl get fr shows phase, attempt, cost (status.cost.display) and what it waits for" row_ok
check "... status.cost.usd is stored as the controller writes it (rounded to 1e-9 USD)" eq 1.905e-05 jp research-1 '{.status.cost.usd}'
check "a 17-character status.cost.display is rejected" expect_reject 'status.cost.display: Too long' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p '{"status":{"cost":{"display":"$1234567890123456"}}}'
wide_ok() {
  "$K" get fr research-1 -o wide >"$OUT" 2>&1 || return 1
  contains "$OUT" FLOW BUDGET JOB research research-1-1
}
check "kubectl get fr -o wide adds flow, budget and job" wide_ok

# ---- kubectl explain ----
check "kubectl explain flowrun.spec.template describes the agent's container" bash -c \
  "'$K' explain flowrun.spec.template >'$OUT' 2>&1 && grep -q 'agent.s container' '$OUT' && grep -q 'image.*-required-' '$OUT' && grep -q 'Immutable' '$OUT'"
check "kubectl explain flowrun.status.answers shows how to answer" bash -c \
  "'$K' explain flowrun.status.answers >'$OUT' 2>&1 && grep -q 'kubectl patch flowrun' '$OUT' && grep -q 'subresource=status' '$OUT'"
check "kubectl explain flowrun.spec.budgetUSD says it is mutable" bash -c \
  "'$K' explain flowrun.spec.budgetUSD >'$OUT' 2>&1 && grep -q 'Mutable' '$OUT'"
check "kubectl explain flowrun.status.phase explains the phases" bash -c \
  "'$K' explain flowrun.status.phase >'$OUT' 2>&1 && grep -q 'BudgetExceeded' '$OUT' && grep -q 'final' '$OUT'"
# Every field in the schema has a description.
undocumented() {
  "$K" get crd flowruns.flowrun.dev -o json | python3 -c '
import json, sys
schema = json.load(sys.stdin)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
missing = []
def walk(node, path):
    for name, sub in node.get("properties", {}).items():
        p = path + "." + name
        if name != "metadata" and not sub.get("description"):
            missing.append(p)
        walk(sub, p)
    if isinstance(node.get("items"), dict):
        walk(node["items"], path + "[]")
walk(schema, "")
if missing: print("\n".join(missing))
sys.exit(1 if missing else 0)'
}
check "every field of the schema has a description" undocumented

# ---- rejected at kubectl apply, with a message a person understands ----
check "missing image is rejected" expect_reject 'spec.template.image: Required value' -- \
  apply_doc no-image <<<"$(fr no-image 'template: {command: [/bin/agent]}')"
check "missing template is rejected" expect_reject 'spec.template: Required value' -- \
  apply_doc no-template <<<"$(fr no-template 'flow: x')"
check "negative budget is rejected" expect_reject 'spec.budgetUSD' 'greater than or equal to 0' -- \
  apply_doc neg-budget <<<"$(fr neg-budget 'template: {image: a}' 'budgetUSD: -0.5')"
check "a 513-character image is rejected" expect_reject 'spec.template.image: Too long' '512' -- \
  apply_doc long-image <<<"$(fr long-image "template: {image: $(printf 'i%.0s' {1..513})}")"
env65=$(for i in $(seq 1 65); do printf '{name: V%d, value: x}, ' "$i"; done)
check "65 env entries are rejected" expect_reject 'spec.template.env: Too many' 'at most 64' -- \
  apply_doc many-env <<<"$(fr many-env "template: {image: a, env: [${env65%, }]}")"
check "an 8193-character env value is rejected" expect_reject 'spec.template.env[0].value: Too long' -- \
  apply_doc long-env <<<"$(fr long-env "template: {image: a, env: [{name: A, value: $(printf 'v%.0s' {1..8193})}]}")"
check "a duplicate env name is rejected" expect_reject 'Duplicate value' -- \
  apply_doc dup-env <<<"$(fr dup-env 'template: {image: a, env: [{name: A, value: "1"}, {name: A, value: "2"}]}')"
check "FLOWRUN_DATABASE_URL in env is rejected (use spec.database)" expect_reject 'spec.database' 'the controller sets' -- \
  apply_doc db-env <<<"$(fr db-env 'template: {image: a, env: [{name: FLOWRUN_DATABASE_URL, value: "postgresql://u:pw@db/x"}]}')"
check "an env entry with value and valueFrom is rejected" expect_reject 'either value or valueFrom' -- \
  apply_doc both-env <<<"$(fr both-env 'template: {image: a, env: [{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]}')"
check "an invalid resource quantity is rejected" expect_reject 'spec.template.resources.limits.memory' -- \
  apply_doc bad-qty <<<"$(fr bad-qty 'template: {image: a, resources: {limits: {memory: lots}}}')"
check "unknown onWaitTimeout is rejected" expect_reject 'spec.onWaitTimeout: Unsupported value: "continue"' 'supported values: "fail", "default"' -- \
  apply_doc bad-policy <<<"$(fr bad-policy 'template: {image: a}' 'onWaitTimeout: continue')"
check "retry.maxBackoffSeconds < backoffSeconds is rejected" expect_reject 'retry.maxBackoffSeconds must be at least retry.backoffSeconds' -- \
  apply_doc bad-backoff <<<"$(fr bad-backoff 'template: {image: a}' 'retry: {backoffSeconds: 600}')"
check "retry.maxAttempts 0 is rejected" expect_reject 'spec.retry.maxAttempts' 'greater than or equal to 1' -- \
  apply_doc zero-attempts <<<"$(fr zero-attempts 'template: {image: a}' 'retry: {maxAttempts: 0}')"
check "retry.maxAttempts 101 is rejected" expect_reject 'spec.retry.maxAttempts' 'less than or equal to 100' -- \
  apply_doc many-attempts <<<"$(fr many-attempts 'template: {image: a}' 'retry: {maxAttempts: 101}')"
check "a flow name that is not a DNS label is rejected" expect_reject 'spec.flow' -- \
  apply_doc bad-flow <<<"$(fr bad-flow 'template: {image: a}' 'flow: My_Flow')"
check "attemptDeadlineSeconds 0 is rejected" expect_reject 'spec.attemptDeadlineSeconds' -- \
  apply_doc zero-deadline <<<"$(fr zero-deadline 'template: {image: a}' 'attemptDeadlineSeconds: 0')"
params65=$(for i in $(seq 1 65); do printf 'k%d: %d, ' "$i" "$i"; done)
check "65 top-level parameters are rejected" expect_reject 'spec.parameters: Too many' -- \
  apply_doc many-params <<<"$(fr many-params 'template: {image: a}' "parameters: {${params65%, }}")"
check "a misspelt field is rejected (kubectl's strict field validation)" expect_reject 'unknown field "spec.template.imagee"' -- \
  apply_doc typo <<<"$(fr typo 'template: {image: a, imagee: b}')"

# ---- spec.replay (issue 14): validated at admission with a message naming the field ----
check "a replay without a source name is rejected" expect_reject 'spec.replay.from.run: Required value' -- \
  apply_doc r-norun <<<"$(fr r-norun 'template: {image: a}' 'replay: {from: {checkpoint: analyze}}')"
check "a replay with an empty source name is rejected" expect_reject 'spec.replay.from.run' 'at least 1 chars long' -- \
  apply_doc r-emptyrun <<<"$(fr r-emptyrun 'template: {image: a}' 'replay: {from: {run: "", checkpoint: analyze}}')"
check "a replay of a run in another namespace (ns/name) is rejected" expect_reject \
  'spec.replay.from.run is the name of a FlowRun in this namespace, without a namespace/ prefix' -- \
  apply_doc r-ns <<<"$(fr r-ns 'template: {image: a}' 'replay: {from: {run: team-b/research-1, checkpoint: analyze}}')"
check "a replay source that is no FlowRun name is rejected" expect_reject 'spec.replay.from.run must be a FlowRun name' -- \
  apply_doc r-badname <<<"$(fr r-badname 'template: {image: a}' 'replay: {from: {run: Research_1, checkpoint: analyze}}')"
check "a replay without a cut is rejected" expect_reject 'spec.replay.from.checkpoint: Required value' -- \
  apply_doc r-nocut <<<"$(fr r-nocut 'template: {image: a}' 'replay: {from: {run: research-1}}')"
check "a replay with an empty cut is rejected" expect_reject 'spec.replay.from.checkpoint' 'at least 1 chars long' -- \
  apply_doc r-emptycut <<<"$(fr r-emptycut 'template: {image: a}' 'replay: {from: {run: research-1, checkpoint: ""}}')"
check "a replay cut longer than 1024 characters is rejected" expect_reject 'spec.replay.from.checkpoint: Too long' -- \
  apply_doc r-longcut <<<"$(fr r-longcut 'template: {image: a}' "replay: {from: {run: research-1, checkpoint: $(printf 'c%.0s' {1..1025})}}")"
check "a replay cut at occurrence 0 is rejected" expect_reject 'spec.replay.from.occurrence' 'greater than or equal to 1' -- \
  apply_doc r-occ0 <<<"$(fr r-occ0 'template: {image: a}' 'replay: {from: {run: research-1, checkpoint: analyze, occurrence: 0}}')"
check "a replay without from is rejected" expect_reject 'spec.replay.from: Required value' -- \
  apply_doc r-nofrom <<<"$(fr r-nofrom 'template: {image: a}' 'replay: {outputs: {research: x}}')"
check "an outputFrom entry without a ConfigMap key is rejected" expect_reject 'spec.replay.outputFrom.research.configMapKeyRef.key: Required value' -- \
  apply_doc r-cmref <<<"$(fr r-cmref 'template: {image: a}' 'replay: {from: {run: research-1, checkpoint: analyze}, outputFrom: {research: {configMapKeyRef: {name: notes}}}}')"
replay_doc=$(fr r-ok 'template: {image: a}' \
  'replay: {from: {run: research-1, checkpoint: "search[q]", uid: "1234"}, outputs: {research: {notes: "edited", count: 2}}, outputFrom: {summary: {configMapKeyRef: {name: notes, key: s.json}}}, answers: {proceed: true}}')
check "a valid replay is accepted, occurrence defaulted to 1, outputs and answers kept as JSON" eq \
  'research-1 search[q] 1 1234 {"count":2,"notes":"edited"} true notes' \
  bash -c '"$1" apply -f - >/dev/null <<<"$2" && "$1" get flowrun r-ok -o jsonpath="{.spec.replay.from.run} {.spec.replay.from.checkpoint} {.spec.replay.from.occurrence} {.spec.replay.from.uid} {.spec.replay.outputs.research} {.spec.replay.answers.proceed} {.spec.replay.outputFrom.summary.configMapKeyRef.name}"' _ "$K" "$replay_doc"
check "changing spec.replay.from.checkpoint is rejected" expect_reject \
  'spec.replay: Forbidden: spec.replay is immutable: the replay was prepared from it' -- \
  "$K" patch flowrun r-ok --type=merge -p '{"spec":{"replay":{"from":{"checkpoint":"analyze"}}}}'
check "changing a replay output is rejected" expect_reject 'spec.replay is immutable' -- \
  "$K" patch flowrun r-ok --type=merge -p '{"spec":{"replay":{"outputs":{"research":"other"}}}}'
check "changing a replay answer is rejected" expect_reject 'spec.replay is immutable' -- \
  "$K" patch flowrun r-ok --type=merge -p '{"spec":{"replay":{"answers":{"proceed":false}}}}'
check "removing spec.replay is rejected" expect_reject \
  'spec.replay: Forbidden: spec.replay cannot be added to or removed from an existing FlowRun' -- \
  "$K" patch flowrun r-ok --type=merge -p '{"spec":{"replay":null}}'
check "adding spec.replay to an existing FlowRun is rejected" expect_reject \
  'spec.replay cannot be added to or removed from an existing FlowRun: create a new FlowRun to replay a run' -- \
  bash -c '"$1" apply -f - >/dev/null <<<"$2" && "$1" patch flowrun r-late --type=merge -p "{\"spec\":{\"replay\":{\"from\":{\"run\":\"research-1\",\"checkpoint\":\"analyze\"}}}}"' _ \
  "$K" "$(fr r-late 'template: {image: a}')"
check "a replay's budget stays mutable" expect_ok "$K" patch flowrun r-ok --type=merge -p '{"spec":{"budgetUSD":3}}'
check "status.replay and status.cost.inheritedUsd (decimal text) are stored" eq 'research-1 4 0.0123 false research' \
  bash -c '"$1" patch flowrun r-ok --subresource=status --type=merge -p "{\"status\":{\"replay\":{\"sourceName\":\"research-1\",\"sourceUid\":\"1234\",\"cut\":{\"checkpoint\":\"analyze\",\"occurrence\":1},\"preparedAt\":\"2026-01-02T03:04:05Z\",\"snapshotCheckpoints\":4,\"copiedCheckpoints\":2,\"inheritedUsd\":\"0.0123\",\"cutReached\":false,\"outputs\":[\"research\"],\"answers\":[\"proceed\"]},\"cost\":{\"usd\":0,\"inheritedUsd\":\"0.0123\"}}}" >/dev/null && "$1" get flowrun r-ok -o jsonpath="{.status.replay.sourceName} {.status.replay.snapshotCheckpoints} {.status.cost.inheritedUsd} {.status.replay.cutReached} {.status.replay.outputs[0]}"' _ "$K"
check "an inheritedUsd that is no decimal text (a float's exponent form) is rejected" expect_reject 'status.cost.inheritedUsd' -- \
  "$K" patch flowrun r-ok --subresource=status --type=merge -p '{"status":{"cost":{"inheritedUsd":"1.9e-05"}}}'
"$K" delete flowrun r-ok r-late --wait=false >/dev/null 2>&1

# ---- what is mutable (all through kubectl apply of an edited example) ----
edited() { # edited <sed expression...>: the example, edited, in a file whose path is printed
  local f=$DIR/edited.yaml e args=()
  for e in "$@"; do args+=(-e "$e"); done
  sed "${args[@]}" "$EXAMPLE" >"$f" && echo "$f"
}
check "changing template.image is rejected" expect_reject 'spec.template: Forbidden: spec.template is immutable: create a new FlowRun to change the agent' -- \
  "$K" apply -f "$(edited 's|flowrun/research-agent:0.1.0|flowrun/research-agent:0.2.0|')"
check "changing template.env is rejected" expect_reject 'spec.template is immutable' -- \
  "$K" apply -f "$(edited 's|value: gpt-4o-mini|value: gpt-4o|')"
check "changing parameters is rejected" expect_reject 'spec.parameters is immutable' -- \
  "$K" apply -f "$(edited 's|topic: durable execution for AI agents|topic: something else|')"
check "adding a parameter is rejected" expect_reject 'spec.parameters is immutable' -- \
  "$K" apply -f "$(edited 's|^  parameters:$|  parameters:\n    depth: 3|')"
check "changing flow is rejected" expect_reject 'spec.flow: Forbidden: spec.flow is immutable' -- \
  "$K" apply -f "$(edited 's|^  flow: research|  flow: other|')"
check "changing retry is rejected" expect_reject 'spec.retry is immutable' -- \
  "$K" apply -f "$(edited 's|maxAttempts: 3|maxAttempts: 5|')"
check "changing database is rejected" expect_reject 'spec.database is immutable' -- \
  "$K" apply -f "$(edited 's|name: flowrun-db|name: other-db|')"
check "adding approvers is rejected" expect_reject 'spec.approvers is immutable' -- \
  "$K" apply -f "$(edited 's|^  flow: research|  flow: research\n  approvers: {users: [mallory]}|')"
check "changing waitTimeoutSeconds is rejected" expect_reject 'spec.waitTimeoutSeconds and spec.onWaitTimeout are immutable' -- \
  "$K" apply -f "$(edited 's|waitTimeoutSeconds: 86400|waitTimeoutSeconds: 60|')"
check "raising budgetUSD is accepted" expect_ok "$K" apply -f "$(edited 's|budgetUSD: 1.0|budgetUSD: 2.5|')"
check "... and stored" eq 2.5 jp research-1 '{.spec.budgetUSD}'
check "changing ttlSecondsAfterFinished is accepted" expect_ok "$K" apply -f "$(edited 's|budgetUSD: 1.0|budgetUSD: 2.5|' 's|ttlSecondsAfterFinished: 604800|ttlSecondsAfterFinished: 60|')"
check "removing the budget is accepted" expect_ok "$K" apply -f "$(edited '/budgetUSD:/d' 's|ttlSecondsAfterFinished: 604800|ttlSecondsAfterFinished: 60|')"
check "... and it is gone" eq "" jp research-1 '{.spec.budgetUSD}'
check "budget and ttl changes bump metadata.generation (2 -> 4)" eq 4 jp research-1 '{.metadata.generation}'
cancelled=$(edited 's|budgetUSD: 1.0|budgetUSD: 2.5\n  cancel: true|')
check "cancel: true is accepted (also while Waiting)" expect_ok "$K" apply -f "$cancelled"
check "... and stored" eq true jp research-1 '{.spec.cancel}'
check "cancel true -> false is rejected" expect_reject 'spec.cancel: Forbidden: spec.cancel cannot be switched back to false' -- \
  "$K" apply -f "$(edited 's|budgetUSD: 1.0|budgetUSD: 2.5\n  cancel: false|')"
check "removing cancel: true is rejected too" expect_reject 'spec.cancel cannot be switched back to false' -- \
  "$K" apply -f "$(edited 's|budgetUSD: 1.0|budgetUSD: 2.5|')"
check "cancel: false -> false (no change) is accepted" bash -c \
  "'$K' apply -f - >/dev/null <<<\"\$1\" && '$K' patch flowrun c2 --type=merge -p '{\"spec\":{\"cancel\":false,\"budgetUSD\":1}}' >/dev/null" _ \
  "$(fr c2 'template: {image: a}' 'cancel: false')"

# ---- the status subresource ----
check "an answer merge-patched through --subresource=status is stored" expect_ok "$K" patch flowrun research-1 \
  --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}'
check "... status.answers.proceed is true" eq true jp research-1 '{.status.answers.proceed}'
check "any JSON answer is kept as JSON (object, string, number)" bash -c \
  "'$K' patch flowrun research-1 --subresource=status --type=merge -p '{\"status\":{\"answers\":{\"plan\":{\"choice\":\"b\",\"steps\":[1,2]},\"note\":\"ok\",\"n\":3}}}' >/dev/null &&
   [[ \$('$K' get flowrun research-1 -o jsonpath='{.status.answers}') == '{\"n\":3,\"note\":\"ok\",\"plan\":{\"choice\":\"b\",\"steps\":[1,2]},\"proceed\":true}' ]]"
check "the answer patch left the rest of the status alone" eq "Waiting proceed" jp research-1 '{.status.phase} {.status.wait.name}'
before=$(jp research-1 '{.spec.budgetUSD} {.spec.template.image} {.metadata.generation}')
check "a spec change through /status is accepted as a request ..." expect_ok "$K" patch flowrun research-1 \
  --subresource=status --type=merge -p '{"spec":{"budgetUSD":99,"template":{"image":"evil"}},"status":{"message":"via status"}}'
check "... but ignored: spec and generation unchanged, status written" eq "$before via status" \
  jp research-1 '{.spec.budgetUSD} {.spec.template.image} {.metadata.generation} {.status.message}'
check "a status change through the main resource is ignored" bash -c \
  "'$K' patch flowrun research-1 --type=merge -p '{\"status\":{\"phase\":\"Succeeded\"}}' >/dev/null 2>&1; [[ \$('$K' get flowrun research-1 -o jsonpath='{.status.phase}') == Waiting ]]"
check "status in a create request is dropped (no answers smuggled in at creation)" bash -c \
  "'$K' create -f - >/dev/null <<<\"\$1\" && [[ -z \$('$K' get flowrun smuggle -o jsonpath='{.status}') ]]" _ \
  "$(fr smuggle 'template: {image: a}'; printf 'status:\n  answers: {proceed: true}\n')"
max_status() { # a status with every bounded field at its limit
  python3 -c '
import json
t = "2026-01-02T03:04:05Z"
att = [{"attempt": 100, "job": "j" * 63, "startTime": t, "endTime": t, "outcome": "o" * 32, "reason": "R" * 128,
        "message": "m" * 256} for _ in range(50)]
conds = [{"type": "T" * 127 + str(i), "status": "Unknown", "reason": "R" * 128, "message": "m" * 512,
          "lastTransitionTime": t, "observedGeneration": 2**62} for i in range(8)]
st = {"phase": "BudgetExceeded", "attempt": 100, "currentJob": "j" * 63, "attempts": att,
      "wait": {"name": "w" * 253, "question": "q" * 4096, "askedAt": t, "deadline": t, "onTimeout": "default"},
      "checkpoints": {"live": 2**62, "cached": 2**62, "completed": 2**62},
      "cost": dict({k: 2**62 for k in ["usd", "inputTokens", "outputTokens", "cachedTokens", "llmCalls", "savedUSD", "savedTokens",
                                       "unfinishedCalls", "omittedModels"]},
                   display="$" + "9" * 15, inheritedUsd="9" * 22 + "." + "9" * 9,
                   byModel=[{"model": "m" * 128, "usd": "9" * 22 + "." + "9" * 9, "llmCalls": 2**62, "inputTokens": 2**62,
                             "outputTokens": 2**62} for _ in range(5)],
                   topCalls=[{"checkpoint": "c" * 253, "occurrence": 2**31 - 1, "model": "m" * 128, "usd": "9" * 22 + "." + "9" * 9,
                              "inputTokens": 2**62, "outputTokens": 2**62, "latencyMs": 2**62, "attempt": 2**31 - 1}
                             for _ in range(3)]),
      "result": "r" * 4096, "message": "m" * 1024, "conditions": conds, "observedGeneration": 2**62}
print(json.dumps({"status": st}, separators=(",", ":")))'
}
"$K" apply -f - >/dev/null <<<"$(fr big 'template: {image: a}')"
max_status >"$DIR/max-status.json"
# (52 KiB: the 48 KiB of the other fields plus status.cost's byModel and topCalls, about 3 KiB at their limits.)
check "a status with every bounded field at its limit is accepted ($(wc -c <"$DIR/max-status.json") bytes, < 52 KiB)" bash -c \
  "[[ \$(wc -c <'$DIR/max-status.json') -lt 53248 ]] && '$K' patch flowrun big --subresource=status --type=merge --patch-file='$DIR/max-status.json' >/dev/null"
check "... and the summaries are stored as written" eq "5 3 ccc" bash -c \
  "'$K' get flowrun big -o json | python3 -c 'import json,sys; c = json.load(sys.stdin)[\"status\"][\"cost\"]; print(len(c[\"byModel\"]), len(c[\"topCalls\"]), c[\"topCalls\"][0][\"checkpoint\"][:3])'"
check "a sixth status.cost.byModel entry is rejected" expect_reject 'status.cost.byModel: Too many' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p "{\"status\":{\"cost\":{\"byModel\":[$(printf '{"model":"m","usd":"1"},%.0s' {1..5}){\"model\":\"m\",\"usd\":\"1\"}]}}}"
check "a fourth status.cost.topCalls entry is rejected" expect_reject 'status.cost.topCalls: Too many' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p '{"status":{"cost":{"topCalls":[{"usd":"1"},{"usd":"1"},{"usd":"1"},{"usd":"1"}]}}}'
check "money as float text (1.9050000000000002e-05) is rejected in the summaries" expect_reject 'status.cost.topCalls[0].usd' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p '{"status":{"cost":{"topCalls":[{"usd":"1.9050000000000002e-05"}]}}}'
check "an unknown phase is rejected" expect_reject 'status.phase: Unsupported value: "Sleeping"' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p '{"status":{"phase":"Sleeping"}}'
check "a 4097-character result is rejected" expect_reject 'status.result: Too long' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p "{\"status\":{\"result\":\"$(printf 'r%.0s' {1..4097})\"}}"
check "a 254-character wait name in answers is rejected" expect_reject 'a key is the name of a wait, 1..253 characters' -- \
  "$K" patch flowrun research-1 --subresource=status --type=merge -p "{\"status\":{\"answers\":{\"$(printf 'w%.0s' {1..254})\":true}}}"
check "two conditions of one type are rejected" expect_reject 'Duplicate value' -- \
  "$K" patch flowrun research-1 --subresource=status --type=json -p '[{"op":"add","path":"/status/conditions/-","value":{"type":"Waiting","status":"False","reason":"X","message":"","lastTransitionTime":"2026-01-02T03:04:05Z"}}]'

# ---- approvers (crds/flowrun-policies.yaml) ----
C=$DIR/cluster
for u in "alice" "bob research-leads" "carol"; do
  # shellcheck disable=SC2086 # user and groups as separate words
  "$CLUSTER/mint-user.sh" "$C" $u >/dev/null || nok "mint-user.sh $u"
done
"$K" create clusterrole flowrun-answerer --verb=get,patch,update --resource=flowruns,flowruns/status >/dev/null
"$K" create clusterrolebinding flowrun-answerer --clusterrole=flowrun-answerer --user=alice --user=bob --user=carol >/dev/null
"$K" apply -f - >/dev/null <<<"$(fr gated 'template: {image: a}' 'approvers: {users: [alice], groups: [research-leads]}')
---
$(fr nobody 'template: {image: a}' 'approvers: {users: []}')
---
$(fr open 'template: {image: a}')"
answer_as() { # answer_as <user> <flowrun> <json answers>
  "$K" --kubeconfig "$C/users/$1.kubeconfig" patch flowrun "$2" --subresource=status --type=merge -p "{\"status\":{\"answers\":$3}}"
}
check "people cannot answer a run that waits for nothing (flowrun.dev-status-writers)" expect_reject \
  'FlowRun open has no open wait' -- answer_as carol open '{"proceed":true}'
# The cluster admin stands in for the controller: the runs wait for "proceed".
for r in gated nobody open; do
  "$K" patch flowrun $r --subresource=status --type=merge -p '{"status":{"phase":"Waiting","wait":{"name":"proceed","question":"Proceed?"}}}' >/dev/null
done
check "approvers: a user not listed (carol) is refused" expect_reject 'carol may not answer the waits of FlowRun gated' 'spec.approvers' -- \
  answer_as carol gated '{"proceed":true}'
check "approvers: a listed user (alice) may answer" expect_ok answer_as alice gated '{"proceed":true}'
check "approvers: a user not listed cannot remove an answer" expect_reject 'denied request' -- \
  answer_as carol gated '{"proceed":null}'
check "a person (carol) cannot write the controller's status fields" expect_reject \
  'carol may not change the status of FlowRun gated' 'written by the flowrun controller' -- \
  answer_as carol gated '{"proceed":true},"phase":"Running"'
# Both flowrun.dev-answers ("may change only status.answers") and flowrun.dev-status-writers
# refuse it; which message the apiserver reports first is not fixed.
check "an answer cannot be sent together with other status changes" expect_reject 'denied request' "ValidatingAdmissionPolicy 'flowrun.dev-" -- \
  answer_as alice gated '{"proceed":false},"phase":"Succeeded"'
check "... and nothing of it was stored" eq "true Waiting" jp gated '{.status.answers.proceed} {.status.phase}'

# ---- answers are write-once for people (flowrun.dev-status-writers) ----
check "write-once: a second, different answer (bob, an approver) is refused" expect_reject \
  "FlowRun gated has no open wait for another answer: 'proceed' was already answered" 'an answer is final once given' \
  'only after the controller rejected it (condition AnswerAccepted, reason InvalidAnswer)' -- \
  answer_as bob gated '{"proceed":false}'
check "write-once: the same answer again is accepted (changes nothing)" expect_ok answer_as bob gated '{"proceed":true}'
check "write-once: a person cannot remove an answer" expect_reject 'FlowRun gated: an answer cannot be removed once given' -- \
  answer_as alice gated '{"proceed":null}'
check "write-once: the first answer stands" eq true jp gated '{.status.answers.proceed}'
# The cluster admin stands in for the controller: its verdict on an older wait does not unlock this one ...
invalid() { # invalid <flowrun> <wait>: the controller's condition for an answer that failed its schema
  "$K" patch flowrun "$1" --subresource=status --type=merge -p "{\"status\":{\"conditions\":[{\"type\":\"AnswerAccepted\",
    \"status\":\"False\",\"reason\":\"InvalidAnswer\",\"message\":\"the answer to '$2' does not match its schema: expected boolean\",
    \"lastTransitionTime\":\"2026-01-02T03:04:05Z\"}]}}" >/dev/null
}
invalid gated earlier
check "write-once: a rejection of another wait's answer does not unlock this one" expect_reject \
  'an answer is final once given' -- answer_as bob gated '{"proceed":false}'
# ... its rejection of this wait's answer does.
invalid gated proceed
check "after the controller rejected the answer (InvalidAnswer), an approver may correct it" expect_ok \
  answer_as bob gated '{"proceed":false}'
check "... stored" eq false jp gated '{.status.answers.proceed}'
check "... but still not remove it" expect_reject 'an answer cannot be removed once given' -- answer_as bob gated '{"proceed":null}'
# Two people answer at the same moment, over kept-alive connections so that the PATCHes reach the
# apiserver together: whichever is applied first wins, the other is refused (the apiserver re-runs
# admission against the latest object when concurrent updates collide); never both accepted.
race() {
  python3 - "$C" "$@" <<'PY'
import http.client, json, os, ssl, sys, threading
cluster, n = sys.argv[1], int(sys.argv[2])
port = int([l.split("=", 1)[1] for l in open(os.path.join(cluster, "cluster.env")) if l.startswith("APISERVER_PORT=")][-1])
def conn(user):
    ctx = ssl.create_default_context(cafile=os.path.join(cluster, "pki", "ca.crt"))
    d = os.path.join(cluster, "users") if user else os.path.join(cluster, "pki")
    ctx.load_cert_chain(os.path.join(d, (user or "admin") + ".crt"), os.path.join(d, (user or "admin") + ".key"))
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
def call(c, method, path, body, ctype="application/merge-patch+json"):
    c.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": ctype})
    r = c.getresponse()
    return r.status, r.read()
FR = "/apis/flowrun.dev/v1alpha1/namespaces/default/flowruns"
admin, people = conn(None), {"alice": conn("alice"), "bob": conn("bob")}
both = one = 0
for i in range(n):
    name = "race-%d" % i
    call(admin, "POST", FR, {"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
                             "spec": {"template": {"image": "a"}}}, "application/json")
    call(admin, "PATCH", FR + "/" + name + "/status", {"status": {"phase": "Waiting", "wait": {"name": "proceed"}}})
    got, go = {}, threading.Barrier(2)
    def answer(user, value):
        go.wait()
        got[user] = call(people[user], "PATCH", FR + "/" + name + "/status", {"status": {"answers": {"proceed": value}}})
    ts = [threading.Thread(target=answer, args=a) for a in (("alice", True), ("bob", False))]
    [t.start() for t in ts]; [t.join() for t in ts]
    ok = [u for u, (code, _) in got.items() if code == 200]
    stored = json.loads(call(admin, "GET", FR + "/" + name, None)[1])["status"]["answers"]["proceed"]
    if len(ok) != 1 or stored != (ok[0] == "alice"):
        print("race %d: accepted %s, stored %s: %s" % (i, ok, stored, got)); both += 1; continue
    loser = [body for code, body in got.values() if code != 200][0].decode()
    if "already answered" not in loser:
        print("race %d: refused without the reason: %s" % (i, loser)); both += 1; continue
    one += 1
print("%d races: exactly one answer accepted and stored in %d" % (n, one))
sys.exit(1 if both else 0)
PY
}
check "two people answering at once: exactly one accepted and stored, the other refused (20 races)" race 20
check "an approver cannot answer a wait that is not open" expect_reject "FlowRun gated waits for 'proceed'" -- \
  answer_as alice gated '{"later":true}'
check "approvers present but empty: nobody may answer, not even a cluster admin" expect_reject 'nobody may answer the waits of FlowRun nobody' -- \
  "$K" patch flowrun nobody --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}'
check "no approvers: anyone RBAC lets patch flowruns/status may answer" expect_ok answer_as carol open '{"proceed":true}'
check "a cluster admin (system:masters) is not bound by write-once: replaces carol's answer while the run waits" expect_ok \
  "$K" patch flowrun open --subresource=status --type=merge -p '{"status":{"answers":{"proceed":false}}}'
check "... stored" eq false jp open '{.status.answers.proceed}'

# ---- every manifest in examples/ passes a server-side dry run ----
# In a namespace of its own: research-1 in default has been cancelled above.
"$K" create namespace dry-run >/dev/null
dry_runs=0
while IFS= read -r -d '' f; do
  grep -qE '^kind:' "$f" || continue # not a Kubernetes manifest (e.g. prices.yaml)
  dry_runs=$((dry_runs + 1))
  check "kubectl apply --dry-run=server -f ${f#"$ROOT"/}" expect_ok "$K" apply -n dry-run --dry-run=server -f "$f"
done < <(find "$ROOT/examples" -name '*.yaml' -print0 | sort -z)
check "examples/ holds at least one FlowRun manifest" test "$dry_runs" -ge 1

summary
[[ $fail -eq 0 ]]
