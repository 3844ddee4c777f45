"""The errors flowrun raises into a flow's code.

``FencedError``, ``DivergenceError`` and ``StoreError`` are *sticky*: the C++
engine remembers the first one, refuses every later write and reports the
outcome it implies when the execution ends, so an author's ``except
Exception:`` cannot turn a fenced or diverged execution back into a writer.
"""

from __future__ import annotations


class FlowError(Exception):
    """Base of every error flowrun raises into agent code."""


class CheckpointFailed(FlowError):
    """A checkpoint's body failed on its last try (``__cause__`` is the body's error)."""


class DivergenceError(FlowError):
    """A resumed run reached a checkpoint whose recorded fingerprint differs (exit 5). Sticky."""


class FencedError(FlowError):
    """A newer execution of this run took the fence; this one must stop (exit 4). Sticky."""


class StoreError(FlowError):
    """PostgreSQL failed after retries, or a write's outcome is unknown (exit 3). Sticky."""


class WaitTimedOut(FlowError):
    """A wait's deadline passed and its policy is ``on_timeout="fail"`` (exit 1)."""


class ConfigError(FlowError):
    """Bad configuration: a missing or unknown flow parameter, a bad environment (exit 2)."""


class UsageError(FlowError):
    """The SDK was used wrongly (a checkpoint inside a checkpoint, a value JSON cannot carry, ...)."""


# The engine's status codes (flowrun/status.h names) mapped to the errors above;
# the binding (sdk/python/src) raises through this table.
_BY_CODE = {
    "ABORTED": FencedError,
    "DATA_LOSS": DivergenceError,
    "UNAVAILABLE": StoreError,
    "UNKNOWN": StoreError,
    "INTERNAL": StoreError,
    "FAILED_PRECONDITION": StoreError,
    "INVALID_ARGUMENT": UsageError,
    "RESOURCE_EXHAUSTED": UsageError,
}


def _from_status(code: str, message: str) -> FlowError:
    return _BY_CODE.get(code, FlowError)(message)


class LlmError(FlowError):
    """The runtime's own LLM client (``flowrun.llm``) failed finally (after its retries)."""
