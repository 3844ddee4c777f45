"""``flowrun.current()``: who this execution is and what it has spent."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import _context


@dataclass(frozen=True)
class RunInfo:
    uid: str
    name: str
    namespace: str
    flow: str
    attempt: int
    epoch: int
    parameters: dict[str, Any]
    spent_usd: float  # the whole run so far, earlier executions included
    stats: dict[str, Any] = field(default_factory=dict)  # this execution's counters and spend


def current() -> RunInfo:
    """The running execution's identity, attempt and spend (inside a flow only)."""
    ex = _context.runtime("flowrun.current()").ex
    return RunInfo(uid=ex.run_uid, name=ex.run_name, namespace=ex.run_namespace, flow=ex.flow,
                   attempt=ex.attempt, epoch=ex.epoch, parameters=json.loads(ex.parameters_json),
                   spent_usd=ex.run_spent_usd(), stats=ex.stats())
