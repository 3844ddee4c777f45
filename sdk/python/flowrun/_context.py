"""The running execution and the checkpoint of the calling context.

One process runs one execution of one run (the C++ runtime ends the process
when it suspends), so the execution is held per process: ``activate`` installs
it for the duration of ``Flow.main`` and nothing else writes it. The checkpoint
whose body is running is a ``contextvars`` variable: asyncio tasks inherit it,
so concurrent bodies attribute their LLM calls to their own checkpoint.

``Runtime`` adds what is Python-specific around the C++ engine: it counts the
checkpoint bodies in flight (threads and asyncio tasks), and on a suspension
waits for them to finish and be stored, flushes Python's stdio and logging,
then lets C++ write the outcome and end the process (no ``finally`` block of
the author's runs afterwards).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
import threading
from typing import Any, Optional

from . import _core
from .errors import UsageError

_checkpoint: contextvars.ContextVar[Optional["_core.Key"]] = contextvars.ContextVar("flowrun_checkpoint", default=None)


def current_checkpoint() -> Optional["_core.Key"]:
    """The key of the checkpoint whose body runs in this context, or None."""
    return _checkpoint.get()


def enter_checkpoint(key: "_core.Key") -> contextvars.Token:
    return _checkpoint.set(key)


def leave_checkpoint(token: contextvars.Token) -> None:
    try:
        _checkpoint.reset(token)
    except ValueError:  # reset from another context (a body handed to a thread): just clear
        _checkpoint.set(None)


# Names of every @checkpoint decorated in this process: the engine never takes a
# declared name for the old name of a renamed checkpoint (checkpoint_renames.h).
_declared: set[str] = set()


def declare_checkpoint(name: str) -> None:
    """Records a decorated checkpoint's name (and tells the running execution, if any)."""
    _declared.add(name)
    if _runtime is not None:
        _runtime.ex.declare_checkpoint_names([name])


class Runtime:
    """One execution: the C++ engine plus the in-flight bookkeeping."""

    def __init__(self, execution: "_core.Execution") -> None:
        self.ex = execution
        execution.declare_checkpoint_names(sorted(_declared))
        self._lock = threading.Condition()
        self._in_flight = 0
        self._parked = 0  # bodies blocked in suspend() (a budget stop): finished as far as draining goes
        self._warned: set[str] = set()

    # --- in-flight bodies ---------------------------------------------------
    def body_started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def body_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.ex.warn(message)

    # --- suspension ---------------------------------------------------------
    def in_flight(self) -> int:
        """Bodies still running (not parked in a suspension)."""
        with self._lock:
            return self._in_flight - self._parked

    def suspend(self, suspension: "_core.Suspension", *, own: int = 0) -> None:
        """Ends the process suspended once the other bodies in flight are stored; never returns.

        `own` is 1 when the caller is itself a checkpoint body (a budget stop
        inside an LLM call): that body's open try is recorded as suspended by C++.
        """
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        with self._lock:
            # A body that stops here is parked: the others (which may stop here too) need not wait for it.
            self._parked += own
            self._lock.notify_all()
            if not on_loop:
                self._lock.wait_for(lambda: self._in_flight <= self._parked)
        # On the event loop's thread blocking would keep the other async bodies from finishing.
        # The awaited paths drain them before they get here (wait_async, before_llm_call_async:
        # async SDK clients, the LiteLLM async hook); only a *synchronous* stop on the loop's
        # thread (a sync client called inside an async body) ends them unfinished: their open
        # tries are recorded as suspended by C++ and run again on resume.
        _flush()
        code = self.ex.suspend(suspension)
        # Only reached when the engine's exit handler returned (it never does in production).
        _flush()
        os._exit(code)

    async def suspend_async(self, suspension: "_core.Suspension", *, own: int = 0) -> None:
        """Lets this execution's other checkpoint bodies (tasks and threads) finish, then suspends.

        `own` is 1 when the caller is itself an async checkpoint body (a budget
        stop inside it): it is parked while it awaits, so the others need not
        wait for it, and its open try is recorded as suspended by C++.
        """
        with self._lock:
            self._parked += own
            self._lock.notify_all()
        while self.in_flight() > 0:
            await asyncio.sleep(0.005)  # a condition check, not a timing assumption
        self.suspend(suspension)

    # --- LLM calls (the recorder and flowrun.llm use these) -----------------
    def before_llm_call(self, key: Optional["_core.Key"], model: str, estimated: int) -> int:
        started = self.ex.before_llm_call(key, model, estimated)
        if isinstance(started, int):
            return started
        # Budget exhausted: nothing was sent. This body is one of the in-flight ones.
        self.suspend(started, own=1 if key is not None else 0)
        raise AssertionError("unreachable")

    async def before_llm_call_async(self, key: Optional["_core.Key"], model: str, estimated: int) -> int:
        """``before_llm_call`` for a call awaited on the event loop (an async SDK client).

        On an exhausted budget this body parks and *awaits* until the other
        bodies in flight (async ones included: the loop keeps running them) have
        finished and been stored, then the execution suspends; blocking the
        loop's thread instead would end them unfinished.
        """
        started = self.ex.before_llm_call(key, model, estimated)
        if isinstance(started, int):
            return started
        await self.suspend_async(started, own=1 if key is not None else 0)
        raise AssertionError("unreachable")

    def finish_llm_call(self, call_id: int, **kw: Any) -> None:
        self.ex.finish_llm_call(call_id, **kw)

    def fail_llm_call(self, call_id: int, error: str) -> None:
        self.ex.fail_llm_call(call_id, error)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream must not prevent the outcome
            pass
    try:
        for h in list(logging.getLogger().handlers):
            h.flush()
        logging.shutdown()
    except Exception:
        pass


_runtime: Optional[Runtime] = None


def activate(rt: Runtime) -> None:
    global _runtime
    if _runtime is not None:
        raise UsageError("a flow is already running in this process: one execution per process")
    _runtime = rt


def runtime_or_none() -> Optional[Runtime]:
    return _runtime


def runtime(what: str) -> Runtime:
    if _runtime is None:
        raise UsageError(f"{what} needs a running flow: call it from a @flow run by .main() or `python -m flowrun run`")
    return _runtime
