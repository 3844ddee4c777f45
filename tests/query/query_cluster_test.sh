#!/usr/bin/env bash
# The read API query.flowrun.dev through the real aggregation path: a real kube-apiserver
# configured for aggregated APIs (cluster.sh FLOWRUN_AGGREGATION=1: front-proxy CA, requestheader
# and proxy-client flags), an APIService + a selector-less Service + EndpointSlices pointing at two
# real flowrun-controller processes on this machine, a real PostgreSQL, the real kubectl and
# minted users. It proves (docs/read-api.md):
#   - a viewer bound to flowrun-viewer in team-a reads summary, checkpoints, calls and costs of
#     team-a's runs, gets 403 in team-b and 403 on outputs/artifacts; a payload reader reads them;
#   - straight to a controller's port: anonymous, a forged X-Remote-User, a certificate of the
#     cluster's client CA (not the front proxy's) are 401; the front proxy's own certificate with a
#     user the SubjectAccessReview denies is 403 (the controller checks RBAC itself);
#   - `kubectl get --raw` answers match the database exactly (spend to the cent and exactly as
#     decimal text; the top call is the most expensive one; 1,205 calls page in bounded pages);
#   - discovery: `kubectl api-resources` works, a namespace deletes while the API is up;
#   - two replicas (one leads), SIGKILL one: reads continue through the other; with none left the
#     user gets a clear 503.
# The controllers run as the cluster admin (not the chart's ServiceAccount: tests/helm checks those
# permissions). EndpointSlices refuse loopback addresses, so the controllers listen on this
# machine's first non-loopback IPv4 address.
# Usage: query_cluster_test.sh <flowrun-controller binary>
# Last line: "N passed, M failed". FLOWRUN_TEST_KEEP=1 keeps the temporary dir.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER=$ROOT/tests/cluster
CONTROLLER=${1:?usage: $0 <flowrun-controller>}

# shellcheck source=../cluster/checks.sh
source "$CLUSTER/checks.sh"
export FLOWRUN_AGGREGATION=1
test_cluster query
# The postgres user must traverse its directory's parents: not under mktemp's 0700 $DIR.
PGDIR=$(mktemp -d /tmp/flowrun-query-pg.XXXXXX)
chmod 755 "$PGDIR"
declare -A CPID=()
cleanup() {
  local p
  for p in "${CPID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$ROOT/scripts/pg-local.sh" stop "$PGDIR" >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
  "$_TEST_CLUSTER_SH" stop "$DIR/cluster" >/dev/null 2>&1 || true
  if [[ ${FLOWRUN_TEST_KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

HOST_IP=$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
if [[ -z $HOST_IP ]]; then nok "a non-loopback IPv4 address for the EndpointSlice"; summary; exit 1; fi
DB=$("$ROOT/scripts/pg-local.sh" start "$PGDIR" 2>"$DIR/pg.log" | tail -n1)
check "PostgreSQL started" test -n "$DB"
PSQL() { psql "$DB" -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# ---------------------------------------------------------------- the serving certificate
PKI=$DIR/query-pki
mkdir -p "$PKI"
(
  cd "$PKI" || exit 1
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 2 -subj /CN=flowrun-query-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ca.crt
  openssl ecparam -name prime256v1 -genkey -noout -out tls.key
  openssl req -new -key tls.key -subj /CN=flowrun-query.flowrun-system.svc -out tls.csr
  printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
    extendedKeyUsage=serverAuth "subjectAltName=DNS:flowrun-query.flowrun-system.svc,IP:$HOST_IP" >tls.ext
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial 0x0123456789 -days 2 -sha256 -extfile tls.ext -out tls.crt
) >/dev/null 2>&1
check "serving certificate for flowrun-query.flowrun-system.svc" test -s "$PKI/tls.crt"

# ---------------------------------------------------------------- the controllers
"$K" apply -f "$ROOT/crds/flowrun.dev_flowruns.yaml" >/dev/null
crd_established "$K" flowruns.flowrun.dev 60 || { nok "the FlowRun CRD is Established"; summary; exit 1; }
for ns in flowrun-system team-a team-b; do "$K" create namespace "$ns" >/dev/null; done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'; }
start_controller() { # start_controller <name> <port>
  FLOWRUN_DATABASE_URL=$DB "$CONTROLLER" --kubeconfig "$KUBECONFIG" --leader-elect \
    --leader-election-namespace=flowrun-system --health-addr 127.0.0.1:0 --query-addr "$HOST_IP:$2" \
    --query-tls-cert-file "$PKI/tls.crt" --query-tls-key-file "$PKI/tls.key" --query-authz-cache-ttl-ms 1000 \
    >"$DIR/controller-$1.log" 2>&1 &
  CPID[$1]=$!
}
PORT_A=$(free_port)
PORT_B=$(free_port)
start_controller a "$PORT_A"
check "controller a: read API listening (and migrated the database)" wait_until 60 grep -q '"read API listening"' "$DIR/controller-a.log"
start_controller b "$PORT_B"
check "controller b: read API listening" wait_until 60 grep -q '"read API listening"' "$DIR/controller-b.log"
check "one of them leads, the other stands by and still serves" wait_until 60 bash -c \
  "[[ \$(grep -l '\"became leader\"' '$DIR'/controller-*.log | wc -l) == 1 ]]"

# Runs straight into the database, as agents write them: r1 in team-a (1,205 calls, checkpoints,
# artifacts, an open wait), r2 in team-a (for diff), r1 in team-b.
PSQL "
INSERT INTO flowrun.runs (run_uid, namespace, name, flow, status, attempt, epoch, budget_usd)
  VALUES ('uid-a1', 'team-a', 'r1', 'research', 'waiting', 2, 2, 2.5),
         ('uid-a2', 'team-a', 'r2', 'research', 'succeeded', 1, 1, NULL),
         ('uid-b1', 'team-b', 'r1', 'research', 'succeeded', 1, 1, NULL);
INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, saved_usd)
  VALUES ('uid-a1', 1, 1, 'waiting', 0), ('uid-a1', 2, 2, 'running', 0.0125);
INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt, model, input_tokens,
                               output_tokens, cached_tokens, latency_ms, cost_usd, price_source)
  SELECT 'uid-a1', 1 + (i / 700), i, 'step' || (i % 7), 1, 1, CASE WHEN i % 3 = 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END,
         100 + i, 10 + i, 0, 12.5, CASE WHEN i % 101 = 0 THEN NULL ELSE (i % 89) * 0.0000019050000000000002 END, 'table'
  FROM generate_series(0, 1204) i;
INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, attempt, model, input_tokens, output_tokens, cached_tokens,
                               latency_ms, cost_usd, price_source)
  VALUES ('uid-a2', 1, 0, 1, 'gpt-4o', 1, 1, 0, 1, 0.25, 'table'), ('uid-b1', 1, 0, 1, 'gpt-4o', 1, 1, 0, 1, 9, 'table');
INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch,
                                 started_at, cost_usd)
  SELECT 'uid-a1', 'step' || i, 1, 'step', 'fp', 'completed', jsonb_build_object('secret', 'customer-' || i),
         1 + i / 4, 1, now() - (10 - i) * interval '1 minute', i * 0.001 FROM generate_series(0, 6) i;
INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch, cost_usd)
  VALUES ('uid-a2', 'step0', 1, 'step', 'fp', 'completed', '{\"secret\": \"customer-0\"}', 1, 1, 0.25);
INSERT INTO flowrun.artifacts (run_uid, name, version, epoch, seq, content_type, data, size_bytes, sha256, checkpoint)
  VALUES ('uid-a1', 'report.md', 1, 1, 1, 'text/markdown', convert_to('# Report', 'UTF8'), 8, 'sha-1', 'step6');
INSERT INTO flowrun.waits (run_uid, name, occurrence, question, asked_at, on_timeout)
  VALUES ('uid-a1', 'proceed', 1, 'Proceed?', now(), 'fail');" >/dev/null
check "test rows written" eq 1205 PSQL "SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'uid-a1'"

# ---------------------------------------------------------------- aggregation: APIService, Service, EndpointSlices
slice() { # slice <name> <port> <ready>
  cat <<YAML
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: flowrun-query-$1
  namespace: flowrun-system
  labels: {kubernetes.io/service-name: flowrun-query}
addressType: IPv4
ports: [{name: https, port: $2, protocol: TCP}]
endpoints: [{addresses: ["$HOST_IP"], conditions: {ready: $3}}]
YAML
}
{
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: flowrun-query, namespace: flowrun-system}
spec:
  ports: [{name: https, port: 443, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.query.flowrun.dev}
spec:
  group: query.flowrun.dev
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 100
  service: {name: flowrun-query, namespace: flowrun-system, port: 443}
  caBundle: $(base64 -w0 <"$PKI/ca.crt")
---
YAML
  slice a "$PORT_A" true
  echo ---
  slice b "$PORT_B" true
} >"$DIR/aggregation.yaml"
check "APIService, Service and EndpointSlices applied" expect_ok "$K" apply -f "$DIR/aggregation.yaml"
check "the APIService becomes Available" wait_until 90 bash -c \
  "[[ \$('$K' get apiservice v1alpha1.query.flowrun.dev -o jsonpath='{.status.conditions[?(@.type==\"Available\")].status}') == True ]]"
"$K" get apiservice v1alpha1.query.flowrun.dev -o jsonpath='{.status.conditions}' >"$DIR/apiservice.json" 2>&1

# ---------------------------------------------------------------- people
"$BIN/helm" template flowrun "$ROOT/helm/flowrun" -n flowrun-system --show-only templates/rbac-people.yaml >"$DIR/people.yaml" 2>"$OUT" ||
  nok "helm template of the people's roles"
check "the chart's people roles applied (flowrun-viewer, flowrun-payload-reader, ...)" expect_ok "$K" apply -f "$DIR/people.yaml"
for u in vera paula; do "$CLUSTER/mint-user.sh" "$DIR/cluster" "$u" >/dev/null; done
"$K" -n team-a create rolebinding viewers --clusterrole=flowrun-viewer --user=vera --user=paula >/dev/null
"$K" -n team-a create rolebinding payload --clusterrole=flowrun-payload-reader --user=paula >/dev/null
as() { local u=$1; shift; "$K" --kubeconfig "$DIR/cluster/users/$u.kubeconfig" "$@"; }
API=/apis/query.flowrun.dev/v1alpha1/namespaces
raw() { local u=$1; shift; as "$u" get --raw "$@"; }

for sub in summary checkpoints calls costs; do
  check "viewer reads $sub of a team-a run" expect_ok raw vera "$API/team-a/flowruns/r1/$sub"
done
check "viewer: 403 in team-b" expect_reject 'forbidden' -- raw vera "$API/team-b/flowruns/r1/summary"
check "viewer: 403 on outputs" expect_reject 'forbidden' -- raw vera "$API/team-a/flowruns/r1/outputs/step0"
check "viewer: 403 on artifacts" expect_reject 'forbidden' -- raw vera "$API/team-a/flowruns/r1/artifacts"
check "viewer: 403 on an artifact's bytes" expect_reject 'forbidden' -- raw vera "$API/team-a/flowruns/r1/artifacts/report.md"
check "payload reader reads an output" eq '{"secret":"customer-0"}' bash -c \
  "$(declare -f as raw); K='$K' DIR='$DIR' raw paula '$API/team-a/flowruns/r1/outputs/step0?occurrence=1' |
   python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\"output\"], separators=(\",\", \":\")))'"
check "payload reader reads an artifact's bytes" eq '# Report' raw paula "$API/team-a/flowruns/r1/artifacts/report.md"
check "payload reader lists artifacts" expect_ok raw paula "$API/team-a/flowruns/r1/artifacts"
check "an unknown run: 404 with a Status" expect_reject 'NotFound' 'not found' -- raw vera "$API/team-a/flowruns/nope/summary"

# ---------------------------------------------------------------- straight to a controller's port
direct() { # direct <curl args...>: prints the HTTP code
  curl -sS -o "$DIR/direct.out" -w '%{http_code}' --cacert "$PKI/ca.crt" --resolve "flowrun-query.flowrun-system.svc:$PORT_A:$HOST_IP" "$@"
}
URL="https://flowrun-query.flowrun-system.svc:$PORT_A$API/team-a/flowruns/r1/costs"
check "direct: anonymous is 401" eq 401 direct "$URL"
check "direct: a forged X-Remote-User without the front proxy's certificate is 401" eq 401 direct -H 'X-Remote-User: admin' \
  -H 'X-Remote-Group: system:masters' "$URL"
check "direct: the cluster admin's client certificate (client CA, not the requestheader CA) is 401" eq 401 direct \
  --cert "$DIR/cluster/pki/admin.crt" --key "$DIR/cluster/pki/admin.key" -H 'X-Remote-User: admin' "$URL"
check "direct: the front proxy's certificate with an allowed user answers" eq 200 direct \
  --cert "$FLOWRUN_FRONT_PROXY_CERT" --key "$FLOWRUN_FRONT_PROXY_KEY" -H 'X-Remote-User: vera' "$URL"
check "direct: ... and with a user RBAC denies, the controller's own SubjectAccessReview says 403" eq 403 direct \
  --cert "$FLOWRUN_FRONT_PROXY_CERT" --key "$FLOWRUN_FRONT_PROXY_KEY" -H 'X-Remote-User: vera' \
  "https://flowrun-query.flowrun-system.svc:$PORT_A$API/team-b/flowruns/r1/costs"
check "direct: discovery needs no identity" eq 200 direct "https://flowrun-query.flowrun-system.svc:$PORT_A/apis/query.flowrun.dev/v1alpha1"

# ---------------------------------------------------------------- the answers match the database
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The documented money format, computed from psql's exact float text: 9 decimals, half away from zero.
money() { python3 -c "
from decimal import Decimal, ROUND_HALF_UP; import sys
d = Decimal(sys.argv[1]).quantize(Decimal('1e-9'), rounding=ROUND_HALF_UP)
s = format(d, 'f').rstrip('0')
whole, frac = s.split('.')
print(whole + '.' + frac.ljust(2, '0'))" "$1"; }
SPENT_DB=$(PSQL "SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = 'uid-a1'")
COSTS=$(raw vera "$API/team-a/flowruns/r1/costs")
check "costs: spentUSD is the database's sum, exactly as decimal text" eq "$(money "$SPENT_DB")" j 'd["spentUSD"]' <<<"$COSTS"
check "costs: ... and to the cent" eq "$(PSQL "SELECT round(sum(cost_usd)::numeric, 2) FROM flowrun.llm_calls WHERE run_uid = 'uid-a1'")" \
  j '"%.2f" % float(d["spentUSD"])' <<<"$COSTS"
check "costs: by model sums to the total calls" eq 1205 j 'sum(m["llmCalls"] for m in d["byModel"])' <<<"$COSTS"
check "costs: savedUSD and budgetUSD" eq "0.0125 2.50" j 'd["savedUSD"] + " " + d["budgetUSD"]' <<<"$COSTS"
TOP_DB=$(PSQL "SELECT seq FROM flowrun.llm_calls WHERE run_uid = 'uid-a1' ORDER BY cost_usd DESC NULLS LAST, epoch, seq LIMIT 1")
check "calls?sort=cost&limit=1 is the most expensive call" eq "$TOP_DB" bash -c \
  "$(declare -f as raw); K='$K' DIR='$DIR' raw vera '$API/team-a/flowruns/r1/calls?sort=cost&limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"items\"][0][\"seq\"])'"
check "summary: the same top call, the same spend, the open question" eq "$TOP_DB $(money "$SPENT_DB") Proceed?" bash -c \
  "$(declare -f as raw); K='$K' DIR='$DIR' raw vera '$API/team-a/flowruns/r1/summary' |
   python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"mostExpensiveCall\"][\"seq\"], d[\"totals\"][\"spentUSD\"], d[\"openWait\"][\"question\"])'"
pages() { # every call through kube-apiserver, in pages of 500: "<pages> <calls> <distinct> <max bytes>"
  local tok="" n=0 body
  : >"$DIR/calls.jsonl"
  while :; do
    body=$(raw vera "$API/team-a/flowruns/r1/calls?sort=cost&limit=500${tok:+&continue=$tok}") || return 1
    n=$((n + 1)); echo "$body" >>"$DIR/calls.jsonl"
    tok=$(j 'd["metadata"].get("continue", "")' <<<"$body")
    [[ -n $tok && $n -lt 10 ]] || break
  done
  python3 -c "
import json
pages = [json.loads(l) for l in open('$DIR/calls.jsonl')]
items = [c for p in pages for c in p['items']]
print(len(pages), len(items), len({(c['epoch'], c['seq']) for c in items}), max(len(json.dumps(p)) for p in pages) < 300000)"
}
check "calls: 1,205 calls in 3 bounded pages, none twice" eq "3 1205 1205 True" pages
check "calls: limit above 500 is a 400" expect_reject 'BadRequest' -- raw vera "$API/team-a/flowruns/r1/calls?limit=501"
check "checkpoints: the timeline in start order, cached work marked" eq "step0 cached step6 live" bash -c \
  "$(declare -f as raw); K='$K' DIR='$DIR' raw vera '$API/team-a/flowruns/r1/checkpoints' |
   python3 -c 'import json,sys; i=json.load(sys.stdin)[\"items\"]; print(i[0][\"name\"], i[0][\"origin\"], i[-1][\"name\"], i[-1][\"origin\"])'"
check "diff: r1 vs r2 checkpoint by checkpoint" eq "same onlyInThis" bash -c \
  "$(declare -f as raw); K='$K' DIR='$DIR' raw vera '$API/team-a/flowruns/r1/diff?other=r2' |
   python3 -c 'import json,sys; c=json.load(sys.stdin)[\"checkpoints\"]; print(c[0][\"state\"], c[1][\"state\"])'"

# ---------------------------------------------------------------- discovery and namespaces
# (kubectl api-resources lists only resources with verbs: flowruns here has none, on purpose, so
# the namespace controller finds nothing to delete in this group.)
check "kubectl api-resources works: exit 0, no discovery error" bash -c \
  "'$K' api-resources >'$OUT' 2>'$DIR/api-resources.err' && ! grep -q . '$DIR/api-resources.err' || { cat '$DIR/api-resources.err' >&2; false; }"
check "kube-apiserver's discovery lists the group and its subresources" bash -c \
  "'$K' get --raw /apis | grep -qF '\"name\":\"query.flowrun.dev\"' &&
   '$K' get --raw /apis/query.flowrun.dev/v1alpha1 | grep -qF '\"name\":\"flowruns/costs\"'"
"$K" create namespace doomed >/dev/null
check "a namespace deletes while the API is up" expect_ok "$K" delete namespace doomed --timeout=60s

# ---------------------------------------------------------------- bench (FLOWRUN_QUERY_BENCH=1; printed, never asserted)
if [[ ${FLOWRUN_QUERY_BENCH:-0} == 1 ]]; then
  N=${FLOWRUN_QUERY_BENCH_N:-100}
  APISERVER=$FLOWRUN_APISERVER_URL
  lat() { # lat <label> <command...>: p50/p99 of N runs of the command, in ms
    local label=$1 i t0 t1; shift
    : >"$DIR/lat"
    for ((i = 0; i < N; i++)); do
      t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
      echo $(((t1 - t0) / 1000)) >>"$DIR/lat"
    done
    sort -n "$DIR/lat" | awk -v l="$label" '{ a[NR] = $1 } END {
      i50 = int(NR * 0.5) + 1; i99 = int(NR * 0.99) + 1; if (i99 > NR) i99 = NR
      printf "bench: %-58s p50 %7.2f ms  p99 %7.2f ms  (n=%d)\n", l, a[i50] / 1000, a[i99] / 1000, NR }'
  }
  admin_curl() { curl -fsS --cacert "$FLOWRUN_CLUSTER_CA" --cert "$DIR/cluster/pki/admin.crt" --key "$DIR/cluster/pki/admin.key" "$@"; }
  proxy_curl() { curl -fsS --cacert "$PKI/ca.crt" --resolve "flowrun-query.flowrun-system.svc:$PORT_A:$HOST_IP" \
    --cert "$FLOWRUN_FRONT_PROXY_CERT" --key "$FLOWRUN_FRONT_PROXY_KEY" -H 'X-Remote-User: vera' "$@"; }
  # The issue's two shapes beside r1: a run of 40 checkpoints (one call each) and a run of 10,000
  # calls (over 40 checkpoints, 3 models), written as agents write them.
  PSQL "
  INSERT INTO flowrun.runs (run_uid, namespace, name, flow, status, attempt, epoch)
    VALUES ('uid-b40', 'team-a', 'b40', 'research', 'succeeded', 1, 1), ('uid-b10k', 'team-a', 'b10k', 'research', 'succeeded', 1, 1);
  INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, saved_usd) VALUES ('uid-b40', 1, 1, 'succeeded', 0), ('uid-b10k', 1, 1, 'succeeded', 0);
  INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch, started_at, cost_usd)
    SELECT r, 'step-' || i, 1, 'step', 'fp', 'completed', jsonb_build_object('notes', repeat('x', 200)), 1, 1,
           now() - (40 - i) * interval '1 second', 0.001
    FROM generate_series(1, 40) i, unnest(ARRAY['uid-b40', 'uid-b10k']) r;
  INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt, model, input_tokens,
                                 output_tokens, cached_tokens, latency_ms, cost_usd, price_source)
    SELECT 'uid-b40', 1, i, 'step-' || i, 1, 1, 'gpt-4o-mini', 1000, 200, 0, 900, 0.00027, 'table' FROM generate_series(1, 40) i;
  INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt, model, input_tokens,
                                 output_tokens, cached_tokens, latency_ms, cost_usd, price_source)
    SELECT 'uid-b10k', 1, i, 'step-' || (1 + i % 40), 1, 1, (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet'])[1 + i % 3],
           1000 + i % 500, 200 + i % 50, i % 100, 900, (1 + i % 97) * 0.0000127, 'table' FROM generate_series(1, 10000) i;" >/dev/null
  echo "bench: runs: r1 (1,205 calls, 7 checkpoints), b40 (40 checkpoints, 40 calls), b10k (10,000 calls, 40 checkpoints)"
  for run in r1 b40 b10k; do
    for sub in costs checkpoints "calls?sort=cost&limit=100"; do
      lat "$run $sub via kube-apiserver (aggregation, curl)" admin_curl "$APISERVER$API/team-a/flowruns/$run/$sub"
      lat "$run $sub straight to the controller (curl, front-proxy cert)" proxy_curl "https://flowrun-query.flowrun-system.svc:$PORT_A$API/team-a/flowruns/$run/$sub"
    done
    lat "$run the costs query on PostgreSQL (psql)" PSQL "SELECT model, count(*), sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = (SELECT run_uid FROM flowrun.runs WHERE namespace = 'team-a' AND name = '$run') GROUP BY model"
    lat "$run the checkpoints query on PostgreSQL (psql)" PSQL "SELECT name, occurrence, kind, status, attempt, cost_usd FROM flowrun.checkpoints WHERE run_uid = (SELECT run_uid FROM flowrun.runs WHERE namespace = 'team-a' AND name = '$run') ORDER BY started_at"
  done
  echo "bench: response sizes (b10k): calls?limit=500 $(admin_curl "$APISERVER$API/team-a/flowruns/b10k/calls?limit=500" | wc -c) B," \
    "costs $(admin_curl "$APISERVER$API/team-a/flowruns/b10k/costs" | wc -c) B, checkpoints $(admin_curl "$APISERVER$API/team-a/flowruns/b10k/checkpoints" | wc -c) B"
  lat "a plain GET of a FlowRun list via kube-apiserver (curl)" admin_curl "$APISERVER/apis/flowrun.dev/v1alpha1/namespaces/team-a/flowruns"
  echo "bench: every figure includes a curl/psql process start; compare them with each other"
fi

# ---------------------------------------------------------------- replicas: SIGKILL one
reads_ok() { # reads_ok <n>: n consecutive reads through kube-apiserver succeed
  local i
  for ((i = 0; i < $1; i++)); do raw vera "$API/team-a/flowruns/r1/summary" >/dev/null 2>>"$DIR/reads.err" || return 1; done
}
check "20 reads in a row with both replicas" reads_ok 20
LEADER=$(grep -l '"became leader"' "$DIR"/controller-*.log | head -1 | sed 's/.*controller-\(.\)\.log/\1/')
if [[ $LEADER != a && $LEADER != b ]]; then nok "no leader among the controllers"; summary; exit 1; fi
OTHER=$([[ $LEADER == a ]] && echo b || echo a)
kill -KILL "${CPID[$LEADER]}"
unset "CPID[$LEADER]"
# What the EndpointSlice controller does when the killed pod's readiness fails.
slice "$LEADER" "$([[ $LEADER == a ]] && echo "$PORT_A" || echo "$PORT_B")" false | "$K" apply -f - >/dev/null
check "after SIGKILL of the leader ($LEADER), reads continue through the standby ($OTHER)" wait_until 30 reads_ok 20
check "... and the standby takes the lease over" wait_until 60 grep -q '"became leader"' "$DIR/controller-$OTHER.log"
check "50 more reads in a row" reads_ok 50
kill -KILL "${CPID[$OTHER]}"
unset "CPID[$OTHER]"
check "with every replica down, the user gets a clear 503" wait_until 30 bash -c \
  "! $(declare -f as raw); K='$K' DIR='$DIR' raw vera '$API/team-a/flowruns/r1/summary' >'$OUT' 2>&1;
   grep -qiE 'service unavailable|503|unable to handle' '$OUT'"
sed 's/^/    > /' "$OUT"

summary
[[ $fail -eq 0 ]]
