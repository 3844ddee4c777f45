"""Budgets, async waits, the LLM recorder interface, sticky errors."""

from __future__ import annotations

from support.agent import Run


def test_exhausted_budget_suspends_before_the_request_and_resumes_after_raising_it(make_run, fake_llm) -> None:
    # 100k input + 10k output tokens of gpt-4o-mini = $0.021 a call: a $0.03 budget allows two.
    fake_llm.config(usage={"prompt_tokens": 100000, "completion_tokens": 10000})
    try:
        run: Run = make_run("basic:spender", extra_env={"FLOWRUN_BUDGET_USD": "0.03"})
        r = run.execute()
        assert r.code == 0 and r.message["outcome"] == "budget_exceeded", r.stderr
        sent = {p: n for p, n in fake_llm.stats()["by_prompt"].items() if p.startswith(run.uid)}
        assert sent == {f"{run.uid} paid 0": 1, f"{run.uid} paid 1": 1}  # the third was never sent
        assert not run.marker("spender-finally-1")
        assert run.ctl("budget", run.uid, "1").returncode == 0
        r2 = run.execute()
        assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
        sent = {p: n for p, n in fake_llm.stats()["by_prompt"].items() if p.startswith(run.uid)}
        assert sent == {f"{run.uid} paid {i}": 1 for i in range(3)}
        assert run.show()["result"] == {"calls": 3}
    finally:
        fake_llm.config(usage={"prompt_tokens": None, "completion_tokens": None})


def test_wait_async_lets_in_flight_checkpoints_finish_and_be_stored(make_run, fake_llm) -> None:
    run: Run = make_run("basic:async_wait")
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    assert ("background", 1, "step", "completed") in run.checkpoints()
    assert run.answer("go", True).returncode == 0
    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert run.show()["result"] == {"ok": True, "bg": f"reply to: {run.uid} background"}
    assert fake_llm.stats()["by_prompt"][f"{run.uid} background"] == 1


def test_recorder_attributes_concurrent_calls_to_their_own_checkpoint(make_run) -> None:
    run: Run = make_run("basic:recorders")
    r = run.execute()
    assert r.code == 0, r.stderr
    rows = run.sql("SELECT occurrence, input_tokens, llm_calls FROM flowrun.checkpoints "
                   "WHERE run_uid = :'uid' AND name = 'recorded' ORDER BY occurrence")
    assert rows.splitlines() == ["1|1000|1", "2|2000|1"]
    calls = run.sql("SELECT coalesce(checkpoint_name, '-'), occurrence, input_tokens, cost_usd IS NULL "
                    "FROM flowrun.llm_calls WHERE run_uid = :'uid' ORDER BY input_tokens")
    lines = calls.splitlines()
    assert "recorded|1|1000|f" in lines and "recorded|2|2000|f" in lines
    # The cut call outside any checkpoint: recorded, with unknown cost (never zero).
    assert any(line.startswith("-||") and line.endswith("|t") for line in lines), lines


def test_a_swallowed_divergence_still_ends_the_execution_as_divergence(make_run) -> None:
    run: Run = make_run("basic:swallow")
    r = run.execute(AGENT_ARG="1")
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    before = run.checkpoints()
    r2 = run.execute(AGENT_ARG="2")
    assert r2.code == 5 and r2.message["outcome"] == "divergence", r2.stderr
    assert run.marker("swallowed")
    assert run.checkpoints() == before  # `second(0)` after the except wrote nothing


def test_retries_then_a_final_failure_exits_1_and_the_next_attempt_reruns_only_it(make_run) -> None:
    run: Run = make_run("basic:retrying")
    r = run.execute()
    assert r.code == 1 and r.message["outcome"] == "failed", r.stderr
    assert "hopeless" in r.message["error"] and "ValueError: bad input" in r.message["error"]
    tries = run.sql("SELECT name, try_number, final FROM flowrun.checkpoint_failures "
                    "WHERE run_uid = :'uid' ORDER BY name, try_number")
    # flaky: two failed tries, then success; hopeless: give_up_on stops after the first.
    assert tries.splitlines() == ["flaky|1|f", "flaky|2|f", "hopeless|1|t"]
    open(f"{run.dir}/fixed", "w").close()
    r2 = run.execute()
    assert r2.code == 0, r2.stderr
    assert run.show()["result"] == {"flaky": 3, "hopeless": 2}
    assert not run.marker("flaky-try-4")  # flaky came from the cache


def test_python_m_flowrun_run_with_a_bad_target_is_a_config_error(make_run) -> None:
    r = make_run("basic:no_such_flow").execute()
    assert r.code == 2 and r.message["outcome"] == "config_error" and "no_such_flow" in r.message["error"]


def test_concurrent_async_bodies_stopping_on_the_budget_suspend_once_without_deadlock(make_run, fake_llm) -> None:
    fake_llm.config(usage={"prompt_tokens": 100000, "completion_tokens": 10000})  # $0.021 a call
    try:
        run: Run = make_run("basic:spender_async", extra_env={"FLOWRUN_BUDGET_USD": "0.02"})
        r = run.execute(timeout=60)
        assert r.code == 0 and r.message["outcome"] == "budget_exceeded", r.stderr
        sent = [p for p in fake_llm.stats()["by_prompt"] if p.startswith(run.uid)]
        assert sent == [f"{run.uid} paid-async 0"]
        assert run.ctl("budget", run.uid, "1").returncode == 0
        r2 = run.execute(timeout=60)
        assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
        assert run.show()["result"]["calls"] == 4
        counts = {p: n for p, n in fake_llm.stats()["by_prompt"].items() if p.startswith(run.uid)}
        assert counts == {f"{run.uid} paid-async {i}": 1 for i in range(4)}
    finally:
        fake_llm.config(usage={"prompt_tokens": None, "completion_tokens": None})


def test_flowrun_llm_without_a_response_fails_the_try_and_retries_apply(make_run, fake_llm) -> None:
    # A 400 is not retried by the runtime client: its one request gets no answer, the call fails.
    fake_llm.config(fail_next=1, fail_status=400)
    try:
        run: Run = make_run("basic:llm_retry")
        r = run.execute()
    finally:
        fake_llm.config(fail_next=0, fail_status=500)
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert run.show()["result"] == {"reply": f"reply to: {run.uid} ask twice"}
    tries = run.sql("SELECT try_number, final, message FROM flowrun.checkpoint_failures WHERE run_uid = :'uid'")
    assert tries.startswith("1|f|") and "HTTP 400" in tries and "Traceback" not in tries, tries
    calls = run.sql("SELECT state, cost_usd IS NULL, error <> '' FROM flowrun.llm_calls WHERE run_uid = :'uid' "
                    "ORDER BY seq").splitlines()
    assert calls == ["failed|t|t", "completed|f|f"], calls
    assert r.message["spent"]["calls"] == 1 and "unpriced" not in r.message["spent"], r.message


def test_a_gather_numbers_its_calls_in_list_order_whatever_finishes_first(make_run) -> None:
    run: Run = make_run("basic:gather_order")
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    rows = run.sql("SELECT name, occurrence, output FROM flowrun.checkpoints "
                   "WHERE run_uid = :'uid' AND kind = 'step' ORDER BY name, occurrence").splitlines()
    # probe(0) was called first and finished last: still occurrence 1; other() has its own counter.
    assert rows == ["other|1|2", "other|2|1"] + [f'probe|{i + 1}|{{"i": {i}}}' for i in range(5)], rows
    done = {i: float(open(f"{run.dir}/probe-done-1-{i}").read()) for i in range(5)}
    assert sorted(done, key=done.get) == [4, 3, 2, 1, 0]  # they really finished in reverse
    assert run.answer("go", True).returncode == 0
    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert r2.message["checkpoints"]["cached"] == 7, r2.message  # every step from the cache (the wait is live)
    assert run.show()["result"] == {"outs": [{"i": i} for i in range(5)] + [2, 1]}


def test_suspension_flushes_stdout_and_logging_and_runs_nothing_after(make_run) -> None:
    run: Run = make_run("basic:chatty")
    r = run.execute(PYTHONUNBUFFERED="")  # stdout to a pipe is block-buffered now
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    assert "printed before the wait" in r.stdout and "printed after the wait" not in r.stdout, r.stdout
    assert "logged before the wait" in open(f"{run.dir}/agent.log").read()


def test_a_call_in_flight_when_the_agent_is_killed_stays_visible_as_unfinished(make_run, fake_llm) -> None:
    import time

    from support.agent import kill

    run: Run = make_run("basic:in_flight")
    before = fake_llm.stats()["total"]
    fake_llm.config(latency_ms=20000)  # the request hangs at the "provider"
    try:
        proc = run.start()
        deadline = time.monotonic() + 30
        while fake_llm.stats()["total"] == before and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        fake_llm.config(latency_ms=0)
    kill(proc)
    rows = run.sql("SELECT checkpoint_name, state, cost_usd IS NULL, estimated_input_tokens > 0 "
                   "FROM flowrun.llm_calls WHERE run_uid = :'uid'")
    assert rows == "slow_call|started|t|t", rows
    spent = run.show()["spent"]
    assert spent["llmCalls"] == 0 and spent["unfinishedCalls"] == 1, spent
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    spent = run.show()["spent"]
    assert spent["llmCalls"] == 1 and spent["unfinishedCalls"] == 1, spent  # the killed call stays on the record


def test_a_swallowed_store_error_is_sticky_and_the_flow_cannot_finish_as_succeeded(make_run) -> None:
    run: Run = make_run("basic:store_swallow")
    # PostgreSQL refuses one artifact (a SQL error, not a lost connection: the engine's StoreError).
    run.sql("CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = 'poison' THEN RAISE EXCEPTION 'poisoned by the test'; END IF; RETURN NEW; END $$; "
            "CREATE TRIGGER poison BEFORE INSERT ON flowrun.artifacts FOR EACH ROW EXECUTE FUNCTION public.poison();")
    r = run.execute()
    caught = open(f"{run.dir}/caught-store").read()
    assert caught.startswith("StoreError(") and "poisoned by the test" in caught, caught
    # Every later engine call raises the same error again: the checkpoint after the except wrote nothing.
    assert open(f"{run.dir}/caught-again").read() == caught
    assert run.marker("went-on")
    assert run.checkpoints() == [] and run.sql("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = :'uid'") == "0"
    # The flow returned normally, yet the outcome is the store error's (a refused statement: failed, exit 1;
    # a lost database would be database_unavailable, exit 3), never succeeded.
    assert r.code == 1 and r.message["outcome"] == "failed", (r.code, r.message)
    assert "poisoned by the test" in r.message["error"] and "result" not in r.message, r.message
    assert run.show()["status"] == "failed"


def test_checkpoints_on_several_threads_record_their_calls_under_their_own_identity(make_run, fake_llm) -> None:
    fake_llm.config(latency_ms=200)  # the four calls are in flight at once
    try:
        run: Run = make_run("basic:threaded")
        r = run.execute()
    finally:
        fake_llm.config(latency_ms=0)
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    rows = run.sql("SELECT c.occurrence, c.output #>> '{}', c.llm_calls, c.input_tokens, l.input_tokens, "
                   "l.state FROM flowrun.checkpoints c JOIN flowrun.llm_calls l ON l.run_uid = c.run_uid "
                   "AND l.checkpoint_name = c.name AND l.occurrence = c.occurrence "
                   "WHERE c.run_uid = :'uid' ORDER BY c.occurrence").splitlines()
    assert len(rows) == 4, rows
    for row in rows:
        occ, output, calls, cp_in, call_in, state = row.split("|")
        prompt = output.removeprefix("reply to: ")
        # The fake's rule: len(prompt) // 4 + 1 prompt tokens; the prompts' lengths all differ.
        assert (calls, state) == ("1", "completed") and int(cp_in) == int(call_in) == len(prompt) // 4 + 1, row
    assert len({row.split("|")[3] for row in rows}) == 4, rows  # four different figures, none crossed over
