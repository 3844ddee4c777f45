"""flowrun.instrument() end to end: real openai/anthropic clients in a real flow process, real PostgreSQL.

What the fake LLM reported is what flowrun.llm_calls holds, priced by the
runtime's table (examples/prices.yaml); a cut stream is a failed call with
unknown cost; a resumed run answers from the cache without calling again; an
exhausted budget ends the process inside the instrumented call, before the
request (the fake never sees it), and the run resumes after `flowrunctl budget`.
"""

from __future__ import annotations

from typing import Any

from support.agent import Run

# examples/prices.yaml, USD per million tokens.
GPT_4O_MINI = (0.15, 0.60)
CLAUDE_SONNET_4 = (3.00, 15.00)


def fake_tokens(prompt: str) -> tuple[int, int]:
    """The fake's rule: chars // 4 + 1 prompt tokens; the reply 'reply to: <prompt>' likewise."""
    return len(prompt) // 4 + 1, len("reply to: " + prompt) // 4 + 1


def calls(run: Run) -> list[list[str]]:
    rows = run.sql("SELECT checkpoint_name, model, state, input_tokens, output_tokens, cached_tokens, "
                   "coalesce(cost_usd::text, 'NULL'), price_source FROM flowrun.llm_calls "
                   "WHERE run_uid = :'uid' ORDER BY seq")
    return [r.split("|") for r in rows.splitlines() if r]


def by_prompt(fake_llm: Any, run: Run) -> dict[str, int]:
    return {p: n for p, n in fake_llm.stats()["by_prompt"].items() if p.startswith(run.uid)}


def test_real_sdk_calls_are_recorded_as_the_fake_reported_and_not_repeated_on_resume(make_run, fake_llm) -> None:
    run: Run = make_run("instrumented:sdk_calls")
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    rows = {row[0]: row for row in calls(run)}
    assert set(rows) == {"chat", "chat_stream", "respond", "ask_claude", "cut"}, calls(run)
    for name, what, model, (pin, pout) in (("chat", "a", "gpt-4o-mini", GPT_4O_MINI),
                                           ("chat_stream", "b", "gpt-4o-mini", GPT_4O_MINI),
                                           ("respond", "c", "gpt-4o-mini", GPT_4O_MINI),
                                           ("ask_claude", "d", "claude-sonnet-4-5", CLAUDE_SONNET_4)):
        inp, out = fake_tokens(f"{run.uid} {what}")
        row = rows[name]
        assert row[1:6] == [model, "completed", str(inp), str(out), "0"], row
        assert abs(float(row[6]) - (inp * pin + out * pout) / 1e6) < 1e-12, row
    cut = rows["cut"]
    assert cut[6] == "NULL" and cut[7] == "incomplete", cut  # a cut stream: unknown cost, never zero
    assert run.show()  # the run is readable by flowrunctl

    sent = by_prompt(fake_llm, run)
    assert all(n == 1 for n in sent.values()) and len(sent) == 5, sent
    assert run.answer("go", True).returncode == 0
    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    result = run.show()["result"]
    assert result["chat"] == f"reply to: {run.uid} a" and result["claude"] == f"reply to: {run.uid} d"
    assert result["cut"] == "cut"
    assert by_prompt(fake_llm, run) == sent  # answered from the cache: nothing was sent again
    assert len(calls(run)) == 5
    # Savings on resume: the cached checkpoints' calls and their priced USD (the cut call's cost is unknown).
    paid = sum(float(row[6]) for row in calls(run) if row[6] != "NULL")
    saved = r2.message["saved"]
    assert saved["calls"] == 5 and abs(saved["usd"] - paid) < 1e-12, (saved, paid)


def test_an_exhausted_budget_suspends_inside_the_sdk_call_before_the_request(make_run, fake_llm) -> None:
    # 100k input + 10k output tokens of gpt-4o-mini = $0.021 a call: a $0.03 budget allows two.
    fake_llm.config(usage={"prompt_tokens": 100000, "completion_tokens": 10000})
    try:
        run: Run = make_run("instrumented:sdk_spender", extra_env={"FLOWRUN_BUDGET_USD": "0.03"})
        r = run.execute()
        assert r.code == 0 and r.message["outcome"] == "budget_exceeded", r.stderr
        assert by_prompt(fake_llm, run) == {f"{run.uid} paid 0": 1, f"{run.uid} paid 1": 1}  # never sent
        assert [row[2] for row in calls(run)] == ["completed", "completed"]
        assert run.ctl("budget", run.uid, "1").returncode == 0
        r2 = run.execute()
        assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
        assert by_prompt(fake_llm, run) == {f"{run.uid} paid {i}": 1 for i in range(3)}
    finally:
        fake_llm.config(usage={"prompt_tokens": None, "completion_tokens": None})


def test_a_provider_error_finishes_the_started_call_as_failed_and_reaches_the_flow_unchanged(
        make_run, fake_llm) -> None:
    fake_llm.config(fail_next=1, fail_status=503)
    try:
        run: Run = make_run("instrumented:sdk_failure")
        r = run.execute()
        assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    finally:
        fake_llm.config(fail_next=0)
    assert run.show()["result"]["refused"] == "InternalServerError 503"  # the SDK's own exception
    rows = run.sql("SELECT checkpoint_name, state, coalesce(input_tokens::text, 'NULL'), "
                   "coalesce(cost_usd::text, 'NULL'), coalesce(error, '') FROM flowrun.llm_calls "
                   "WHERE run_uid = :'uid' ORDER BY seq")
    got = [row.split("|") for row in rows.splitlines() if row]
    assert [(g[0], g[1], g[3]) for g in got] == [("chat_refused", "failed", "NULL"),  # not left "started"
                                                 ("chat", "completed", got[1][3])], got
    assert got[1][3] != "NULL", got
    assert "InternalServerError" in got[0][4] and "503" in got[0][4], got


def test_a_budget_stop_in_one_async_body_lets_the_others_finish_and_be_stored(make_run, fake_llm) -> None:
    # $0.021 a call: the two sides' calls pass a $0.03 budget (checked before either is spent),
    # the burner's is refused. Semantics 6: the in-flight sides finish and are stored first.
    fake_llm.config(usage={"prompt_tokens": 100000, "completion_tokens": 10000})
    try:
        run: Run = make_run("instrumented:gather_spender", extra_env={"FLOWRUN_BUDGET_USD": "0.03"})
        r = run.execute(timeout=60)
        assert r.code == 0 and r.message["outcome"] == "budget_exceeded", r.stderr
        assert by_prompt(fake_llm, run) == {f"{run.uid} side 1": 1, f"{run.uid} side 2": 1}  # burn never sent
        rows = {(c[0], c[1]): c[3] for c in run.checkpoints() if c[2] == "step"}
        assert rows == {("side", 1): "completed", ("side", 2): "completed", ("burner", 1): "failed"}, rows
        assert run.ctl("budget", run.uid, "1").returncode == 0
        r2 = run.execute(timeout=60)
        assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
        # Only the stopped body ran again: the sides came from the cache, nothing re-burnt.
        assert by_prompt(fake_llm, run) == {f"{run.uid} {p}": 1 for p in ("side 1", "side 2", "burn")}
        assert r2.message["checkpoints"]["cached"] == 2, r2.message
        assert run.show()["result"]["outs"] == [f"reply to: {run.uid} {p}" for p in ("side 1", "burn", "side 2")]
    finally:
        fake_llm.config(usage={"prompt_tokens": None, "completion_tokens": None})
