"""``@flow``: the function one execution of a run runs from the top.

``research_agent.main()`` (or ``python -m flowrun run module:function``) is the
whole life of an agent process, with the exit codes of a C++ agent
(runtime-lib/include/flowrun/outcome.h): the parameters of the FlowRun
(``FLOWRUN_PARAMETERS``) are bound to the function's signature and validated by
its annotations once the C++ engine has opened the execution (environment,
price table, PostgreSQL, the fence) — a missing, unknown or invalid one ends it
as a configuration error (exit 2) naming it; the function runs (``async def`` under ``asyncio.run``);
its result (JSON typed by the return annotation) or its error ends the
execution. A suspension ends the process inside ``wait()`` or an LLM call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import traceback
import typing
from typing import Any, Callable, NoReturn

import pydantic

from . import _context, _core, _json
from .errors import FlowError, LlmError, UsageError, WaitTimedOut


class Flow:
    """A decorated flow function; call ``.main()`` to run it as the agent process."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def _hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.fn)
        except Exception:
            return dict(getattr(self.fn, "__annotations__", {}))

    def bind_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for the flow; ConfigError naming a missing, unknown or invalid parameter."""
        from .errors import ConfigError

        hints = self._hints()
        params = self.signature.parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(k for k in parameters if k not in named)
        if unknown and not var_kw:
            raise ConfigError(f"unknown flow parameter(s) {', '.join(map(repr, unknown))}: flow "
                              f"'{self.fn.__qualname__}' takes {', '.join(map(repr, named)) or 'none'}")
        missing = [n for n, p in named.items() if p.default is p.empty and n not in parameters]
        if missing:
            raise ConfigError(f"missing flow parameter(s) {', '.join(map(repr, missing))} "
                              f"(spec.parameters / FLOWRUN_PARAMETERS) of flow '{self.fn.__qualname__}'")
        bound: dict[str, Any] = {}
        for k, v in parameters.items():
            tp = hints.get(k)
            if tp is None:
                bound[k] = v
                continue
            try:
                bound[k] = _json.adapter(tp).validate_python(v)
            except pydantic.ValidationError as e:
                raise ConfigError(f"flow parameter '{k}' is invalid: {e.errors()[0].get('msg', e)} "
                                  f"(got {json.dumps(v)[:200]})") from None
        return bound

    def run_process(self) -> int:
        """Runs one execution; returns the process exit code (the outcome is already reported)."""
        from .errors import ConfigError

        execution, code = _core.Execution.open_from_process()
        if execution is None:
            return code  # bad environment, database unavailable, cancelled: already reported
        try:
            kwargs = self.bind_parameters(json.loads(execution.parameters_json))
        except ConfigError as e:
            # Recorded like any outcome (the attempt's row and the termination message): exit 2.
            return execution.finish_with_error("config_error", str(e))
        rt = _context.Runtime(execution)
        _context.activate(rt)
        return_type = self._hints().get("return", inspect.Signature.empty)
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = asyncio.run(self.fn(**kwargs))
            else:
                result = self.fn(**kwargs)
        except WaitTimedOut as e:
            return _finish_error(execution, "wait_timed_out", e)
        except Exception as e:  # FlowError included: a sticky error overrides the reason in C++
            return _finish_error(execution, "flow_failed", e)
        try:
            text = _json.dumps(result, return_type, f"the result of flow '{self.fn.__qualname__}'")
        except UsageError as e:
            return _finish_error(execution, "flow_failed", e)
        _context._flush()
        return execution.finish(text)

    def main(self) -> NoReturn:
        """Runs the flow as this process's execution and exits with its code."""
        code = self.run_process()
        _context._flush()
        sys.exit(code)


def _finish_error(execution: Any, reason: str, error: BaseException) -> int:
    if not isinstance(error, FlowError) or error.__cause__ is not None:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if isinstance(error, LlmError):  # flowrun.llm at flow scope: worded as C++ run_flow words it
        message = f"the flow threw: {error}"
    elif isinstance(error, FlowError):
        message = str(error)
    else:
        message = f"the flow raised {type(error).__name__}: {error}"
    _context._flush()
    return execution.finish_with_error(reason, message)


def flow(fn: Callable[..., Any]) -> Flow:
    """Decorates the flow function (``def`` or ``async def``)."""
    if isinstance(fn, Flow):
        return fn
    return Flow(fn)
