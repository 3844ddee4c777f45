"""``@checkpoint``: run a function at most once per identity across all executions of a run.

Identity is ``(name, occurrence)`` — the name defaults to the function's
qualified name — taken by the C++ engine **when the checkpoint is called**, in
program order. For ``async def`` the identity is reserved by the synchronous
call that builds the coroutine, before any ``await``: ``asyncio.gather(*(search(q)
for q in qs))`` numbers the calls in list order whatever finishes first.
``key=`` (a callable of the arguments) makes the identity ``name[key]``, so a
fan-out's identities do not depend on order at all.

The fingerprint is the C++ ``CheckpointFingerprint`` of the function's
qualified name and the canonical JSON of its bound arguments (``self``/``cls``
skipped); ``inputs=None`` opts out (only the name counts, as a C++ checkpoint
without inputs), a callable projects the arguments and its JSON is the inputs
verbatim (exactly what ``CheckpointOptions::inputs`` is in C++). A
resumed run that reaches the checkpoint with another fingerprint stops with
the divergence exit code naming it (``on_divergence="rerun"`` recomputes).

Outputs are JSON typed by the return annotation (pydantic): the live call
returns the round-tripped value, exactly what a resumed run gets. The body
receives deep copies of its arguments, so mutating one is visible neither live
nor on resume. Retries: ``retries=N`` allows N more tries after the first, for
exceptions in ``retry_on`` and not in ``give_up_on``, with exponential backoff.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import time
import traceback
import typing
from typing import Any, Callable, Generator, Optional, TypeVar, overload

from . import _context, _json
from .errors import CheckpointFailed, FlowError, LlmError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

_INTERRUPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


class _Spec:
    """Everything a decorated function's calls share."""

    def __init__(self, fn: Callable[..., Any], *, name: Optional[str], retries: int, key: Optional[Callable[..., Any]],
                 inputs: Any, on_divergence: Optional[str], retry_on: tuple[type[BaseException], ...],
                 give_up_on: tuple[type[BaseException], ...], backoff: float, backoff_multiplier: float,
                 max_backoff: float) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if on_divergence not in (None, "fail", "rerun"):
            raise ValueError(f"on_divergence must be 'fail' or 'rerun', got {on_divergence!r}")
        if not (inputs is None or inputs == "args" or callable(inputs)):
            raise ValueError("inputs must be 'args' (default), None (opt out) or a callable projecting the arguments")
        self.fn = fn
        self.qualname = f"{fn.__module__}.{fn.__qualname__}"
        self._function_json = _json.adapter(Any).dump_json(self.qualname).decode()
        self.name = name or fn.__qualname__.replace("<locals>.", "")
        self.max_tries = retries + 1
        self.key = key
        self.inputs = inputs
        self.on_divergence = on_divergence
        self.retry_on = retry_on
        self.give_up_on = give_up_on
        self.backoff = backoff
        self.backoff_multiplier = backoff_multiplier
        self.max_backoff = max_backoff
        self.signature = inspect.signature(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._return: Any = None
        self._skip = self._self_like_parameter()
        # The fingerprint's hot path: a signature of plain parameters is bound by hand
        # (inspect's bind costs ~5 µs a call); anything else goes through bind().
        params = list(self.signature.parameters.values())
        self._plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._names = [p.name for p in params]
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._no_args = ('{"function":' + self._function_json + ',"args":{}}', "{}")
        _context.declare_checkpoint(self.name)

    def _self_like_parameter(self) -> Optional[str]:
        params = list(self.signature.parameters)
        if params and params[0] in ("self", "cls"):
            return params[0]
        return None

    @property
    def return_type(self) -> Any:
        if self._return is None:
            try:
                hints = typing.get_type_hints(self.fn)
            except Exception:
                hints = getattr(self.fn, "__annotations__", {})
            self._return = hints.get("return", inspect.Signature.empty)
        return self._return

    def identity_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Optional[str]:
        if self.key is None:
            return None
        k = self.key(*args, **kwargs)
        return k if isinstance(k, str) else _json.adapter(Any).dump_json(k).decode()

    def inputs_json(self, rt: "_context.Runtime", args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
        """(inputs, digest inputs): the fingerprint's inputs, and what the name-independent digest covers.

        The digest leaves the function's qualified name out (only the bound
        arguments), so a renamed function is recognised as a rename; None: the
        inputs themselves.
        """
        if self.inputs is None:
            return None, None
        if callable(self.inputs):
            projected, ok = _json.to_jsonable(self.inputs(*args, **kwargs))
            if not ok:
                raise UsageError(f"checkpoint '{self.name}': its inputs= projection returned a value JSON cannot carry")
            # Verbatim, as a C++ checkpoint's CheckpointOptions::inputs: the author chose what matters.
            return _json.adapter(Any).dump_json(projected).decode(), None
        arguments = self._bind(args, kwargs)
        if not arguments:
            return self._no_args
        parts = []
        for pname, value in arguments.items():
            if pname == self._skip:
                continue
            text, ok = _json.argument_json(value)
            if not ok:
                rt.warn_once(f"checkpoint '{self.name}': argument '{pname}' is not JSON; only its type ({text}) "
                             "is part of the fingerprint")
            parts.append(f'"{pname}":{text}')  # a parameter name is an identifier: nothing to escape
        args_json = "{" + ",".join(parts) + "}"
        # The engine canonicalizes (sorted keys): this is {"function": ..., "args": ...}.
        return '{"function":' + self._function_json + ',"args":' + args_json + '}', args_json

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The bound arguments with defaults applied (what ``signature.bind`` + ``apply_defaults`` give)."""
        names = self._names
        if self._plain and len(args) <= len(names):
            out = dict(zip(names, args))
            for k, v in kwargs.items():
                if k in out or k not in names:
                    break  # a duplicate or unknown keyword: bind() raises the right TypeError
                out[k] = v
            else:
                if len(out) == len(names):
                    return out
                for n in names:
                    if n not in out:
                        if n not in self._defaults:
                            break  # a missing argument: bind() raises
                        out[n] = self._defaults[n]
                else:
                    return {n: out[n] for n in names}  # parameter order, as bind() gives
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def retryable(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on) and not isinstance(error, self.give_up_on)

    def next_backoff(self, delay: float) -> float:
        return min(delay * self.backoff_multiplier, self.max_backoff)


def _label(key: Any) -> str:
    return f"'{key.name}'" + (f" (occurrence {key.occurrence})" if key.occurrence > 1 else "")


def _error_text(error: BaseException) -> str:
    """How a try's error is named in messages: ``Type: message``.

    A failure of the runtime's own LLM client (``flowrun.llm``) is the C++
    ``LlmError`` itself: it reads exactly as a C++ agent's (``UNAVAILABLE: ...``),
    so the two write the same failure rows and outcome.
    """
    if isinstance(error, LlmError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _failure_text(error: BaseException) -> str:
    if isinstance(error, LlmError):
        return str(error)[:4000]
    tail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:])
    return f"{_error_text(error)}\n{tail}"[:4000]


def _prepare(spec: _Spec, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple["_context.Runtime", Any, tuple[Optional[str], Optional[str]]]:
    rt = _context.runtime(f"checkpoint '{spec.name}'")
    outer = _context.current_checkpoint()
    if outer is not None:
        raise UsageError(f"checkpoint '{spec.name}' called inside checkpoint '{outer.name}': checkpoints do not nest")
    inputs = spec.inputs_json(rt, args, kwargs)
    key = rt.ex.reserve(spec.name, "step", spec.identity_key(args, kwargs))
    return rt, key, inputs


class _TryOutcome:
    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: Optional[BaseException] = None) -> None:
        self.value = value
        self.error = error


def _store(spec: _Spec, rt: "_context.Runtime", key: Any, try_number: int, out: _TryOutcome) -> tuple[bool, Any]:
    """After one try: (done, value). Raises CheckpointFailed after the final try."""
    if out.error is None:
        try:
            text = _json.dumps(out.value, spec.return_type, lambda: f"the output of checkpoint {_label(key)}")
            canonical = rt.ex.complete(key, text)
        except UsageError as e:  # not JSON, or over the output cap: no retry helps
            rt.ex.fail(key, try_number, True, str(e))
            raise CheckpointFailed(f"checkpoint {_label(key)} failed: {e}") from e
        return True, _json.loads(canonical, spec.return_type)
    final = try_number >= spec.max_tries or not spec.retryable(out.error)
    rt.ex.fail(key, try_number, final, _failure_text(out.error))
    if final:
        tries = f" after {try_number} tries" if try_number > 1 else ""
        raise CheckpointFailed(f"checkpoint {_label(key)} failed{tries}: {_error_text(out.error)}") from out.error
    rt.ex.warn(f"checkpoint {_label(key)} try {try_number} failed: {_error_text(out.error)}; retrying")
    return False, None


def _live(spec: _Spec, rt: "_context.Runtime", key: Any,
          inputs: tuple[Optional[str], Optional[str]]) -> Generator[tuple[str, Any], Any, Any]:
    """One checkpoint call, for the sync and the async driver alike.

    Yields ("body", try_number) when the body must run (the driver sends back
    its _TryOutcome) and ("sleep", seconds) between tries; returns the value.
    """
    cached = rt.ex.begin(key, inputs[0], spec.on_divergence, inputs[1])
    if cached is not None:
        return _json.loads(cached, spec.return_type)
    delay = spec.backoff
    for try_number in range(1, spec.max_tries + 1):
        rt.ex.try_started(key, try_number)
        rt.body_started()
        try:
            out = yield "body", try_number
            done, value = _store(spec, rt, key, try_number, out)
        finally:
            rt.body_finished()
        if done:
            return value
        yield "sleep", delay
        delay = spec.next_backoff(delay)
    raise AssertionError("unreachable")


_IMMUTABLE = frozenset((str, int, float, bool, type(None), bytes))


def _copies(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Deep copies of the arguments for the body (a mutation is visible neither live nor on resume).

    Arguments of exactly an immutable scalar type need no copy (the common case; deepcopy costs ~5 µs).
    """
    if all(type(a) in _IMMUTABLE for a in args) and all(type(v) in _IMMUTABLE for v in kwargs.values()):
        return args, dict(kwargs)
    return copy.deepcopy(args), copy.deepcopy(kwargs)


def _outcome_of(error: BaseException) -> _TryOutcome:
    """A body's exception as a try's outcome; the engine's errors and interruptions propagate.

    ``LlmError`` (``flowrun.llm`` got no response after its client's retries) is
    the body's failure, as in a C++ checkpoint: the try fails and ``retries`` apply.
    """
    if isinstance(error, LlmError):
        return _TryOutcome(error=error)
    if isinstance(error, (FlowError, *_INTERRUPTIONS)) or not isinstance(error, Exception):
        raise error  # sticky engine errors and interruptions are not the body's failures
    return _TryOutcome(error=error)


def _call_sync(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    rt, key, inputs = _prepare(spec, args, kwargs)
    steps = _live(spec, rt, key, inputs)
    reply: Any = None
    try:
        while True:
            what, arg = steps.send(reply)
            reply = None
            if what == "sleep":
                time.sleep(arg)
                continue
            token = _context.enter_checkpoint(key)
            try:
                a, kw = _copies(args, kwargs)
                reply = _TryOutcome(value=spec.fn(*a, **kw))
            except BaseException as e:
                reply = _outcome_of(e)
            finally:
                _context.leave_checkpoint(token)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()  # a propagating error: the try's bookkeeping (in-flight count) ends now


async def _run_async(spec: _Spec, rt: "_context.Runtime", key: Any, inputs: tuple[Optional[str], Optional[str]],
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    steps = _live(spec, rt, key, inputs)
    reply: Any = None
    try:
        while True:
            what, arg = steps.send(reply)
            reply = None
            if what == "sleep":
                await asyncio.sleep(arg)
                continue
            token = _context.enter_checkpoint(key)
            try:
                a, kw = _copies(args, kwargs)
                reply = _TryOutcome(value=await spec.fn(*a, **kw))
            except BaseException as e:
                reply = _outcome_of(e)
            finally:
                _context.leave_checkpoint(token)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()  # a propagating error: the try's bookkeeping (in-flight count) ends now


def _decorate(fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    spec = _Spec(fn, **options)
    if spec.is_async:
        @functools.wraps(fn)
        def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            # Synchronous on purpose: the identity is reserved here, at call time.
            rt, key, inputs = _prepare(spec, args, kwargs)
            return _run_async(spec, rt, key, inputs, args, kwargs)

        async_wrapper.__flowrun_checkpoint__ = spec  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _call_sync(spec, args, kwargs)

    wrapper.__flowrun_checkpoint__ = spec  # type: ignore[attr-defined]
    return wrapper


@overload
def checkpoint(fn: F) -> F: ...
@overload
def checkpoint(*, name: Optional[str] = None, retries: int = 0, key: Optional[Callable[..., Any]] = None,
               inputs: Any = "args", on_divergence: Optional[str] = None,
               retry_on: tuple[type[BaseException], ...] = (Exception,),
               give_up_on: tuple[type[BaseException], ...] = (), backoff: float = 1.0,
               backoff_multiplier: float = 2.0, max_backoff: float = 60.0) -> Callable[[F], F]: ...


def checkpoint(fn: Any = None, *, name: Optional[str] = None, retries: int = 0,
               key: Optional[Callable[..., Any]] = None, inputs: Any = "args", on_divergence: Optional[str] = None,
               retry_on: tuple[type[BaseException], ...] = (Exception,),
               give_up_on: tuple[type[BaseException], ...] = (), backoff: float = 1.0,
               backoff_multiplier: float = 2.0, max_backoff: float = 60.0) -> Any:
    """Decorates a ``def`` or ``async def`` as a checkpoint; usable bare or with options."""
    options = dict(name=name, retries=retries, key=key, inputs=inputs, on_divergence=on_divergence,
                   retry_on=tuple(retry_on), give_up_on=tuple(give_up_on), backoff=backoff,
                   backoff_multiplier=backoff_multiplier, max_backoff=max_backoff)
    if fn is not None:
        if not callable(fn):
            raise TypeError("@checkpoint takes keyword options only: @checkpoint(retries=3)")
        return _decorate(fn, **options)
    return lambda f: _decorate(f, **options)
