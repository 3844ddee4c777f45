# Shared by scripts/demo.sh and scripts/demo-local.sh (sourced, not run).
#
#   step "text"                 a bold section header
#   start_fake_llm <state-dir>  unless OPENAI_BASE_URL is set: starts
#                               tests/support/fake_llm_server.py on a free port
#                               (requires the key in OPENAI_API_KEY, default
#                               demo-key), exports OPENAI_BASE_URL and
#                               OPENAI_API_KEY, sets fake_llm_pid (empty when a
#                               real endpoint is used); the caller stops it.
# Expects the repository root as the working directory.

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

fake_llm_pid=""
start_fake_llm() {
  local state=$1
  if [ -n "${OPENAI_BASE_URL:-}" ]; then
    : "${OPENAI_API_KEY:?OPENAI_BASE_URL is set: set OPENAI_API_KEY too}"
    return 0
  fi
  step "starting the local fake OpenAI-compatible server (set OPENAI_BASE_URL and OPENAI_API_KEY to use a real one)"
  export OPENAI_API_KEY=${OPENAI_API_KEY:-demo-key}
  rm -f "$state/fake.port"
  python3 tests/support/fake_llm_server.py --port 0 --port-file "$state/fake.port" --api-key "$OPENAI_API_KEY" \
    >"$state/fake.log" 2>&1 &
  fake_llm_pid=$!
  for _ in $(seq 100); do [ -s "$state/fake.port" ] && break; sleep 0.1; done
  [ -s "$state/fake.port" ] || { echo "the fake LLM server did not start: $(cat "$state/fake.log")" >&2; return 1; }
  export OPENAI_BASE_URL="http://127.0.0.1:$(cat "$state/fake.port")/v1"
}
