"""Typed waits end to end: the schema the runtime stores is the translated one, and the C++ validator
(`flowrunctl answer`, as the controller does it) refuses exactly the answers the flow's pydantic would."""

from __future__ import annotations

import copy
from typing import Any

from support.agent import Run

GOOD: dict[str, Any] = {"approved": True, "color": "blue", "score": 0.5,
                        "reviewers": [{"name": "ada", "level": 2}], "window": [1, 5],
                        "due": "2028-02-29T12:00:00+01:00"}


def variant(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(GOOD)
    out.update(changes)
    return out


def test_the_cpp_validator_refuses_what_pydantic_refuses_and_the_flow_gets_the_typed_value(make_run) -> None:
    run: Run = make_run("schema_waits:decide")
    r = run.execute()
    assert r.code == 0 and r.message["outcome"] == "waiting", r.stderr
    schema = r.message["wait"]["schema"]
    assert "definitions" in schema and "$defs" not in str(schema) and "prefixItems" not in str(schema)

    refused = {
        "score above its bound": variant(score=1.5),
        "no reviewer": variant(reviewers=[]),
        "unknown level": variant(reviewers=[{"name": "ada", "level": 3}]),
        "empty name": variant(reviewers=[{"name": "", "level": 1}]),
        "unknown color": variant(color="green"),
        "tuple too long": variant(window=[1, 2, 3]),
        "Feb 29 of a common year": variant(due="2027-02-29T12:00:00Z"),
        "second 60": variant(due="2028-01-01T12:00:60Z"),
        "a literal not listed": variant(kind="final!"),
        "missing required field": {k: v for k, v in GOOD.items() if k != "due"},
    }
    for why, answer in refused.items():
        res = run.answer("decision", answer)
        assert res.returncode != 0, f"{why}: accepted {answer}"
    ok = run.answer("decision", variant(reviewers=[{"name": "ada", "level": 2.0}]))  # 2.0 is Level.HIGH to pydantic
    assert ok.returncode == 0, ok.stderr
    r2 = run.execute()
    assert r2.code == 0 and r2.message["outcome"] == "succeeded", r2.stderr
    assert run.show()["result"] == {"approved": True, "level": 2, "due": "2028-02-29T12:00:00+01:00",
                                    "window": [1, 5], "color": "blue"}
