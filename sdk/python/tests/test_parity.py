"""The Python research agent (examples/research-agent-py) and the C++ one write the same rows."""

from __future__ import annotations

from support.agent import BUILD, REPO, Run

CPP_AGENT = BUILD / "examples" / "research-agent"
PY_AGENT = REPO / "examples" / "research-agent-py"


def _drive(run: Run) -> list[dict]:
    messages = []
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    messages.append(r.message)
    assert run.answer("proceed", True).returncode == 0
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    messages.append(r.message)
    return messages


def _rows(run: Run) -> dict:
    q = {
        "checkpoints": "SELECT name, occurrence, kind, fingerprint, status, attempt, starts, reexecutions, output, llm_calls, "
                       "input_tokens, output_tokens, cached_tokens, cost_usd FROM flowrun.checkpoints "
                       "WHERE run_uid = :'uid' ORDER BY name, occurrence",
        "llm_calls": "SELECT checkpoint_name, occurrence, attempt, model, input_tokens, output_tokens, cached_tokens, "
                     "cost_usd FROM flowrun.llm_calls WHERE run_uid = :'uid' ORDER BY seq",
        "artifacts": "SELECT name, version, content_type, data, size_bytes, sha256, checkpoint FROM flowrun.artifacts "
                     "WHERE run_uid = :'uid' ORDER BY name, version",
        "waits": "SELECT name, occurrence, question, schema, answer, answered_by FROM flowrun.waits "
                 "WHERE run_uid = :'uid'",
        "run": "SELECT status, attempt, result, error FROM flowrun.runs WHERE run_uid = :'uid'",
        "attempts": "SELECT attempt, outcome, live_checkpoints, cached_checkpoints, reexecuted_checkpoints "
                    "FROM flowrun.attempts WHERE run_uid = :'uid' ORDER BY attempt",
    }
    return {k: run.sql(v) for k, v in q.items()}


def _stable(message: dict) -> dict:
    m = dict(message)
    if "wait" in m:
        m["wait"] = {k: v for k, v in m["wait"].items() if k not in ("askedAt", "deadline")}
    return m


def test_python_and_cpp_research_agents_write_the_same_rows(make_run) -> None:
    assert CPP_AGENT.exists(), f"build {CPP_AGENT} first"
    params = {"topic": "tidal energy"}
    cpp: Run = make_run("", parameters=params, command=[str(CPP_AGENT)])
    py: Run = make_run("agent:research_agent", parameters=params, cwd=PY_AGENT)
    cpp_messages = _drive(cpp)
    py_messages = _drive(py)
    assert [_stable(m) for m in py_messages] == [_stable(m) for m in cpp_messages]
    cpp_rows, py_rows = _rows(cpp), _rows(py)
    for table in cpp_rows:
        assert py_rows[table] == cpp_rows[table], table
