"""flowrun: durable AI agents — ``@flow``, ``@checkpoint`` and ``wait()`` over the C++ runtime.

See docs/python.md. Everything that must behave the same for a C++ agent, a
Python agent and the controller (store, fencing, occurrences, fingerprints,
schema validation, prices, budgets, suspension, exit codes) is done by the C++
runtime through ``flowrun._core``; this package adds decorators, typing
(pydantic) and the Python-side scheduling of bodies.
"""

from __future__ import annotations

from typing import Any

from .artifacts import save_artifact
from .checkpoint import checkpoint
from .current import RunInfo, current, is_replay
from .errors import (
    CheckpointFailed,
    ConfigError,
    DivergenceError,
    FencedError,
    FlowError,
    LlmError,
    StoreError,
    UsageError,
    WaitTimedOut,
)
from .flow import Flow, flow
from .llm import llm, llm_async, record_llm_call
from .wait import wait, wait_async

__all__ = [
    "CheckpointFailed", "ConfigError", "DivergenceError", "FencedError", "Flow", "FlowError", "LlmError",
    "RunInfo", "StoreError", "UsageError", "WaitTimedOut", "checkpoint", "current", "flow", "instrument",
    "is_replay", "llm", "llm_async", "record_llm_call", "save_artifact", "wait", "wait_async",
]


def __getattr__(name: str) -> Any:
    # instrument() lives in flowrun/instrument.py (usage capture for the openai and
    # anthropic SDKs); imported on first use so `import flowrun` needs neither SDK.
    if name == "instrument":
        from .instrument import instrument

        return instrument
    raise AttributeError(f"module 'flowrun' has no attribute {name!r}")
