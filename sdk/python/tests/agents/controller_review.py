"""Flows run by the controller on the real control plane (tests/e2e/test_controller.py).

`review`: a checkpoint that calls the LLM (the fake server counts its prompt: a
resumed Job must take it from PostgreSQL), a yes/no wait, then a wait typed by
a pydantic model whose schema the controller validates answers against.

`sign_off`: one wait with a deadline and `on_timeout="default"`: nobody
answers, the controller resumes the run at the deadline and the wait returns
its default.

Both return what the waits gave them, so status.result shows the typed values.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Annotated

from basic import research  # the checkpoint that asks the LLM "Research <topic>"
from flowrun import flow, wait


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the schema says additionalProperties: false
    approved: bool
    reviewer: Annotated[str, Field(min_length=1)]
    budget: Annotated[float, Field(ge=0)]


@flow
def review(topic: str) -> dict:
    plan = research(topic)
    if not wait(bool, name="proceed", question=f"The plan for {topic} is drafted. Ask for approval?"):
        return {"status": "stopped"}
    a = wait(Approval, name="approval", question="Approve the plan, name the reviewer and a budget (USD)")
    assert isinstance(a, Approval)
    return {"status": "approved" if a.approved else "rejected", "reviewer": a.reviewer, "budget": a.budget,
            "plan_chars": len(plan)}


SIGN_OFF_TIMEOUT_SECONDS = 15
NOBODY = Approval(approved=False, reviewer="nobody", budget=0)


@flow
def sign_off() -> dict:
    a = wait(Approval, name="sign-off", question="Sign off within 15 s, or the default applies",
             timeout=SIGN_OFF_TIMEOUT_SECONDS, on_timeout="default", default=NOBODY)
    assert isinstance(a, Approval)
    return {"approved": a.approved, "reviewer": a.reviewer, "budget": a.budget}
