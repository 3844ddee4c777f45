#!/usr/bin/env bash
# The Helm chart helm/flowrun against a real kube-apiserver (tests/cluster),
# with the real helm and kubectl:
#   1. helm lint; helm template; the values schema refuses bad values clearly;
#      the chart's CRD, admission policies and price table are those of crds/
#      and examples/; the monitoring files render when present.
#   2. kubectl apply --dry-run=server of the rendered chart (defaults, and the
#      bundled PostgreSQL + one namespace + dashboard) into a namespace that
#      enforces Pod Security "restricted"; the pods of the Deployment and the
#      StatefulSet are admitted there as Pods (and a pod without the security
#      context is not: the enforcement is real).
#      The migrate hook Job (flowrunctl migrate) renders as a Helm hook, takes the URL from the
#      controller's Secret, is admitted under "restricted", and runs before anything else installs.
#   3. helm install; the controller ServiceAccount's `kubectl auth can-i --list`
#      (with a TokenRequest token) equals tests/helm/controller-permissions.txt.
#   4. People (client certificates): author, viewer, approver, approvers lists,
#      and the admission policies on status writes.
#   5. helm upgrade keeps the controller's Lease and removes what values turned
#      off; helm uninstall leaves nothing behind but the CRD (Helm's rule) and,
#      for the bundled PostgreSQL, the data as postgresql.keepDataOnUninstall says.
# No controller pod runs here: the test control plane has no Deployment or
# StatefulSet controller (tests/helm/helm_lifecycle_test runs the real
# controller under the chart's ServiceAccount).
# Last line of output: "N passed, M failed"; exit status non-zero on any failure.
# FLOWRUN_TEST_KEEP=1 keeps the (stopped) cluster dir with its logs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER=$ROOT/tests/cluster
CHART=$ROOT/helm/flowrun
M=$HERE/manifests.py
RNS=flowrun-system # the release namespace
NS=team-a          # a namespace that runs FlowRuns

# shellcheck source=../cluster/checks.sh
source "$CLUSTER/checks.sh"
test_cluster helm
H="$BIN/helm"
export HELM_CACHE_HOME=$DIR/helm/cache HELM_CONFIG_HOME=$DIR/helm/config HELM_DATA_HOME=$DIR/helm/data

render() { "$H" template flowrun "$CHART" -n "$RNS" "$@"; }
# render_to <file> <helm template args...>
render_to() { local f=$1; shift; render "$@" >"$f" 2>"$OUT" || { cat "$OUT" >&2; return 1; }; }
# no_warnings: the last command's output ($OUT) has no "Warning:" (e.g. PodSecurity's)
no_warnings() { ! grep -i 'warning' "$OUT" >&2; }
# dry_run <file> [kubectl args]: kubectl apply --dry-run=server without errors or warnings
dry_run() { "$K" apply --dry-run=server -f "$@" >"$OUT" 2>&1 || { cat "$OUT" >&2; return 1; }; no_warnings; }

# ---------------------------------------------------------------- 1. lint, template, schema, sync
check "helm lint --strict" expect_ok "$H" lint --strict "$CHART"
check "helm lint --strict with every optional part on" expect_ok "$H" lint --strict "$CHART" \
  --set postgresql.enabled=true,controller.watchNamespace=$NS,metrics.serviceMonitor.enabled=true \
  --set metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true,controller.agent.runAsUser=1000
check "helm template with the defaults" render_to "$DIR/default.yaml"
check "... renders the CRD-less chart: Deployment, migrate hook Job, RBAC, Lease, policies, Services, prices, PDB, read API" eq \
  "APIService v1alpha1.query.flowrun.dev
ClusterRole flowrun-approver
ClusterRole flowrun-author
ClusterRole flowrun-controller
ClusterRole flowrun-payload-reader
ClusterRole flowrun-viewer
ClusterRoleBinding flowrun-controller
ClusterRoleBinding flowrun-controller-auth-delegator
ConfigMap flowrun-prices
Deployment flowrun-controller
FlowSchema flowrun-query
Job flowrun-migrate
Lease flowrun-controller
PodDisruptionBudget flowrun-controller
PriorityLevelConfiguration flowrun-query
Role flowrun-controller-leader-election
RoleBinding flowrun-controller-auth-reader
RoleBinding flowrun-controller-leader-election
Secret flowrun-query-tls
Service flowrun-controller-metrics
Service flowrun-query
ServiceAccount flowrun-controller
ValidatingAdmissionPolicy flowrun.dev-answers
ValidatingAdmissionPolicy flowrun.dev-parameters-immutable
ValidatingAdmissionPolicy flowrun.dev-status-writers
ValidatingAdmissionPolicyBinding flowrun.dev-answers
ValidatingAdmissionPolicyBinding flowrun.dev-parameters-immutable
ValidatingAdmissionPolicyBinding flowrun.dev-status-writers" "$M" kinds <"$DIR/default.yaml"
args() { "$M" get Deployment flowrun-controller spec.template.spec.containers.0.args <"$1"; }
check "Deployment: 2 replicas, leader election on the chart's Lease, health and metrics ports" bash -c \
  "[[ \$('$M' get Deployment flowrun-controller spec.replicas <'$DIR/default.yaml') == 2 ]] &&
   '$M' get Deployment flowrun-controller spec.template.spec.containers.0.args <'$DIR/default.yaml' |
   grep -qF -- '\"--leader-elect\", \"--leader-election-namespace=flowrun-system\", \"--leader-election-name=flowrun-controller\", \"--health-addr=:8081\", \"--metrics-addr=:8080\"'"
check "Deployment: the database URL only from the Secret (env), never a flag or a value" bash -c \
  "'$M' get Deployment flowrun-controller spec.template.spec.containers.0.env <'$DIR/default.yaml' |
   grep -qF '{\"name\": \"FLOWRUN_DATABASE_URL\", \"valueFrom\": {\"secretKeyRef\": {\"name\": \"flowrun-database\", \"key\": \"url\"}}}' &&
   ! grep -qi 'postgresql://' '$DIR/default.yaml' &&
   [[ \$('$M' kinds <'$DIR/default.yaml' | grep '^Secret ') == 'Secret flowrun-query-tls' ]] &&
   [[ \$('$M' get Secret flowrun-query-tls type <'$DIR/default.yaml') == kubernetes.io/tls ]]"
check "Deployment: liveness and readiness probes on /healthz" bash -c \
  "'$M' get Deployment flowrun-controller spec.template.spec.containers.0.livenessProbe.httpGet.path <'$DIR/default.yaml' | grep -qx /healthz &&
   '$M' get Deployment flowrun-controller spec.template.spec.containers.0.readinessProbe.httpGet.path <'$DIR/default.yaml' | grep -qx /healthz"
# The migrate hook: flowrunctl migrate from the agent image before install and upgrade.
APP_VERSION=$(awk '/^appVersion:/ { gsub(/"/, "", $2); print $2 }' "$CHART/Chart.yaml")
job() { "$M" get Job flowrun-migrate "$2" <"$1"; }
check "migrate hook: a pre-install,pre-upgrade Job, replaced on the next run and deleted on success" bash -c \
  "$(declare -f job); M='$M'
   [[ \$(job '$DIR/default.yaml' 'metadata.annotations.helm.sh/hook') == pre-install,pre-upgrade ]] &&
   [[ \$(job '$DIR/default.yaml' 'metadata.annotations.helm.sh/hook-delete-policy') == before-hook-creation,hook-succeeded ]]"
check "migrate hook: runs flowrunctl migrate from the agent image (the chart's version)" bash -c \
  "$(declare -f job); M='$M'
   [[ \$(job '$DIR/default.yaml' spec.template.spec.containers.0.command) == '[\"/usr/local/bin/flowrunctl\", \"migrate\"]' ]] &&
   [[ \$(job '$DIR/default.yaml' spec.template.spec.containers.0.image) == flowrun/agent-runtime:$APP_VERSION ]] &&
   [[ \$(job '$DIR/default.yaml' spec.template.spec.restartPolicy) == Never ]]"
check "migrate hook: the database URL only from the controller's Secret (env), no API token" bash -c \
  "$(declare -f job); M='$M'
   [[ \$(job '$DIR/default.yaml' spec.template.spec.containers.0.env) == \"\$('$M' get Deployment flowrun-controller spec.template.spec.containers.0.env <'$DIR/default.yaml')\" ]] &&
   [[ \$(job '$DIR/default.yaml' spec.template.spec.automountServiceAccountToken) == false ]] &&
   ! job '$DIR/default.yaml' spec.template.spec.containers.0.args 2>/dev/null"
check "migrate hook: migrate.enabled=false renders no Job" bash -c \
  "! '$H' template flowrun '$CHART' -n $RNS --set migrate.enabled=false | '$M' kinds | grep -q '^Job '"
check "migrate hook: with the bundled PostgreSQL, on upgrades only (its database starts with the release)" bash -c \
  "'$H' template flowrun '$CHART' -n $RNS --set postgresql.enabled=true | '$M' get Job flowrun-migrate 'metadata.annotations.helm.sh/hook' | grep -qx pre-upgrade &&
   '$H' template flowrun '$CHART' -n $RNS --set postgresql.enabled=true | '$M' get Job flowrun-migrate spec.template.spec.containers.0.env.0.valueFrom.secretKeyRef.name | grep -qx flowrun-postgresql"
check "schema: a database URL is not a migrate value either" expect_reject "/migrate" "additional properties 'url' not allowed" -- \
  render --set migrate.url=postgresql://u:p@h/db
check "schema: an unknown value is refused" expect_reject "additional properties 'replicas' not allowed" -- render --set replicas=3
check "schema: a database URL is not a value" expect_reject "/database" "additional properties 'url' not allowed" -- \
  render --set database.url=postgresql://u:p@h/db
check "schema: negative replicaCount" expect_reject "/replicaCount" "minimum" -- render --set replicaCount=-1
check "schema: unknown log level" expect_reject "/controller/logLevel" "debug" -- render --set controller.logLevel=loud
check "schema: agents as root (runAsUser 0)" expect_reject "/controller/agent/runAsUser" -- render --set controller.agent.runAsUser=0
check "schema: a malformed image digest" expect_reject "/image/digest" -- render --set image.digest=abc
check "no database Secret named: a clear error" expect_reject "database.existingSecret is required" "postgresql.enabled" -- \
  render --set database.existingSecret=
# The values snippet of docs/install.md ("values-prod.yaml") is valid.
awk '/^# values-prod.yaml$/ { on = 1; next } on && /^```/ { exit } on' "$ROOT/docs/install.md" >"$DIR/values-prod.yaml"
check "docs/install.md's values-prod.yaml renders" bash -c \
  "[[ -s '$DIR/values-prod.yaml' ]] && '$H' template flowrun '$CHART' -n $RNS -f '$DIR/values-prod.yaml' >/dev/null"
check "the chart's CRD is crds/flowrun.dev_flowruns.yaml" cmp "$CHART/crds/flowrun.dev_flowruns.yaml" "$ROOT/crds/flowrun.dev_flowruns.yaml"
check "the chart's admission policies are crds/flowrun-policies.yaml (release flowrun in flowrun-system)" \
  "$M" same-policies "$ROOT/crds/flowrun-policies.yaml" <"$DIR/default.yaml"
check "... and name another release's ServiceAccount as the controller" bash -c \
  "'$H' template other '$CHART' -n ops | grep -qF \"request.userInfo.username != 'system:serviceaccount:ops:other-flowrun-controller'\""
check "the chart's price table is examples/prices.yaml" cmp "$CHART/files/prices.yaml" "$ROOT/examples/prices.yaml"
check "... rendered into the ConfigMap under the file name of priceTable.path" bash -c \
  "'$M' get ConfigMap flowrun-prices data.prices.yaml <'$DIR/default.yaml' | diff - '$ROOT/examples/prices.yaml' >&2"
check "one namespace: a Role and RoleBinding there instead of cluster-wide, --namespace" bash -c \
  "'$H' template flowrun '$CHART' -n $RNS --set controller.watchNamespace=$NS | '$M' kinds | grep -qx 'Role flowrun-controller' &&
   '$H' template flowrun '$CHART' -n $RNS --set controller.watchNamespace=$NS | '$M' get Role flowrun-controller metadata.namespace | grep -qx $NS &&
   ! '$H' template flowrun '$CHART' -n $RNS --set controller.watchNamespace=$NS | '$M' kinds | grep -qx 'ClusterRole flowrun-controller' &&
   '$H' template flowrun '$CHART' -n $RNS --set controller.watchNamespace=$NS | grep -qx -- '        - --namespace=$NS'"

# The read API (docs/read-api.md).
check "read API: the APIService points at the query Service with the generated CA, which signed the serving certificate" bash -c \
  "[[ \$('$M' get APIService v1alpha1.query.flowrun.dev spec.service.name <'$DIR/default.yaml') == flowrun-query ]] &&
   [[ \$('$M' get APIService v1alpha1.query.flowrun.dev spec.service.namespace <'$DIR/default.yaml') == $RNS ]] &&
   '$M' get APIService v1alpha1.query.flowrun.dev spec.caBundle <'$DIR/default.yaml' | base64 -d >'$DIR/query-ca.crt' &&
   '$M' get Secret flowrun-query-tls data.tls.crt <'$DIR/default.yaml' | base64 -d >'$DIR/query-tls.crt' &&
   openssl verify -CAfile '$DIR/query-ca.crt' '$DIR/query-tls.crt' >/dev/null &&
   openssl x509 -in '$DIR/query-tls.crt' -noout -ext subjectAltName | grep -qF 'DNS:flowrun-query.$RNS.svc'"
check "read API: the controller serves it on the query port with the mounted certificate" bash -c \
  "'$M' get Deployment flowrun-controller spec.template.spec.containers.0.args <'$DIR/default.yaml' |
   grep -qF '\"--query-addr=:8443\", \"--query-tls-cert-file=/etc/flowrun/query-tls/tls.crt\", \"--query-tls-key-file=/etc/flowrun/query-tls/tls.key\"' &&
   [[ \$('$M' get Service flowrun-query spec.ports.0.targetPort <'$DIR/default.yaml') == query ]]"
check "read API: queryApi.enabled=false renders none of it (and no read-API rules in the people's roles)" bash -c \
  "! '$H' template flowrun '$CHART' -n $RNS --set queryApi.enabled=false | '$M' kinds |
     grep -E '^(APIService|FlowSchema|PriorityLevelConfiguration) |flowrun-query|payload-reader|auth-delegator|auth-reader' &&
   ! '$H' template flowrun '$CHART' -n $RNS --set queryApi.enabled=false | grep -qE 'query.flowrun.dev|--query-'"
check "read API: with cert-manager, a Certificate and the CA injected into the APIService, no generated Secret" bash -c \
  "out=\$('$H' template flowrun '$CHART' -n $RNS --set queryApi.certManager.enabled=true) &&
   echo \"\$out\" | '$M' kinds | grep -qx 'Certificate flowrun-query' &&
   ! echo \"\$out\" | '$M' kinds | grep -q '^Secret ' &&
   [[ \$(echo \"\$out\" | '$M' get APIService v1alpha1.query.flowrun.dev 'metadata.annotations.cert-manager.io/inject-ca-from') == $RNS/flowrun-query ]]"
check "read API: viewers get metadata only, the payload role payloads only" bash -c \
  "'$M' get ClusterRole flowrun-viewer rules.1.resources <'$DIR/default.yaml' | grep -qF '[\"flowruns/summary\", \"flowruns/checkpoints\", \"flowruns/calls\", \"flowruns/costs\", \"flowruns/diff\"]' &&
   '$M' get ClusterRole flowrun-payload-reader rules <'$DIR/default.yaml' | grep -qF '\"resources\": [\"flowruns/artifacts\", \"flowruns/outputs\"]' &&
   '$M' get ClusterRole flowrun-approver rules.2.resources <'$DIR/default.yaml' | grep -qF 'flowruns/outputs'"

MON="--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true"
# shellcheck disable=SC2086
check "monitoring on: helm template" render_to "$DIR/monitoring.yaml" $MON
check "monitoring on: a ServiceMonitor on the metrics port" bash -c \
  "'$M' get ServiceMonitor flowrun-controller spec.endpoints.0.port <'$DIR/monitoring.yaml' | grep -qx metrics"
if [[ -s $CHART/files/grafana-dashboard.json ]]; then
  check "files/grafana-dashboard.json: a ConfigMap labelled grafana_dashboard=1 holding the dashboard" bash -c \
    "[[ \$('$M' get ConfigMap flowrun-dashboard metadata.labels.grafana_dashboard <'$DIR/monitoring.yaml') == 1 ]] &&
     '$M' get ConfigMap flowrun-dashboard data.flowrun.json <'$DIR/monitoring.yaml' | python3 -c 'import json,sys; a=json.load(sys.stdin); b=json.load(open(\"$CHART/files/grafana-dashboard.json\")); sys.exit(a!=b)'"
else
  check "no files/grafana-dashboard.json yet: no dashboard ConfigMap, no error" bash -c \
    "! '$M' kinds <'$DIR/monitoring.yaml' | grep -q 'ConfigMap flowrun-dashboard'"
fi
if [[ -s $CHART/files/prometheus-rules.yaml ]]; then
  check "files/prometheus-rules.yaml: a PrometheusRule with the file's groups" bash -c \
    "'$M' get PrometheusRule flowrun spec.groups <'$DIR/monitoring.yaml' | python3 -c 'import json,sys,yaml; a=json.load(sys.stdin); b=yaml.safe_load(open(\"$CHART/files/prometheus-rules.yaml\"))[\"groups\"]; sys.exit(a!=b)'"
else
  check "no files/prometheus-rules.yaml yet: no PrometheusRule, no error" bash -c \
    "! '$M' kinds <'$DIR/monitoring.yaml' | grep -q '^PrometheusRule'"
fi

# ---------------------------------------------------------------- 2. server-side dry run, Pod Security
"$K" create namespace "$RNS" >/dev/null
"$K" create namespace "$NS" >/dev/null
for ns in "$RNS" "$NS"; do
  "$K" label namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted \
    pod-security.kubernetes.io/audit=restricted >/dev/null
done
check "the chart's CRD applies (server-side)" expect_ok "$K" apply --server-side -f "$CHART/crds/"
check "... and is Established" crd_established "$K" flowruns.flowrun.dev 30
check "kubectl apply --dry-run=server: the default chart, no warnings" dry_run "$DIR/default.yaml"
check "helm template: bundled PostgreSQL, one namespace, dashboard" render_to "$DIR/full.yaml" \
  --set postgresql.enabled=true --set controller.watchNamespace=$NS --set metrics.grafanaDashboard.enabled=true
# The Prometheus Operator's CRDs are not installed here: its kinds are checked by helm template above.
"$M" drop ServiceMonitor PrometheusRule <"$DIR/full.yaml" >"$DIR/full-core.yaml"
check "kubectl apply --dry-run=server: bundled PostgreSQL, one namespace, dashboard; no warnings" dry_run "$DIR/full-core.yaml"
check "bundled PostgreSQL: its Secret is the controller's database, marked kept on uninstall" bash -c \
  "'$M' get Deployment flowrun-controller spec.template.spec.containers.0.env.0.valueFrom.secretKeyRef.name <'$DIR/full.yaml' | grep -qx flowrun-postgresql &&
   '$M' get Secret flowrun-postgresql metadata.annotations <'$DIR/full.yaml' | grep -qF '\"helm.sh/resource-policy\": \"keep\"' &&
   '$M' get StatefulSet flowrun-postgresql spec.persistentVolumeClaimRetentionPolicy.whenDeleted <'$DIR/full.yaml' | grep -qx Retain"
"$M" pod Deployment flowrun-controller <"$DIR/default.yaml" >"$DIR/controller-pod.json"
"$M" pod StatefulSet flowrun-postgresql <"$DIR/full.yaml" >"$DIR/postgresql-pod.json"
"$M" pod Job flowrun-migrate <"$DIR/default.yaml" >"$DIR/migrate-pod.json"
check "the controller's pod is admitted under Pod Security restricted (enforced)" dry_run "$DIR/controller-pod.json" -n "$RNS"
check "the migrate hook's pod is admitted under Pod Security restricted (enforced)" dry_run "$DIR/migrate-pod.json" -n "$RNS"
check "the bundled PostgreSQL's pod is admitted under Pod Security restricted" bash -c \
  "'$K' create --dry-run=server -n $NS -f '$DIR/postgresql-pod.json' >'$OUT' 2>&1 || { cat '$OUT' >&2; exit 1; }"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); p["spec"].pop("securityContext"); [c.pop("securityContext") for c in p["spec"]["containers"]]; print(json.dumps(p))' \
  "$DIR/controller-pod.json" >"$DIR/insecure-pod.json"
check "... while the same pod without its security context is refused (the enforcement is real)" \
  expect_reject 'violates PodSecurity "restricted' -- "$K" create --dry-run=server -n "$RNS" -f "$DIR/insecure-pod.json"

# ---------------------------------------------------------------- 3. install, the controller's permissions
# The hook runs first: helm creates its Job and waits for it before applying anything else. No
# kubelet runs here, so the Job never finishes and the install times out with nothing else applied.
check "helm install runs the migrate hook Job first and applies nothing before it succeeded" bash -c \
  "! '$H' install hooked '$CHART' -n $RNS --timeout 20s >'$OUT' 2>&1 &&
   '$K' -n $RNS get job hooked-flowrun-migrate -o jsonpath='{.spec.template.spec.containers[0].command}' | grep -qF flowrunctl &&
   ! '$K' -n $RNS get deployment hooked-flowrun-controller >/dev/null 2>&1"
"$H" uninstall hooked -n "$RNS" --no-hooks >/dev/null 2>&1
"$K" -n "$RNS" delete job hooked-flowrun-migrate --ignore-not-found >/dev/null
# The rest installs without the hook (it could not finish here); the controller migrates at start.
check "helm install flowrun -n $RNS (migrate hook off)" expect_ok "$H" install flowrun "$CHART" -n "$RNS" --set migrate.enabled=false
check "NOTES tell the next kubectl command" contains "$OUT" "kubectl -n $RNS rollout status deployment/flowrun-controller" \
  "create secret generic flowrun-database"
check "helm status: deployed" bash -c "'$H' status flowrun -n $RNS | grep -q 'STATUS: deployed'"
SA=$("$CLUSTER/sa-token.sh" "$DIR/cluster" "$RNS" flowrun-controller)
# perms: the SA's resource rows as "<ns> <resource> <resourceNames> <verbs>", sorted
perms() {
  local ns
  for ns in "$NS" "$RNS"; do
    "$K" --kubeconfig "$SA" auth can-i --list -n "$ns" |
      awk -v ns="$ns" 'NR > 1 && $1 !~ /^\[/ { v = $4; for (i = 5; i <= NF; i++) v = v " " $i; print ns, $1, $3, v }'
  done | sort
}
check "the controller's ServiceAccount may do exactly what tests/helm/controller-permissions.txt says" bash -c \
  "diff <(grep -v '^#' '$HERE/controller-permissions.txt' | sort) <($(declare -f perms); K='$K' SA='$SA' NS=$NS RNS=$RNS perms) >&2"
check "... and on non-resource URLs only get (discovery, health)" bash -c \
  "! '$K' --kubeconfig '$SA' auth can-i --list -n $NS | awk '\$1 ~ /^\\[/' | grep -v '\\[get\\]\$' >&2"
check "... it reads no Secrets" eq no "$K" --kubeconfig "$SA" auth can-i get secrets -n "$NS"
check "... and creates no Pods itself" eq no "$K" --kubeconfig "$SA" auth can-i create pods -n "$NS"

# ---------------------------------------------------------------- 4. people and the admission policies
C=$DIR/cluster
for u in alice "bob research-leads" vera arthur mallory; do
  # shellcheck disable=SC2086 # user and groups as separate words
  "$CLUSTER/mint-user.sh" "$C" $u >/dev/null || nok "mint-user.sh $u"
done
"$K" -n "$NS" create rolebinding approvers --clusterrole=flowrun-approver --user=alice --user=mallory --group=research-leads >/dev/null
"$K" -n "$NS" create rolebinding viewers --clusterrole=flowrun-viewer --user=vera >/dev/null
"$K" -n "$NS" create rolebinding authors --clusterrole=flowrun-author --user=arthur >/dev/null
as() { local u=$1; shift; "$K" --kubeconfig "$C/users/$u.kubeconfig" -n "$NS" "$@"; }
# ctl_status <flowrun> <content type> <patch>: PATCH the status as the controller does, with its
# token (kubectl patch would GET the status first, which the controller neither needs nor may).
ctl_status() {
  curl -fsS --cacert "$DIR/cluster/pki/ca.crt" -X PATCH -H "Content-Type: $2" \
    -H "Authorization: Bearer $("$K" --kubeconfig "$SA" config view --raw -o jsonpath='{.users[0].user.token}')" \
    "$("$K" --kubeconfig "$SA" config view --raw -o jsonpath='{.clusters[0].cluster.server}')/apis/flowrun.dev/v1alpha1/namespaces/$NS/flowruns/$1/status" \
    --data-binary "$3" -o /dev/null
}
fr() { printf 'apiVersion: flowrun.dev/v1alpha1\nkind: FlowRun\nmetadata: {name: %s}\nspec:\n  template: {image: a}\n%s\n' "$1" "${2:-}"; }
answer() { as "$1" patch flowrun "$2" --subresource=status --type=merge -p "{\"status\":$3}"; }

check "author: creates FlowRuns" expect_ok as arthur apply -f - <<<"$(fr open)
---
$(fr gated '  approvers: {users: [alice], groups: [research-leads]}')
---
$(fr gated2 '  approvers: {users: [alice], groups: [research-leads]}')
---
$(fr nobody '  approvers: {}')
---
$(fr scratch)"
check "author: lists them" bash -c "$(declare -f as); K='$K' C='$C' NS=$NS as arthur get flowruns -o name | grep -c flowrun | grep -qx 5"
check "author: may not answer" expect_reject 'forbidden' 'resource "flowruns/status"' -- answer arthur open '{"answers":{"proceed":true}}'
check "author: deletes a FlowRun" expect_ok as arthur delete flowrun scratch
check "viewer: reads FlowRuns" expect_ok as vera get flowruns
check "viewer: may not answer" expect_reject 'forbidden' 'resource "flowruns/status"' -- answer vera open '{"answers":{"proceed":true}}'
check "viewer: may not patch the spec" expect_reject 'cannot patch resource "flowruns"' -- \
  as vera patch flowrun open --type=merge -p '{"spec":{"budgetUSD":5}}'
check "viewer: may not create" expect_reject 'cannot create resource "flowruns"' -- as vera apply -f - <<<"$(fr v)"
check "viewer: may not delete" expect_reject 'cannot delete resource "flowruns"' -- as vera delete flowrun open
check "nobody answers a run that is not waiting" expect_reject 'FlowRun open has no open wait' -- \
  answer alice open '{"answers":{"proceed":true}}'
# The controller (its ServiceAccount token) opens a wait on each run: the policies let it write status.
for r in open gated gated2 nobody; do
  check "the controller's ServiceAccount writes phase and wait of $r" expect_ok ctl_status $r application/merge-patch+json \
    '{"status":{"phase":"Waiting","attempt":1,"wait":{"name":"proceed","question":"Proceed?"},"cost":{"usd":0.1}}}'
done
check "approver: answers the open wait" expect_ok answer alice open '{"answers":{"proceed":true}}'
check "approver: may not change a given answer (write-once for people)" expect_reject \
  "FlowRun open has no open wait for another answer: 'proceed' was already answered" 'an answer is final once given' -- \
  answer mallory open '{"answers":{"proceed":false}}'
check "approver: may not remove a given answer" expect_reject 'an answer cannot be removed once given' -- \
  answer alice open '{"answers":{"proceed":null}}'
check "the controller rejects the answer (AnswerAccepted=False, reason InvalidAnswer)" expect_ok \
  ctl_status open application/merge-patch+json \
  '{"status":{"conditions":[{"type":"AnswerAccepted","status":"False","reason":"InvalidAnswer","message":"the answer to '"'"'proceed'"'"' does not match its schema","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}'
check "approver: may then correct the answer while the run still waits" expect_ok answer alice open '{"answers":{"proceed":false}}'
check "approver: may not answer a wait that is not open" expect_reject "FlowRun open waits for 'proceed'" -- \
  answer alice open '{"answers":{"later":true}}'
check "approver: may not change the phase" expect_reject 'alice may not change the status of FlowRun open' -- \
  answer alice open '{"phase":"Succeeded"}'
check "approver: may not change the cost" expect_reject 'written by the flowrun controller' -- \
  answer alice open '{"cost":{"usd":0}}'
check "approver: may not change attempts" expect_reject 'written by the flowrun controller' -- \
  answer alice open '{"attempts":[{"attempt":1,"outcome":"succeeded"}]}'
check "approver: may not answer and change the phase at once" expect_reject 'denied request' 'status.answers' -- \
  answer alice open '{"answers":{"proceed":true},"phase":"Running"}'
check "approver: may not change the spec" expect_reject 'cannot patch resource "flowruns"' -- \
  as alice patch flowrun open --type=merge -p '{"spec":{"budgetUSD":5}}'
check "... none of it was stored" eq "false Waiting 0.1" bash -c \
  "'$K' -n $NS get flowrun open -o jsonpath='{.status.answers.proceed} {.status.phase} {.status.cost.usd}'"
check "approvers list: an approver who is not listed is refused" expect_reject 'mallory may not answer the waits of FlowRun gated' -- \
  answer mallory gated '{"answers":{"proceed":true}}'
check "approvers list: a listed user answers" expect_ok answer alice gated '{"answers":{"proceed":true}}'
check "approvers list: a member of a listed group may not replace that answer" expect_reject 'an answer is final once given' -- \
  answer bob gated '{"answers":{"proceed":false}}'
check "approvers list: a member of a listed group answers" expect_ok answer bob gated2 '{"answers":{"proceed":false}}'
check "empty approvers list: an approver is refused" expect_reject 'nobody may answer the waits of FlowRun nobody' -- \
  answer alice nobody '{"answers":{"proceed":true}}'
check "empty approvers list: the cluster admin too" expect_reject 'nobody may answer the waits of FlowRun nobody' -- \
  "$K" -n "$NS" patch flowrun nobody --subresource=status --type=merge -p '{"status":{"answers":{"proceed":true}}}'
check "the controller moves on (Running, no wait)" expect_ok ctl_status open application/json-patch+json \
  '[{"op":"replace","path":"/status/phase","value":"Running"},{"op":"remove","path":"/status/wait"}]'
check "approver: a closed wait's answer can no longer be changed" expect_reject 'FlowRun open has no open wait' -- \
  answer alice open '{"answers":{"proceed":true}}'

# ---------------------------------------------------------------- 5. upgrade and uninstall
# The controller holds the Lease (update through its token, as it does; it has no patch).
check "the controller's ServiceAccount updates the chart's Lease" bash -c \
  "'$K' --kubeconfig '$SA' -n $RNS get lease flowrun-controller -o json |
   python3 -c 'import json,sys; l=json.load(sys.stdin); l[\"spec\"]={\"holderIdentity\":\"pod-a\",\"leaseDurationSeconds\":15}; print(json.dumps(l))' |
   '$K' --kubeconfig '$SA' -n $RNS replace -f - >/dev/null"
QUERY_TLS=$("$K" -n "$RNS" get secret flowrun-query-tls -o jsonpath='{.data.tls\.crt}')
check "helm upgrade: more workers, metrics off" expect_ok "$H" upgrade flowrun "$CHART" -n "$RNS" --reuse-values \
  --set controller.workers=8 --set metrics.enabled=false
check "... the Deployment runs with --workers=8 and no --metrics-addr" bash -c \
  "a=\$('$K' -n $RNS get deploy flowrun-controller -o jsonpath='{.spec.template.spec.containers[0].args}'); [[ \$a == *--workers=8* && \$a != *metrics-addr* ]]"
check "... the metrics Service is gone" expect_reject 'NotFound' -- "$K" -n "$RNS" get service flowrun-controller-metrics
check "... the Lease still names its holder (helm does not clobber the controller's fields)" eq pod-a \
  "$K" -n "$RNS" get lease flowrun-controller -o jsonpath='{.spec.holderIdentity}'
check "... the read API's serving certificate is kept (the APIService's caBundle stays valid)" bash -c \
  "[[ \$('$K' -n $RNS get secret flowrun-query-tls -o jsonpath='{.data.ca\\.crt}') == \$('$K' get apiservice v1alpha1.query.flowrun.dev -o jsonpath='{.spec.caBundle}') &&
     \$('$K' -n $RNS get secret flowrun-query-tls -o jsonpath='{.data.tls\\.crt}') == '$QUERY_TLS' ]]"
check "helm upgrade: revision 2" bash -c "'$H' status flowrun -n $RNS | grep -q 'REVISION: 2'"
"$K" delete flowruns --all -A --wait=false >/dev/null
check "helm uninstall" expect_ok "$H" uninstall flowrun -n "$RNS" --wait --timeout 60s
# leftovers: objects of the release anywhere (by label, and by the names the chart uses)
leftovers() {
  "$K" get all,configmaps,secrets,serviceaccounts,roles,rolebindings,leases,poddisruptionbudgets -A \
    -l app.kubernetes.io/instance=flowrun -o name 2>&1
  "$K" get clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings -o name 2>&1 |
    grep -E 'flowrun' | grep -v 'flowrun-answerer'
  "$K" -n "$RNS" get lease flowrun-controller -o name 2>/dev/null
  # (v1alpha1.flowrun.dev is the CRD's own local APIService, kept with the CRD)
  "$K" get apiservices,flowschemas,prioritylevelconfigurations -o name 2>&1 | grep -E 'query\.flowrun\.dev|flowrun-query'
  "$K" -n kube-system get rolebindings -o name 2>&1 | grep -E 'flowrun'
}
check "helm uninstall leaves no objects of the release (Lease and cluster-scoped ones included)" bash -c \
  "out=\$($(declare -f leftovers); K='$K' RNS=$RNS leftovers); [[ -z \$out ]] || { echo \"\$out\" >&2; false; }"
check "... but keeps the CRD, as Helm does with crds/ (docs/install.md)" expect_ok "$K" get crd flowruns.flowrun.dev

# Bundled PostgreSQL: the password Secret stays (keepDataOnUninstall) and is reused on reinstall.
PG="--set postgresql.enabled=true --set replicaCount=0"
pw() { "$K" -n "$RNS" get secret trial-flowrun-postgresql -o jsonpath='{.data.password}'; }
# shellcheck disable=SC2086
check "helm install with the bundled PostgreSQL" expect_ok "$H" install trial "$CHART" -n "$RNS" $PG
PW1=$(pw)
check "... its Secret holds a generated password and the URL" bash -c \
  "[[ -n '$PW1' ]] && '$K' -n $RNS get secret trial-flowrun-postgresql -o jsonpath='{.data.url}' | base64 -d |
   grep -q '^postgresql://flowrun:.*@trial-flowrun-postgresql.$RNS.svc:5432/flowrun\$'"
check "helm uninstall (keepDataOnUninstall: true)" expect_ok "$H" uninstall trial -n "$RNS" --wait --timeout 60s
check "... keeps the password Secret, removes the StatefulSet" bash -c \
  "[[ \$('$K' -n $RNS get secret trial-flowrun-postgresql -o jsonpath='{.data.password}') == '$PW1' ]] &&
   ! '$K' -n $RNS get statefulset trial-flowrun-postgresql >/dev/null 2>&1"
# shellcheck disable=SC2086
check "helm install again: adopts the kept Secret and its password" bash -c \
  "'$H' install trial '$CHART' -n $RNS $PG --set postgresql.keepDataOnUninstall=false >'$OUT' 2>&1 || { cat '$OUT' >&2; exit 1; }
   [[ \$('$K' -n $RNS get secret trial-flowrun-postgresql -o jsonpath='{.data.password}') == '$PW1' ]]"
check "helm uninstall (keepDataOnUninstall: false) deletes the Secret" bash -c \
  "'$H' uninstall trial -n $RNS --wait --timeout 60s >/dev/null && ! '$K' -n $RNS get secret trial-flowrun-postgresql >/dev/null 2>&1"

summary
[[ $fail -eq 0 ]]
