#!/usr/bin/env bash
# The chart's alert thresholds (metrics.prometheusRule.thresholds) reach the
# rendered PrometheusRule, the rendered rules still pass `promtool check rules`,
# and a rule file that lost a literal the chart replaces refuses to render
# (instead of silently ignoring the value). No cluster needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/cluster/checks.sh"
bin=$("$root/tests/cluster/build.sh" | tail -1)
helm=$bin/helm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
OUT=$work/out

# The groups of a rendered PrometheusRule, as a plain rule file.
rules_of() {
  python3 -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
rule = next(d for d in docs if d.get("kind") == "PrometheusRule")
yaml.safe_dump({"groups": rule["spec"]["groups"]}, sys.stdout)'
}
expr_of() {  # <alert> < rule file
  python3 -c 'import sys, yaml
for g in yaml.safe_load(sys.stdin)["groups"]:
  for r in g["rules"]:
    if r.get("alert") == sys.argv[1]: print(" ".join(r["expr"].split()))' "$1"
}

"$helm" template t "$root/helm/flowrun" --set metrics.prometheusRule.enabled=true >"$work/default.yaml"
rules_of <"$work/default.yaml" >"$work/default-rules.yaml"
check "defaults render the plain file's thresholds (4 h)" grep -qF '> 14400' <(expr_of FlowRunWaitingTooLong <"$work/default-rules.yaml")
check "defaults: 20 USD/hour" grep -qE '\* 3600 > 20$' <(expr_of FlowRunSpendRateHigh <"$work/default-rules.yaml")
check "default rendered rules pass promtool" expect_ok promtool check rules "$work/default-rules.yaml"

"$helm" template t "$root/helm/flowrun" --set metrics.prometheusRule.enabled=true \
  --set metrics.prometheusRule.thresholds.waitingTooLongSeconds=900 \
  --set-json metrics.prometheusRule.thresholds.spendUSDPerHour=2.5 \
  --set-json metrics.prometheusRule.thresholds.reconcileErrorRatio=0.25 >"$work/custom.yaml"
rules_of <"$work/custom.yaml" >"$work/custom-rules.yaml"
check "waitingTooLongSeconds=900 reaches FlowRunWaitingTooLong" grep -qE '> 900$' <(expr_of FlowRunWaitingTooLong <"$work/custom-rules.yaml")
check "spendUSDPerHour=2.5 reaches FlowRunSpendRateHigh" grep -qE '\* 3600 > 2.5$' <(expr_of FlowRunSpendRateHigh <"$work/custom-rules.yaml")
check "reconcileErrorRatio=0.25 reaches FlowRunReconcileErrors" grep -qE '> 0.25$' <(expr_of FlowRunReconcileErrors <"$work/custom-rules.yaml")
check "custom rendered rules pass promtool" expect_ok promtool check rules "$work/custom-rules.yaml"
check "a ratio above 1 is refused by the values schema" expect_reject reconcileErrorRatio -- \
  "$helm" template t "$root/helm/flowrun" --set-json metrics.prometheusRule.thresholds.reconcileErrorRatio=3

cp -r "$root/helm/flowrun" "$work/chart"
sed -i 's/> 14400/> 14401/' "$work/chart/files/prometheus-rules.yaml"
check "a rule file without a replaced literal fails the render and names it" expect_reject 'no longer contains the threshold' '> 14400' -- \
  "$helm" template t "$work/chart" --set metrics.prometheusRule.enabled=true

summary
[[ $fail -eq 0 ]]
