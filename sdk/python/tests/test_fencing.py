"""Two executors of one run: exactly one commits; the other exits with the fencing code even when it catches."""

from __future__ import annotations

import glob
import os
import time

from support.agent import Run


def _wait_for(pattern: str, count: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = glob.glob(pattern)
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{pattern}: fewer than {count} after {timeout} s")


def test_exactly_one_executor_commits_and_the_other_is_fenced_despite_except(make_run) -> None:
    run: Run = make_run("basic:fenced")
    old = run.start()
    _wait_for(f"{run.dir}/slow-1-started-*", 1)
    new = run.start()  # a second pod of the same run (attempt 2) takes the fence
    _wait_for(f"{run.dir}/slow-1-started-*", 2)
    open(f"{run.dir}/gate", "w").close()
    run.attempt = 2
    r_new = run.finish(new)
    run.attempt = 1
    r_old = run.finish(old)
    assert r_new.code == 0 and r_new.message["outcome"] == "succeeded", r_new.stderr
    assert r_old.code == 4, (r_old.code, r_old.stderr)
    # The old one's author code caught the FencedError and tried again: still fenced, nothing written.
    assert os.path.exists(f"{run.dir}/caught-{old.pid}")
    assert run.show()["result"] == {"a": 1, "b": 2}
    epochs = run.sql("SELECT DISTINCT epoch FROM flowrun.checkpoints WHERE run_uid = :'uid'")
    assert len(epochs.splitlines()) == 1
