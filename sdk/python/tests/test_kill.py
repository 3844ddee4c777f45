"""SIGKILL at >= 200 random moments: a 40-checkpoint sync agent and an async agent with a gather fan-out.

At every kill: no checkpoint that had completed before the execution started
sends its prompt again. At the end of each run: it succeeded with the result
of an unkilled run, every prompt reached the fake LLM at least once, and every
repeated prompt belongs to a checkpoint the runtime counted as re-executed
(the window between the LLM's answer and the row's commit).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.agent import Run, kill

KILLS = int(os.environ.get("FLOWRUN_PYTEST_KILLS", "200"))
PARALLEL = 3


def _counts(fake_llm, uid: str) -> dict[str, int]:
    return {p: n for p, n in fake_llm.stats()["by_prompt"].items() if p.startswith(uid + " ")}


def _completed(run: Run) -> set[tuple[str, int]]:
    return {(n, o) for n, o, _, status in run.checkpoints() if status == "completed"}


def _prompt(uid: str, name: str, occurrence: int) -> str:
    """The prompt checkpoint (name, occurrence) of tests/agents/chain.py sends."""
    if name.startswith("search["):
        return f"{uid} search {name[7:-1]}"
    if name == "step":
        return f"{uid} step {occurrence}"
    if name == "summarize":
        return f"{uid} summarize {occurrence - 1} of 20"
    raise AssertionError(f"unexpected checkpoint {name}")


def _drive(make_run, fake_llm, target: str, kills: int, duration: float, seed: int) -> dict:
    rng = random.Random(seed)
    done_kills = runs = 0
    repeated = counted = 0
    expected = None
    while done_kills < kills:
        runs += 1
        run: Run = make_run(target)
        while True:
            completed_before = _completed(run)
            counts_before = _counts(fake_llm, run.uid)
            proc = run.start()
            killed = False
            if done_kills < kills:
                try:
                    proc.wait(rng.uniform(0.05, duration))
                except subprocess.TimeoutExpired:
                    kill(proc)
                    killed = True
                    done_kills += 1
            if not killed:
                r = run.finish(proc)
                assert r.code == 0, r.stderr
            counts_after = _counts(fake_llm, run.uid)
            for name, occ in completed_before:
                p = _prompt(run.uid, name, occ)
                assert counts_after.get(p) == counts_before.get(p), f"{name}#{occ} of {run.uid} was stored but ran again"
            if not killed:
                break
        state = run.show()
        assert state["status"] == "succeeded", state
        if expected is None:
            expected = state["result"]
        assert state["result"] == expected
        counts = _counts(fake_llm, run.uid)
        assert len(counts) == 40 and all(n >= 1 for n in counts.values()), counts
        rows = run.sql("SELECT name, occurrence, reexecutions FROM flowrun.checkpoints "
                       "WHERE run_uid = :'uid' AND kind = 'step'")
        for row in rows.splitlines():
            name, occ, reexec = row.split("|")
            n = counts[_prompt(run.uid, name, int(occ))]
            # Every repeated prompt is a re-execution the runtime counted for that very checkpoint.
            assert n - 1 <= int(reexec), (row, n)
            repeated += n - 1
            counted += int(reexec)
    return {"kills": done_kills, "runs": runs, "repeated": repeated, "counted": counted, "result": expected}


def _unkilled_duration(make_run, target: str) -> tuple[float, dict]:
    run: Run = make_run(target)
    t0 = time.monotonic()
    r = run.execute()
    elapsed = time.monotonic() - t0
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    return elapsed, run.show()["result"]


@pytest.mark.parametrize("target", ["chain:chain", "chain:fan_out"])
def test_random_kills(make_run, fake_llm, target: str) -> None:
    duration, unkilled = _unkilled_duration(make_run, target)
    kills = (KILLS + 1) // 2  # the two flows share the total
    per_worker = [kills // PARALLEL + (1 if i < kills % PARALLEL else 0) for i in range(PARALLEL)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        stats = list(pool.map(lambda a: _drive(make_run, fake_llm, target, a[1], duration, 1000 + a[0]),
                              enumerate(per_worker)))
    total = {k: sum(s[k] for s in stats) for k in ("kills", "runs", "repeated", "counted")}
    print(f"{target}: {total} (unkilled run {duration:.2f} s)")
    assert total["kills"] >= kills
    for s in stats:
        assert s["result"] == unkilled, "a killed-and-resumed run's result differs from an unkilled run's"
    assert total["repeated"] <= total["counted"]
