"""Python agents as real processes over a real PostgreSQL: waits, typed values, parameters, suspension."""

from __future__ import annotations

import json

from support.agent import Run


def test_wait_suspends_inside_wait_and_resumes_with_a_typed_answer(make_run, fake_llm) -> None:
    run: Run = make_run("basic:approval", parameters={"topic": "tides"})
    r = run.execute()
    assert r.code == 0, r.stderr
    assert r.message["outcome"] == "waiting" and r.message["wait"]["name"] == "review"
    schema = r.message["wait"]["schema"]
    assert schema["type"] == "object" and "approved" in schema["properties"]
    # Nothing after the suspending wait ran, finally blocks included.
    assert not run.marker("after-wait") and not run.marker("finally-ran")
    assert run.show()["status"] == "waiting"

    bad = run.answer("review", {"approved": "yes"})
    assert bad.returncode != 0  # the C++ validator refuses it against pydantic's schema
    assert run.answer("review", {"approved": True, "notes": "ship it"}).returncode == 0

    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "waiting" and r2.message["wait"]["name"] == "proceed", r2.stderr
    assert run.marker("after-wait") and run.marker("finally-ran")
    assert run.answer("proceed", True).returncode == 0
    r3 = run.execute()
    assert r3.code == 0 and r3.message["outcome"] == "succeeded", r3.stderr
    result = run.show()["result"]
    assert result["status"] == "done" and result["review"] == {"approved": True, "notes": "ship it"}
    assert result["notes"] == "reply to: Research tides"
    # research ran once over three executions.
    assert fake_llm.stats()["by_prompt"].get("Research tides") == 1


def test_wait_deadline_gives_the_default(make_run) -> None:
    run: Run = make_run("basic:with_default")
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    deadline_passed = run.sql("SELECT deadline IS NOT NULL FROM flowrun.waits WHERE run_uid = :'uid'")
    assert deadline_passed == "t"
    run.sql("UPDATE flowrun.waits SET deadline = now() - interval '1 second' WHERE run_uid = :'uid'")
    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert run.show()["result"] == {"approved": False, "notes": "no answer in time"}


def test_pydantic_values_live_equal_cached_and_arguments_are_not_mutated(make_run) -> None:
    run: Run = make_run("basic:typed", parameters={"title": "T", "tags": ["a", "b"]})
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    assert run.answer("again", True).returncode == 0
    r2 = run.execute()  # serves make_report from the cache
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert r2.message["checkpoints"]["cached"] >= 1
    live = json.loads(open(f"{run.dir}/report-1.json").read())
    cached = json.loads(open(f"{run.dir}/report-2.json").read())
    assert live == cached
    # What PostgreSQL holds is that plain JSON: no pickle, no type names.
    stored = json.loads(run.sql("SELECT output FROM flowrun.checkpoints WHERE run_uid = :'uid' AND name = 'make_report'"))
    assert stored == live and "Report" not in json.dumps(stored) and "Color" not in json.dumps(stored)
    assert live["color"] == "blue" and live["at"].startswith("2026-12-03T12:00:00") and len(live["hits"]) == 3
    # The body appended to its copy of `tags`: the caller's list is unchanged, live and on resume.
    assert open(f"{run.dir}/tags-1").read() == "['a', 'b']" == open(f"{run.dir}/tags-2").read()


def test_non_json_output_fails_the_try_and_stores_no_output(make_run) -> None:
    run: Run = make_run("basic:bad_output")
    r = run.execute()
    assert r.code == 1, r.stderr
    assert "save_artifact" in r.message["error"]
    rows = run.sql("SELECT status, output IS NULL FROM flowrun.checkpoints WHERE run_uid = :'uid'")
    assert rows == "failed|t"
    # One try, final although retries=2 were allowed: a value JSON cannot carry is not retried.
    tries = run.sql("SELECT try_number, final FROM flowrun.checkpoint_failures WHERE run_uid = :'uid'")
    assert tries == "1|t", tries


def test_parameters_are_bound_and_validated_missing_and_unknown_are_config_errors(make_run) -> None:
    ok = make_run("basic:params", parameters={"count": "3", "when": "2026-12-03"}).execute()
    assert ok.code == 0, ok.stderr
    missing = make_run("basic:params", parameters={"name": "y"}).execute()
    assert missing.code == 2 and missing.message["outcome"] == "config_error"
    assert "'count'" in missing.message["error"]
    unknown = make_run("basic:params", parameters={"count": 1, "colour": "red"}).execute()
    assert unknown.code == 2 and "'colour'" in unknown.message["error"]
    invalid = make_run("basic:params", parameters={"count": "many"}).execute()
    assert invalid.code == 2 and "'count'" in invalid.message["error"]


def test_artifacts_record_llm_call_and_current(make_run) -> None:
    run: Run = make_run("basic:misc")
    r = run.execute()
    assert r.code == 0, r.stderr
    result = run.show()["result"]
    assert result == {"v1": 1, "v2": 1, "attempt": 1, "uid": run.uid, "spent": True}
    arts = run.sql("SELECT name, version, content_type, checkpoint FROM flowrun.artifacts "
                   "WHERE run_uid = :'uid' ORDER BY name")
    assert arts.splitlines()[0].startswith("blob|1|application/octet-stream|")
    assert arts.splitlines()[1].startswith("notes|1|application/json|artifact_step")
    cost = float(run.sql("SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = :'uid'"))
    assert abs(cost - (1000 * 0.15 + 500 * 0.60) / 1e6) < 1e-12


def test_the_gil_is_released_during_llm_and_database_calls(make_run, fake_llm) -> None:
    fake_llm.config(latency_ms=300)
    try:
        run: Run = make_run("basic:ticker")
        r = run.execute()
    finally:
        fake_llm.config(latency_ms=0)
    assert r.code == 0, r.stderr
    result = run.show()["result"]
    assert result["call_seconds"] >= 0.3
    # A thread sleeping 1 ms per tick: with the GIL held for 300 ms it could not tick at all.
    assert result["ticks_during_call"] >= 50, result


def test_the_gil_is_released_while_the_engine_waits_for_postgresql(make_run) -> None:
    import os
    import threading
    import time

    run: Run = make_run("basic:db_ticker")
    proc = run.start()
    deadline = time.monotonic() + 60
    while not run.marker("ready") and time.monotonic() < deadline:
        time.sleep(0.01)
    # Hold an exclusive lock on flowrun.checkpoints for 0.6 s: the checkpoint's engine calls block on it.
    locked = os.path.join(run.dir, "locked")
    holder = threading.Thread(target=run.sql, args=(
        f"BEGIN; LOCK TABLE flowrun.checkpoints IN ACCESS EXCLUSIVE MODE;\n\\! touch {locked}\n"
        "SELECT pg_sleep(0.6); COMMIT;",))
    holder.start()
    r = run.finish(proc)
    holder.join()
    assert r.code == 0, r.stderr
    result = run.show()["result"]
    assert result["call_seconds"] >= 0.3, result  # the call really waited for the lock
    assert result["ticks_during_call"] >= 50, result
