"""``wait()``: a typed answer from a person, or the end of this execution until one arrives.

The answer's schema is ``flowrun._schema.answer_schema(T)``: pydantic's JSON
Schema, generated so that what a JSON Schema cannot carry (custom validators,
bounds on dates, non-string dict keys) raises ``UnsupportedAnswerSchema``, and
translated to the draft-7 schema the C++ validator reads. The C++ runtime
validates an answer when it is recorded (the controller, flowrunctl) and
``flowrun._schema.validate_answer(T, ...)`` (pydantic, strict JSON mode: the
mode the two validators' agreement is proven for) validates it again on
return, so the flow gets a ``T``. A ``schema=`` dict is stored as given; the
answer is then validated strictly as ``type`` (``Any`` without one).
An unanswered wait records the question (with its deadline and timeout
policy), waits for this execution's in-flight checkpoints to finish and be
stored, flushes stdio and logging, and the C++ runtime writes the
"waiting" outcome and ends the process with exit code 0 — inside ``wait()``:
no code after it runs, ``finally`` blocks included.

``timeout`` is a real deadline (a ``timedelta`` or seconds), not a polling
window: when it passes, ``on_timeout="default"`` answers ``default`` and
``on_timeout="fail"`` fails the run (``WaitTimedOut``), even if no process is
running at that moment (the controller enforces it).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
from typing import Any, Optional, TypeVar, Union

from . import _context, _json
from ._schema import answer_schema, validate_answer
from .errors import UsageError, WaitTimedOut

T = TypeVar("T")
_MISSING: Any = object()
_DRAFT_7 = "http://json-schema.org/draft-07/schema#"


def _schema_of(tp: Any, schema: Any) -> tuple[Any, str]:
    """(the answer's Python type, the JSON Schema text the C++ validator gets)."""
    if isinstance(schema, dict):
        return (tp if tp is not None else Any), json.dumps(schema)
    answer_type = tp if tp is not None else (schema if schema is not None else Any)
    translated = answer_schema(answer_type)
    if translated.get("$schema") == _DRAFT_7:
        # Draft 7 is what the C++ validator assumes: without the marker, a Python wait's stored
        # schema (and so its fingerprint) is the one a C++ agent's wait<T> records.
        translated = {k: v for k, v in translated.items() if k != "$schema"}
    return answer_type, json.dumps(translated)


def _seconds(timeout: Union[None, float, int, _dt.timedelta]) -> Optional[float]:
    if timeout is None:
        return None
    s = timeout.total_seconds() if isinstance(timeout, _dt.timedelta) else float(timeout)
    if s <= 0:
        raise ValueError("timeout must be positive")
    return s


def _resolve(tp: Any, name: str, question: str, schema: Any, timeout: Any, on_timeout: Optional[str],
             default: Any, on_divergence: Optional[str]) -> tuple["_context.Runtime", Any, Any]:
    rt = _context.runtime(f"wait '{name}'")
    outer = _context.current_checkpoint()
    if outer is not None:
        raise UsageError(f"wait '{name}' called inside checkpoint '{outer.name}': a wait cannot be part of a checkpoint")
    if on_timeout not in (None, "fail", "default"):
        raise ValueError(f"on_timeout must be 'fail' or 'default', got {on_timeout!r}")
    answer_type, schema_json = _schema_of(tp, schema)
    default_json = None if default is _MISSING else _json.dumps(default, answer_type, f"the default of wait '{name}'")
    if on_timeout == "default" and default_json is None:
        raise UsageError(f"wait '{name}' uses on_timeout='default' but has no default=")
    key = rt.ex.reserve(name, "wait")
    kind, payload = rt.ex.resolve_wait(key, question, schema_json, _seconds(timeout), on_timeout, default_json,
                                       on_divergence)
    return rt, answer_type, (kind, payload)


def _answer(answer_type: Any, kind: str, payload: Any) -> Any:
    if kind == "answered":
        return validate_answer(answer_type, payload)
    raise WaitTimedOut(payload)


def wait(type: Any = None, *, name: str = "wait", question: str = "", schema: Any = None,
         timeout: Union[None, float, int, _dt.timedelta] = None, on_timeout: Optional[str] = None,
         default: Any = _MISSING, on_divergence: Optional[str] = None) -> Any:
    """Returns the answer to `question` as a `type` (bool, int, a pydantic model, ...), or suspends.

    `schema` may be given instead of `type` (a type, or a JSON Schema dict).
    In an ``async def`` flow use ``await wait_async(...)``: it lets in-flight
    asyncio checkpoints finish before the process ends.
    """
    rt, answer_type, (kind, payload) = _resolve(type, name, question, schema, timeout, on_timeout, default,
                                                on_divergence)
    if kind == "pending":
        rt.suspend(payload)
    return _answer(answer_type, kind, payload)


async def wait_async(type: Any = None, *, name: str = "wait", question: str = "", schema: Any = None,
                     timeout: Union[None, float, int, _dt.timedelta] = None, on_timeout: Optional[str] = None,
                     default: Any = _MISSING, on_divergence: Optional[str] = None) -> Any:
    """``wait`` for ``async def`` flows."""
    rt, answer_type, (kind, payload) = _resolve(type, name, question, schema, timeout, on_timeout, default,
                                                on_divergence)
    if kind == "pending":
        await rt.suspend_async(payload)
    return _answer(answer_type, kind, payload)
