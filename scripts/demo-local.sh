#!/usr/bin/env bash
# The flowrun runtime without Kubernetes (scripts/demo.sh runs it in Kubernetes):
# installs what is needed, builds, starts a private PostgreSQL (and, unless
# OPENAI_BASE_URL is set, a local fake OpenAI-compatible server), then walks the research agent through
# run -> wait (the process exits) -> answer -> resume from the cache, and prints
# what each checkpoint cost.
#
# To use a real endpoint: OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=... scripts/demo-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

. scripts/demo-common.sh

step "installing Debian packages (idempotent)"
scripts/install-deps.sh

step "building"
FLOWRUN_BUILD_DIR=build FLOWRUN_TARGETS="research-agent flowrunctl" scripts/build.sh >/dev/null
bin=$root/build

# Under /tmp: PostgreSQL runs as the postgres user when we are root, and must reach it.
state=${FLOWRUN_DEMO_DIR:-/tmp/flowrun-demo-local-$(id -u)}
mkdir -p "$state"
chmod 755 "$state" "$(dirname "$state")" 2>/dev/null || true

step "starting a private PostgreSQL in $state/pg"
export FLOWRUN_DATABASE_URL=$(scripts/pg-local.sh start "$state/pg" | tail -n 1)

cleanup() { [ -n "$fake_llm_pid" ] && kill "$fake_llm_pid" 2>/dev/null || true; }
trap cleanup EXIT
start_fake_llm "$state"

run_uid="demo-$(date +%s)"
export FLOWRUN_RUN_UID=$run_uid FLOWRUN_RUN_NAME=research-1 FLOWRUN_RUN_NAMESPACE=demo FLOWRUN_FLOW=research
export FLOWRUN_PARAMETERS='{"topic": "durable execution for AI agents"}'
export FLOWRUN_PRICE_TABLE=$root/examples/prices.yaml
export FLOWRUN_TERMINATION_MESSAGE_PATH=$state/termination-message
ctl() { "$bin/runtime-lib/flowrunctl" "$@"; }

step "creating the schema: flowrunctl migrate (in Kubernetes the controller does this at start)"
ctl migrate

step "attempt 1: the agent researches, asks for approval, and exits"
FLOWRUN_ATTEMPT=1 "$bin/examples/research-agent" 2>"$state/attempt-1.log" && echo "agent exited with code $?"
echo "termination message: $(cat "$FLOWRUN_TERMINATION_MESSAGE_PATH")"
ctl show "$run_uid"

step "a person answers: flowrunctl answer $run_uid proceed true"
ctl answer "$run_uid" proceed '"yes"' || echo "(rejected above: the wait's schema wants a boolean)"
ctl answer "$run_uid" proceed true --by demo-user

step "attempt 2: a fresh process runs the flow from the top; research comes from the cache"
FLOWRUN_ATTEMPT=2 "$bin/examples/research-agent" 2>"$state/attempt-2.log" && echo "agent exited with code $?"
ctl show "$run_uid"

step "per-checkpoint and per-model cost"
ctl costs "$run_uid"
echo
echo "Logs: $state/attempt-*.log. Stop the database with: scripts/pg-local.sh stop $state/pg"
