"""Replay from Python (issue 14): a run prepared as a replay of another serves the
source's checkpoints before the cut without running their bodies, as typed as
cached ones, and says so through flowrun.is_replay() and flowrun.current()."""

from __future__ import annotations

from support.agent import Run


def live_prompts(fake_llm, run: Run) -> list[str]:
    return sorted(p for p in fake_llm.stats()["by_prompt"] if p.startswith(run.uid + " "))


def test_a_python_replay_copies_the_prefix_and_runs_the_rest_live(make_run, fake_llm) -> None:
    src: Run = make_run("replay_agent:steps", parameters={"n": 6})
    r = src.execute()
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    source = src.show()["result"]
    assert source["is_replay"] is False and source["current_is_replay"] is False and source["copied"] == 0
    assert "copied" not in r.message["checkpoints"]
    assert len(live_prompts(fake_llm, src)) == 6

    rep: Run = make_run("replay_agent:steps", parameters={"n": 6})
    prepared = rep.ctl("replay", rep.uid, "--from", src.uid, "--cut", "step#4", "--source-name", "the-source")
    assert prepared.returncode == 0, prepared.stderr
    r2 = rep.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert r2.message["checkpoints"] == {"live": 3, "cached": 0, "copied": 3}
    result = rep.show()["result"]
    assert result["is_replay"] is True and result["current_is_replay"] is True and result["copied"] == 3
    assert result["texts"][:3] == source["texts"][:3]
    # Only occurrences 4..6 of step ran their bodies (and called the LLM).
    assert live_prompts(fake_llm, rep) == [f"{rep.uid} step {i}" for i in (4, 5, 6)]
    shown = rep.show()
    assert shown["replay"]["copiedCheckpoints"] == 3 and shown["replay"]["cutReached"] is True
    assert shown["replay"]["inherited"]["llmCalls"] == 3 and shown["spent"]["llmCalls"] == 3
    copied = rep.sql("SELECT occurrence FROM flowrun.checkpoints WHERE run_uid = :'uid' AND copied ORDER BY 1")
    assert copied.split() == ["1", "2", "3"]

    # A second execution serves every row from the replay's own rows, as cached.
    r3 = rep.execute()
    assert r3.code == 0 and r3.message["checkpoints"] == {"live": 0, "cached": 6}, r3.stderr
    assert rep.show()["replay"]["inherited"]["llmCalls"] == 3  # not counted again
