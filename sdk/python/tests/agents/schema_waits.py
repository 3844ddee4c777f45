"""A wait whose answer is a pydantic model using every construct the schema translation handles.

(test_schema_e2e.py: the C++ validator, through `flowrunctl answer`, and the
flow's pydantic agree on which answers are good.)
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Literal, Optional, Tuple

from pydantic import BaseModel, Field
from typing_extensions import Annotated

from flowrun import flow, wait


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Reviewer(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=20)]
    level: Level


class Decision(BaseModel):
    approved: bool
    color: Color = Color.RED
    score: Annotated[float, Field(ge=0, le=1)]
    reviewers: Annotated[list[Reviewer], Field(min_length=1)]
    window: Tuple[int, int]
    due: dt.datetime
    kind: Literal["final", "draft"] = "final"
    note: Optional[str] = None


@flow
def decide() -> dict:
    d = wait(Decision, name="decision", question="Decide?")
    assert isinstance(d, Decision) and isinstance(d.reviewers[0].level, Level) and isinstance(d.due, dt.datetime)
    return {"approved": d.approved, "level": int(d.reviewers[0].level), "due": d.due.isoformat(),
            "window": list(d.window), "color": d.color.value}
