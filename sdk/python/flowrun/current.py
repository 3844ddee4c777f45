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
    # A replay of another run (docs/replay.md): checkpoints before the cut may
    # come from the source, counted in stats["copied_checkpoints"].
    is_replay: bool = False


def current() -> RunInfo:
    """The running execution's identity, attempt and spend (inside a flow only)."""
    ex = _context.runtime("flowrun.current()").ex
    return RunInfo(uid=ex.run_uid, name=ex.run_name, namespace=ex.run_namespace, flow=ex.flow,
                   attempt=ex.attempt, epoch=ex.epoch, parameters=json.loads(ex.parameters_json),
                   spent_usd=ex.run_spent_usd(), stats=ex.stats(), is_replay=ex.is_replay)


def is_replay() -> bool:
    """True when this run replays another run from a cut (inside a flow only).

    Before the cut, a checkpoint the source completed with the same inputs
    returns the source's output without running its body, exactly like a
    cached checkpoint; from the cut on everything runs live.
    """
    return bool(_context.runtime("flowrun.is_replay()").ex.is_replay)
