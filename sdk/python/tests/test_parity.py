"""The Python research agent (examples/research-agent-py) and the C++ one write the same rows.

Both run the same three executions against the same fake LLM: the first one's
research call gets no response (the fake answers 503 to every one of the
runtime client's four tries), so the checkpoint fails and the run exits 1;
the second researches and waits; the third, after the answer, succeeds. Every
row both leave is then compared column by column — every column but the run's
identity, wall-clock timestamps and measured durations — together with the
termination messages, the metrics' source (``flowrun.metric_contributions``)
and ``flowrunctl costs``: nothing downstream can tell the two agents apart.
"""

from __future__ import annotations

import json
from typing import Any

from support.agent import BUILD, REPO, Run

CPP_AGENT = BUILD / "examples" / "research-agent"
PY_AGENT = REPO / "examples" / "research-agent-py"

# Columns that differ between any two runs of one agent: identity, clocks, measured time.
VOLATILE = ["run_uid", "created_at", "updated_at", "started_at", "finished_at", "duration_ms", "at",
            "asked_at", "answered_at", "consumed_at", "deadline", "latency_ms"]
TABLES = {
    "runs": "run_uid",
    "attempts": "epoch",
    "checkpoints": "name, occurrence",
    "checkpoint_failures": "name, occurrence, epoch, try_number",
    "llm_calls": "epoch, seq",
    "waits": "name, occurrence",
    "artifacts": "name, version",
}


def _drive(run: Run, fake_llm) -> list[dict]:
    messages = []
    # The runtime client's 4 tries all get 503: no response, the call fails, so does the checkpoint (no retries).
    fake_llm.config(fail_next=4, fail_status=503)
    try:
        r = run.execute()
    finally:
        fake_llm.config(fail_next=0, fail_status=500)
    assert r.code == 1 and r.message["outcome"] == "failed", (r.code, r.message, r.stderr)
    messages.append(r.message)
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    messages.append(r.message)
    assert run.answer("proceed", True).returncode == 0
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    messages.append(r.message)
    return messages


def _json_rows(run: Run, table: str, order: str) -> list[dict[str, Any]]:
    drop = ", ".join(f"'{c}'" for c in VOLATILE)
    text = run.sql(f"SELECT coalesce(jsonb_agg(to_jsonb(t) - ARRAY[{drop}] ORDER BY {order}), '[]') "
                   f"FROM flowrun.{table} t WHERE run_uid = :'uid'")
    rows = json.loads(text)
    if table == "runs":
        for row in rows:
            row.pop("name", None)  # the FlowRun's name is its uid here
    return rows


def _rows(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {t: _json_rows(run, t, order) for t, order in TABLES.items()}
    # What the controller's metrics read (wait response times are wall-clock: left out).
    out["metrics"] = run.sql("SELECT metric, model, label, value FROM flowrun.metric_contributions(:'uid') "
                             "WHERE metric NOT LIKE 'wait_response%' ORDER BY 1, 2, 3").splitlines()
    out["costs"] = _costs(run)
    return out


def _costs(run: Run) -> list[list[str]]:
    """`flowrunctl costs` (per model, then per checkpoint) without the checkpoints' measured MS column."""
    costs = run.ctl("costs", run.uid)
    assert costs.returncode == 0, costs.stderr
    lines, per_checkpoint = [], False
    for line in costs.stdout.splitlines():
        fields = line.split()
        per_checkpoint = per_checkpoint or (fields[:1] == ["CHECKPOINT"])
        if per_checkpoint and len(fields) > 4:
            del fields[4]
        lines.append(fields)
    assert per_checkpoint and len(lines) > 4, costs.stdout
    return lines


def _stable(message: dict) -> dict:
    m = dict(message)
    if "wait" in m:
        m["wait"] = {k: v for k, v in m["wait"].items() if k not in ("askedAt", "deadline")}
    return m


def test_python_and_cpp_research_agents_write_the_same_rows(make_run, fake_llm) -> None:
    assert CPP_AGENT.exists(), f"build {CPP_AGENT} first"
    params = {"topic": "tidal energy"}
    cpp: Run = make_run("", parameters=params, command=[str(CPP_AGENT)])
    py: Run = make_run("agent:research_agent", parameters=params, cwd=PY_AGENT)
    cpp_messages = _drive(cpp, fake_llm)
    py_messages = _drive(py, fake_llm)
    assert [_stable(m) for m in py_messages] == [_stable(m) for m in cpp_messages]
    cpp_rows, py_rows = _rows(cpp), _rows(py)
    for table in cpp_rows:
        assert py_rows[table] == cpp_rows[table], table

    # What the rows say (the same for both, compared above): the call that got no response is a
    # failed call of unknown cost, outside every usage total; the checkpoint's try failed with
    # the client's error; the next attempt ran research again and paid once.
    calls = cpp_rows["llm_calls"]
    assert [(c["checkpoint_name"], c["attempt"], c["state"]) for c in calls] == [
        ("research", 1, "failed"), ("research", 2, "completed"), ("analyze", 3, "completed")]
    failed = calls[0]
    assert failed["cost_usd"] is None and failed["price_source"] == "unknown" and failed["input_tokens"] == failed["output_tokens"] == 0
    assert failed["estimated_input_tokens"] > 0 and "503" in failed["error"], failed
    assert all(c["cost_usd"] is not None and c["price_source"] == "price-table:gpt-4o-mini" for c in calls[1:]), calls
    tries = cpp_rows["checkpoint_failures"]
    assert [(t["name"], t["try_number"], t["attempt"], t["final"]) for t in tries] == [("research", 1, 1, True)]
    assert tries[0]["message"] == failed["error"]
    assert cpp_messages[0]["error"] == f"checkpoint 'research' failed: {failed['error']}"
    research = next(c for c in cpp_rows["checkpoints"] if c["name"] == "research")
    assert research["status"] == "completed" and research["llm_calls"] == 1 and research["unknown_cost_calls"] == 0
    assert [line for line in cpp_rows["metrics"] if line.startswith("llm_calls|") or line.startswith("unpriced")] \
        == ["llm_calls|gpt-4o-mini||2", "unpriced_llm_calls|gpt-4o-mini||0"], cpp_rows["metrics"]


def test_a_flow_scope_call_with_no_response_leaves_the_same_rows_in_python_and_cpp(make_run, fake_llm) -> None:
    """flowrun.llm outside any checkpoint: the failed call, the failed attempt's outcome, then the paid one."""
    test_agent = BUILD / "tests" / "runtime" / "test_agent"
    assert test_agent.exists(), f"build {test_agent} first"
    params = {"scenario": "flow_llm", "prompt": "at flow scope"}
    cpp: Run = make_run("", parameters=params, command=[str(test_agent)])
    py: Run = make_run("basic:flow_llm", parameters=params)
    messages = {}
    for side, run in (("cpp", cpp), ("py", py)):
        fake_llm.config(fail_next=1, fail_status=400)  # not retried by the client: one request, no answer
        try:
            first = run.execute()
        finally:
            fake_llm.config(fail_next=0, fail_status=500)
        assert first.code == 1 and first.message["outcome"] == "failed", (side, first.message, first.stderr)
        second = run.execute()
        assert second.code == 0 and second.message["outcome"] == "succeeded", (side, second.stderr)
        messages[side] = [first.message, second.message]
    assert messages["py"] == messages["cpp"]
    assert messages["cpp"][0]["error"].startswith("the flow threw: INVALID_ARGUMENT: "), messages["cpp"][0]
    for table in ("runs", "attempts", "llm_calls", "checkpoints"):
        assert _json_rows(py, table, TABLES[table]) == _json_rows(cpp, table, TABLES[table]), table
    calls = _json_rows(cpp, "llm_calls", TABLES["llm_calls"])
    assert [(c["checkpoint_name"], c["state"], c["cost_usd"] is None) for c in calls] == [
        (None, "failed", True), (None, "completed", False)], calls
