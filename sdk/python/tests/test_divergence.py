"""A resumed run whose code, arguments or fan-out order changed stops with the divergence exit code."""

from __future__ import annotations

from support.agent import Run


def _waiting(run: Run, **env: str) -> None:
    r = run.execute(**env)
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr


def test_changed_arguments_and_renamed_function_diverge_naming_the_checkpoint(make_run) -> None:
    run: Run = make_run("basic:shaped")
    _waiting(run, AGENT_VARIANT="a")
    before = run.sql("SELECT output FROM flowrun.checkpoints WHERE run_uid = :'uid' AND name = 'first'")
    assert run.answer("go", True).returncode == 0
    for variant in ("args", "renamed"):
        r = run.execute(AGENT_VARIANT=variant)
        assert r.code == 5 and r.message["outcome"] == "divergence", (variant, r.stderr)
        assert "'first'" in r.message["error"], r.message
    # Nothing was overwritten, and the original code still resumes.
    assert run.sql("SELECT output FROM flowrun.checkpoints WHERE run_uid = :'uid' AND name = 'first'") == before
    r = run.execute(AGENT_VARIANT="a")
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert run.show()["result"] == {"a": 2, "b": 3}


def test_a_renamed_checkpoint_diverges_naming_both_and_overwrites_nothing(make_run) -> None:
    run: Run = make_run("basic:shaped")
    _waiting(run)
    assert run.answer("go", True).returncode == 0
    before = run.sql("SELECT name, output FROM flowrun.checkpoints WHERE run_uid = :'uid' ORDER BY name")
    run.target = "renamed:shaped"  # the code now calls first(1) doubled(1)
    r = run.execute()
    assert r.code == 5 and r.message["outcome"] == "divergence", r.stderr
    assert "was checkpoint 'first' renamed to 'doubled'?" in r.message["error"], r.message
    assert run.sql("SELECT name, output FROM flowrun.checkpoints WHERE run_uid = :'uid' ORDER BY name") == before
    # Rerun declares it new: it runs live beside the old row.
    r = run.execute(FLOWRUN_ON_DIVERGENCE="rerun")
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert {c[0] for c in run.checkpoints() if c[2] == "step"} == {"first", "doubled", "second"}
    assert run.show()["result"] == {"a": 2, "b": 3}


def test_a_new_checkpoint_with_the_same_arguments_is_not_a_rename(make_run) -> None:
    run: Run = make_run("basic:shaped")
    _waiting(run)
    assert run.answer("go", True).returncode == 0
    # prepare(1) is asked where first(1) was, with first's arguments; first is still in the code.
    r = run.execute(AGENT_VARIANT="inserted")
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert r.message["checkpoints"]["cached"] >= 2, r.message  # first and second
    assert "prepare" in {c[0] for c in run.checkpoints()}
    assert "renamed" not in r.stderr, r.stderr
    assert run.show()["result"] == {"a": 2, "b": 3}


def test_reordered_fan_out_diverges_but_keyed_fan_out_survives(make_run) -> None:
    plain: Run = make_run("basic:fan", parameters={"keyed": False})
    _waiting(plain, AGENT_ORDER="a,b,c")
    assert plain.answer("go", True).returncode == 0
    r = plain.execute(AGENT_ORDER="c,b,a")
    assert r.code == 5 and "'fetch'" in r.message["error"], r.stderr

    keyed: Run = make_run("basic:fan", parameters={"keyed": True})
    _waiting(keyed, AGENT_ORDER="a,b,c")
    names = {c[0] for c in keyed.checkpoints() if c[2] == "step"}
    assert names == {"fetch_keyed[a]", "fetch_keyed[b]", "fetch_keyed[c]"}
    assert keyed.answer("go", True).returncode == 0
    r = keyed.execute(AGENT_ORDER="c,b,a")
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert r.message["checkpoints"]["cached"] >= 3


def test_on_divergence_rerun_recomputes(make_run) -> None:
    run: Run = make_run("basic:rerunnable")
    _waiting(run, AGENT_ARG="1")
    assert run.answer("go", True).returncode == 0
    r = run.execute(AGENT_ARG="2")
    assert r.code == 0 and r.message["outcome"] == "succeeded", r.stderr
    assert run.show()["result"] == {"a": 20}
