"""flowrun: durable AI agents — ``@flow``, ``@checkpoint`` and ``wait()`` over the C++ runtime.

See docs/python.md. Everything that must behave the same for a C++ agent, a
Python agent and the controller (store, fencing, occurrences, fingerprints,
schema validation, prices, budgets, suspension, exit codes) is done by the C++
runtime through ``flowrun._core``; this package adds decorators, typing
(pydantic) and the Python-side scheduling of bodies.
"""

from __future__ import annotations

from .errors import (
    CheckpointFailed,
    ConfigError,
    DivergenceError,
    FencedError,
    FlowError,
    StoreError,
    UsageError,
    WaitTimedOut,
)

__all__ = [
    "CheckpointFailed",
    "ConfigError",
    "DivergenceError",
    "FencedError",
    "FlowError",
    "StoreError",
    "UsageError",
    "WaitTimedOut",
]
