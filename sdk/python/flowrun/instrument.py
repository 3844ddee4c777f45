"""``flowrun.instrument(client)``: LLM usage capture for the real ``openai`` and ``anthropic`` SDKs.

    client = flowrun.instrument(OpenAI())        # or AsyncOpenAI, Anthropic, AsyncAnthropic

Contract (docs/python-llm-usage.md):

* The client is patched **in place at the SDK-method level** and returned; no
  HTTP transport is touched (openai 3 moved to httpx2, transports come and go).
  Wrapped: openai ``chat.completions.create/parse`` (and so ``.stream()``),
  ``responses.create/parse`` (and so ``.stream()``), ``embeddings.create``;
  anthropic ``messages.create/parse/stream``; ``with_raw_response`` and
  ``with_streaming_response`` of those; ``copy()``/``with_options()`` return
  instrumented copies. Instrumenting twice is a no-op.
* Outside a running flow (``_recorder.llm_recorder()`` is None) every call is a
  pure pass-through: arguments untouched, nothing recorded.
* Inside a flow, per call: ``before_call(model, estimated_input_tokens)`` runs
  *before* the HTTP request (budget check: an exhausted budget ends the process
  there, so the request is never sent — for an async client the check is
  awaited, so the other checkpoint bodies in flight finish and are stored
  first); the estimate is the prompt's text
  characters / 4 (cheap, only for the started-call row). Then the SDK's own
  method runs and ``after_call`` records the tokens the provider reported.
  Streaming chat calls get ``stream_options.include_usage = true`` unless the
  caller set ``include_usage`` explicitly.
* What the caller gets is the SDK's own object (``ChatCompletion``, ``Stream``,
  ``MessageStreamManager``, raw responses, ...). A stream is observed by
  replacing its internal iterator: it is recorded when it ends. A stream that
  ends without its final usage event (connection cut, ``close()`` or ``break``
  before the end, garbage collection) is recorded ``complete=False`` with the
  tokens that are unknown left ``None`` — never zero.
* An exception from the SDK call itself (HTTP error, timeout, connection
  failure: no response) finishes the started call as *failed* with the error
  (``call_failed``, the engine's ``FailLlmCall``: outside the usage totals) and
  is re-raised unchanged. A ``BaseException`` that is no ``Exception``
  (cancellation, ``KeyboardInterrupt``) may have cut a request the provider
  billed: recorded ``complete=False`` with unknown tokens, and re-raised.
  (A stream cut after it started is recorded ``complete=False``, see above.)
* Raw responses (``with_raw_response``/``with_streaming_response``) are recorded
  when their ``parse()`` is first called; one whose body is never parsed stays
  recorded as started with unknown cost.

``LiteLLMCallback`` is a LiteLLM ``CustomLogger``-shaped callback that records
LiteLLM's ``response_cost`` as a reported cost (duck-typed: litellm is not a
dependency).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import types
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from . import _recorder

__all__ = ["instrument", "LiteLLMCallback", "estimate_input_tokens"]

_MARK = "_flowrun_instrumented"


# --- prompt size estimate -------------------------------------------------------

def _text_chars(value: Any) -> int:
    """Characters of all strings inside a request value (messages, input, system, tools)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in ("type", "role", "cache_control"))
    if isinstance(value, (list, tuple)):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate_input_tokens(*parts: Any) -> int:
    """The cheap pre-request estimate: text characters / 4 (at least 1)."""
    return max(1, sum(_text_chars(p) for p in parts) // 4)


def _given(kwargs: dict[str, Any], name: str) -> Any:
    """kwargs[name] unless absent or the SDK's omit/NOT_GIVEN sentinel."""
    value = kwargs.get(name)
    if value is None or type(value).__name__ in ("Omit", "NotGiven"):
        return None
    return value


# --- usage read from responses and stream events ---------------------------------

class _Usage:
    """Tokens of one call as reported; None = unknown."""

    __slots__ = ("input", "output", "cached", "model", "final")

    def __init__(self) -> None:
        self.input: int | None = None
        self.output: int | None = None
        self.cached: int | None = None
        self.model: str | None = None
        self.final = False  # the provider's end-of-answer usage was seen


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _openai_usage(u: _Usage, usage: Any, prefix: str, output_field: str) -> None:
    """OpenAI usage: <prefix>_tokens, <output_field>, <prefix>_tokens_details.cached_tokens (absent → 0)."""
    if usage is None:
        return
    u.input = _int(getattr(usage, f"{prefix}_tokens", None))
    u.output = _int(getattr(usage, output_field, None))
    details = getattr(usage, f"{prefix}_tokens_details", None)
    cached = _int(getattr(details, "cached_tokens", None)) if details is not None else None
    u.cached = cached if cached is not None else (0 if u.input is not None else None)
    u.final = u.input is not None and u.output is not None


def _openai_chat_usage(u: _Usage, usage: Any) -> None:
    _openai_usage(u, usage, "prompt", "completion_tokens")


def _openai_responses_usage(u: _Usage, usage: Any) -> None:
    _openai_usage(u, usage, "input", "output_tokens")


def _anthropic_usage(u: _Usage, usage: Any, final: bool) -> None:
    """Anthropic: input = input_tokens + cache_read + cache_creation; cached = cache_read.

    message_start carries the input side (and a provisional output count),
    message_delta the cumulative output (and, in newer APIs, input fields that
    may be null): a field that is None keeps what was seen before.
    """
    if usage is None:
        return
    plain = _int(getattr(usage, "input_tokens", None))
    read = _int(getattr(usage, "cache_read_input_tokens", None))
    creation = _int(getattr(usage, "cache_creation_input_tokens", None))
    if plain is not None:
        u.input = plain + (read or 0) + (creation or 0)
        u.cached = read or 0
    output = _int(getattr(usage, "output_tokens", None))
    if output is not None:
        u.output = output
    if final:
        u.final = u.input is not None and u.output is not None


def _model_of(obj: Any) -> str | None:
    model = getattr(obj, "model", None)
    return model if isinstance(model, str) and model else None


class _Api:
    """How one SDK method's requests and answers read."""

    def __init__(self, name: str, prompt_keys: tuple[str, ...],
                 read_response: Callable[[_Usage, Any], None],
                 read_event: Callable[[_Usage, Any], None] | None = None,
                 add_include_usage: bool = False) -> None:
        self.name = name
        self.prompt_keys = prompt_keys
        self.read_response = read_response
        self.read_event = read_event
        self.add_include_usage = add_include_usage

    def prepare(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.add_include_usage and kwargs.get("stream") is True:
            options = _given(kwargs, "stream_options")
            if options is None:
                kwargs = dict(kwargs, stream_options={"include_usage": True})
            elif isinstance(options, dict) and "include_usage" not in options:
                kwargs = dict(kwargs, stream_options=dict(options, include_usage=True))
        return kwargs

    def estimate(self, kwargs: dict[str, Any]) -> int:
        return estimate_input_tokens(*(_given(kwargs, k) for k in self.prompt_keys))


def _chat_response(u: _Usage, r: Any) -> None:
    u.model = _model_of(r)
    _openai_chat_usage(u, getattr(r, "usage", None))


def _chat_event(u: _Usage, chunk: Any) -> None:
    u.model = _model_of(chunk) or u.model
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        _openai_chat_usage(u, usage)


def _responses_response(u: _Usage, r: Any) -> None:
    u.model = _model_of(r)
    _openai_responses_usage(u, getattr(r, "usage", None))


_RESPONSES_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _responses_event(u: _Usage, event: Any) -> None:
    response = getattr(event, "response", None)
    if response is not None:
        u.model = _model_of(response) or u.model
    if getattr(event, "type", None) in _RESPONSES_TERMINAL and response is not None:
        _openai_responses_usage(u, getattr(response, "usage", None))


def _embeddings_response(u: _Usage, r: Any) -> None:
    u.model = _model_of(r)
    usage = getattr(r, "usage", None)
    if usage is None:
        return
    u.input = _int(getattr(usage, "prompt_tokens", None))
    u.output = 0 if u.input is not None else None  # embeddings produce no output tokens
    u.cached = 0 if u.input is not None else None
    u.final = u.input is not None


def _messages_response(u: _Usage, r: Any) -> None:
    u.model = _model_of(r)
    _anthropic_usage(u, getattr(r, "usage", None), final=True)


def _messages_event(u: _Usage, event: Any) -> None:
    kind = getattr(event, "type", None)
    if kind == "message_start":
        message = getattr(event, "message", None)
        u.model = _model_of(message) or u.model
        _anthropic_usage(u, getattr(message, "usage", None), final=False)
    elif kind == "message_delta":
        _anthropic_usage(u, getattr(event, "usage", None), final=False)
    elif kind == "message_stop":
        u.final = u.input is not None and u.output is not None


_CHAT = _Api("chat.completions", ("messages", "tools"), _chat_response, _chat_event, add_include_usage=True)
_RESPONSES = _Api("responses", ("input", "instructions", "tools"), _responses_response, _responses_event)
_EMBEDDINGS = _Api("embeddings", ("input",), _embeddings_response)
_MESSAGES = _Api("messages", ("messages", "system", "tools"), _messages_response, _messages_event)


# --- one recorded call ------------------------------------------------------------

class _Call:
    """A started call: records its end exactly once (thread-safe)."""

    def __init__(self, rec: Any, api: _Api, model: str, kwargs: dict[str, Any],
                 call_id: Optional[int] = None) -> None:
        self.api = api
        self.requested_model = model
        self.usage = _Usage()
        self._rec = rec
        self._lock = threading.Lock()
        self._done = False
        # Before the request: the budget check may end the process right here.
        self._id = rec.before_call(model, api.estimate(kwargs)) if call_id is None else call_id
        self._start = time.monotonic()

    @classmethod
    async def start_async(cls, rec: Any, api: _Api, model: str, kwargs: dict[str, Any]) -> "_Call":
        """The budget check of an awaited call: an exhausted budget lets the other bodies finish first."""
        return cls(rec, api, model, kwargs, await rec.before_call_async(model, api.estimate(kwargs)))

    def finish(self, complete: bool) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        u = self.usage
        complete = complete and u.final
        self._rec.after_call(
            self._id,
            model=u.model or self.requested_model,
            input_tokens=u.input,
            output_tokens=u.output if complete else None,
            cached_tokens=u.cached,
            latency_ms=(time.monotonic() - self._start) * 1000.0,
            complete=complete,
        )

    def fail(self, error: BaseException) -> None:
        """The SDK call raised `error` (the caller re-raises it, whatever recording it does)."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if isinstance(error, Exception):
            try:
                self._rec.call_failed(self._id, f"{type(error).__name__}: {error}")
            except Exception:
                pass  # a store/fence error is sticky in the engine: the flow's next engine call raises it
            return
        self._rec.after_call(self._id, model=self.requested_model, input_tokens=None, output_tokens=None,
                             cached_tokens=None, latency_ms=(time.monotonic() - self._start) * 1000.0,
                             complete=False)

    # -- what the SDK returned ------------------------------------------------

    def settle(self, result: Any) -> Any:
        """Records `result` (or arranges to record it when it ends) and returns it unchanged."""
        if _is_stream(result):
            _observe_stream(result, self)
        elif _is_raw_response(result):
            _observe_raw(result, self)
        else:
            self.api.read_response(self.usage, result)
            self.finish(complete=True)
        return result

    def see(self, event: Any) -> None:
        if self.api.read_event is not None:
            self.api.read_event(self.usage, event)


def _is_stream(obj: Any) -> bool:
    return hasattr(obj, "_iterator") and hasattr(obj, "response") and hasattr(obj, "close")


def _is_raw_response(obj: Any) -> bool:
    return hasattr(obj, "http_response") and callable(getattr(obj, "parse", None))


def _observe_stream(stream: Any, call: _Call) -> None:
    """Replaces the stream's iterator with one that watches events; the stream stays the SDK's."""
    inner = stream._iterator
    if inspect.isasyncgen(inner) or hasattr(inner, "__anext__"):
        stream._iterator = _watch_async(inner, call)
        original_close = stream.close

        async def close() -> None:
            call.finish(complete=False)
            await original_close()
    else:
        stream._iterator = _watch_sync(inner, call)
        original_close = stream.close

        def close() -> None:  # type: ignore[misc]
            call.finish(complete=False)
            original_close()

    stream.close = close  # __exit__/__aexit__ call self.close()


def _watch_sync(inner: Iterator[Any], call: _Call) -> Iterator[Any]:
    # Must not refer to the stream object itself (a reference cycle would leave
    # a dropped stream to the cyclic garbage collector).
    ended = False
    try:
        for event in inner:
            call.see(event)
            yield event
        ended = True
    finally:
        call.finish(complete=ended)
        if not ended:
            close = getattr(inner, "close", None)
            if close is not None:
                close()


async def _watch_async(inner: AsyncIterator[Any], call: _Call) -> AsyncIterator[Any]:
    ended = False
    try:
        async for event in inner:
            call.see(event)
            yield event
        ended = True
    finally:
        call.finish(complete=ended)
        if not ended:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()


def _observe_raw(raw: Any, call: _Call) -> None:
    """Records at the first parse(); a parsed stream is observed like any stream."""
    original_parse = raw.parse
    seen: list[Any] = []

    def settle_parsed(parsed: Any) -> Any:
        if not seen:
            seen.append(parsed)
            call.settle(parsed)
        return parsed

    if inspect.iscoroutinefunction(original_parse):
        async def parse(*args: Any, **kwargs: Any) -> Any:
            return settle_parsed(await original_parse(*args, **kwargs))
    else:
        def parse(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return settle_parsed(original_parse(*args, **kwargs))

    raw.parse = parse


# anthropic's MessageStreamManager keeps the request it sends on __enter__ in a
# private attribute; the wrapper replaces it so the budget check runs at enter,
# before the request, and the raw stream it returns is observed.
_MANAGER_REQUEST_ATTRS = ("_MessageStreamManager__api_request", "_AsyncMessageStreamManager__api_request")


# --- wrapping SDK methods ---------------------------------------------------------

def _wrap(method: Callable[..., Any], api: _Api, is_async: bool = False) -> Callable[..., Any]:
    if getattr(method, _MARK, False):
        return method
    if is_async:
        return _wrap_async(method, api)

    # One wrapper for sync and async methods: the async clients' methods are not
    # always coroutine functions (decorated), so what decides is the result. The
    # budget check runs when the method is called, before the request is sent.
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rec = _recorder.llm_recorder()
        if rec is None:
            return method(*args, **kwargs)
        kwargs = api.prepare(kwargs)
        call = _Call(rec, api, str(_given(kwargs, "model") or ""), kwargs)
        try:
            result = method(*args, **kwargs)
        except BaseException as e:
            call.fail(e)
            raise
        if inspect.isawaitable(result):
            return _settle_awaited(result, call)
        return call.settle(result)

    setattr(wrapper, _MARK, True)
    return wrapper


def _wrap_async(method: Callable[..., Any], api: _Api) -> Callable[..., Any]:
    """An async client's method: the budget check is awaited, before the request is created.

    The method returns an awaitable (the request is sent when it is awaited):
    awaiting the check first means a budget stop parks this body and lets the
    event loop finish the other in-flight bodies before the process ends.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rec = _recorder.llm_recorder()
        if rec is None:
            return method(*args, **kwargs)
        kwargs = api.prepare(kwargs)

        async def call() -> Any:
            started = await _Call.start_async(rec, api, str(_given(kwargs, "model") or ""), kwargs)
            try:
                result = method(*args, **kwargs)
            except BaseException as e:
                started.fail(e)
                raise
            if inspect.isawaitable(result):
                return await _settle_awaited(result, started)
            return started.settle(result)

        return call()

    setattr(wrapper, _MARK, True)
    return wrapper


async def _settle_awaited(awaitable: Any, call: _Call) -> Any:
    try:
        result = await awaitable
    except BaseException as e:
        call.fail(e)
        raise
    return call.settle(result)


def _wrap_manager_method(method: Callable[..., Any], api: _Api) -> Callable[..., Any]:
    """anthropic ``messages.stream(...)``: returns the SDK's manager, whose request is deferred to enter."""
    if getattr(method, _MARK, False):
        return method

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        manager = method(*args, **kwargs)
        if _recorder.llm_recorder() is None:
            return manager
        for attr in _MANAGER_REQUEST_ATTRS:
            if hasattr(manager, attr):
                _defer_to_enter(manager, attr, api, kwargs)
                return manager
        raise RuntimeError(f"flowrun.instrument: this {type(manager).__name__} keeps its request where "
                           "flowrun does not look (an unsupported anthropic version): usage cannot be recorded")

    setattr(wrapper, _MARK, True)
    return wrapper


def _defer_to_enter(manager: Any, attr: str, api: _Api, kwargs: dict[str, Any]) -> None:
    request = getattr(manager, attr)
    if inspect.isawaitable(request):  # the async manager holds an un-awaited coroutine
        async def deferred() -> Any:
            rec = _recorder.llm_recorder()
            if rec is None:
                return await request
            started = await _Call.start_async(rec, api, str(_given(kwargs, "model") or ""), kwargs)
            return await _settle_awaited(request, started)

        setattr(manager, attr, deferred())
    else:
        def deferred_sync() -> Any:
            rec = _recorder.llm_recorder()
            if rec is None:
                return request()
            call = _Call(rec, api, str(_given(kwargs, "model") or ""), kwargs)
            try:
                result = request()
            except BaseException as e:
                call.fail(e)
                raise
            return call.settle(result)

        setattr(manager, attr, deferred_sync)


def _patch(resource: Any, name: str, api: _Api, wrap: Optional[Callable[..., Any]] = None,
           is_async: bool = False) -> None:
    method = getattr(resource, name, None)
    if method is None:
        return
    setattr(resource, name, wrap(method, api) if wrap is not None else _wrap(method, api, is_async))


def _refresh_raw_views(resource: Any) -> None:
    # with_raw_response / with_streaming_response are cached_property views that
    # captured the methods when first built: drop them so they wrap ours.
    for view in ("with_raw_response", "with_streaming_response"):
        resource.__dict__.pop(view, None)


def _resource(obj: Any, *path: str) -> Any:
    for name in path:
        try:
            obj = getattr(obj, name)
        except Exception:  # a client without this API (or one that needs config to build it)
            return None
    return obj


def _is_async_client(client: Any) -> bool:
    # openai.AsyncOpenAI / AsyncAzureOpenAI, anthropic.AsyncAnthropic / AsyncAnthropicBedrock, ...
    return any(c.__name__.startswith("Async") for c in type(client).__mro__)


def _instrument_openai(client: Any) -> None:
    is_async = _is_async_client(client)
    for path, methods, api in ((("chat", "completions"), ("create", "parse"), _CHAT),
                               (("responses",), ("create", "parse"), _RESPONSES),
                               (("embeddings",), ("create",), _EMBEDDINGS)):
        resource = _resource(client, *path)
        if resource is None:
            continue
        for name in methods:
            _patch(resource, name, api, is_async=is_async)
        _refresh_raw_views(resource)


def _instrument_anthropic(client: Any) -> None:
    resource = _resource(client, "messages")
    if resource is None:
        return
    is_async = _is_async_client(client)
    _patch(resource, "create", _MESSAGES, is_async=is_async)
    _patch(resource, "parse", _MESSAGES, is_async=is_async)
    _patch(resource, "stream", _MESSAGES, _wrap_manager_method)
    _refresh_raw_views(resource)


def instrument(client: Any) -> Any:
    """Instruments an ``openai`` or ``anthropic`` client (sync or async) in place and returns it."""
    if getattr(client, _MARK, False):
        return client
    package = type(client).__module__.split(".", 1)[0]
    if package == "openai":
        _instrument_openai(client)
    elif package == "anthropic":
        _instrument_anthropic(client)
    else:
        raise TypeError(f"flowrun.instrument: expected an openai or anthropic client, got "
                        f"{type(client).__module__}.{type(client).__qualname__}; record other SDKs' calls "
                        "with flowrun.record_llm_call() or the LiteLLM callback flowrun.instrument.LiteLLMCallback")
    for name in ("copy", "with_options"):
        original = getattr(client, name, None)
        if callable(original):
            setattr(client, name, _instrumenting(original))
    setattr(client, _MARK, True)
    return client


def _instrumenting(factory: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(factory)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return instrument(factory(*args, **kwargs))

    return wrapper


# --- LiteLLM ------------------------------------------------------------------------

class LiteLLMCallback:
    """A LiteLLM ``CustomLogger``-shaped callback: ``litellm.callbacks = [LiteLLMCallback()]``.

    ``log_pre_api_call`` runs before LiteLLM's request (budget check, started
    call); the success hooks record the usage of ``response_obj.usage`` and
    LiteLLM's ``kwargs["response_cost"]`` as a *reported* cost; the failure
    hooks record the call *failed* (``kwargs["exception"]`` as its error), as
    every other path records a call that got no response. A success without a
    preceding pre-call hook is started and finished at once. Calls are matched
    by ``kwargs["litellm_call_id"]``. Outside a flow every hook does nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, tuple[Any, int, float]] = {}

    # LiteLLM calls these by name.
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        rec = _recorder.llm_recorder()
        if rec is None:
            return
        key = str(kwargs.get("litellm_call_id") or id(kwargs))
        call_id = rec.before_call(str(model or kwargs.get("model") or ""), estimate_input_tokens(messages))
        with self._lock:
            self._started[key] = (rec, call_id, time.monotonic())

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._finish(kwargs, response_obj, start_time, end_time, ok=True)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._finish(kwargs, response_obj, start_time, end_time, ok=False)

    async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        rec = _recorder.llm_recorder()
        if rec is None:
            return
        key = str(kwargs.get("litellm_call_id") or id(kwargs))
        # Awaited on the loop: a budget stop lets the other async bodies finish first.
        call_id = await rec.before_call_async(str(model or kwargs.get("model") or ""), estimate_input_tokens(messages))
        with self._lock:
            self._started[key] = (rec, call_id, time.monotonic())

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._finish(kwargs, response_obj, start_time, end_time, ok=True)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self._finish(kwargs, response_obj, start_time, end_time, ok=False)

    def _finish(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any, ok: bool) -> None:
        key = str(kwargs.get("litellm_call_id") or id(kwargs))
        with self._lock:
            started = self._started.pop(key, None)
        model = str(kwargs.get("model") or _model_of(response_obj) or "")
        if started is None:
            rec = _recorder.llm_recorder()
            if rec is None:
                return
            started = (rec, rec.before_call(model, estimate_input_tokens(kwargs.get("messages"))), time.monotonic())
        rec, call_id, t0 = started
        latency_ms = _latency_ms(start_time, end_time, t0)
        if not ok:
            # The call raised (no response): a failed call of unknown cost, as an instrumented SDK's
            # exception and flowrun.llm's LlmError are recorded (docs/python-llm-usage.md).
            exc = kwargs.get("exception")
            error = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else "LiteLLM call failed"
            rec.call_failed(call_id, error)
            return
        u = _Usage()
        usage = response_obj.get("usage") if isinstance(response_obj, dict) else getattr(response_obj, "usage", None)
        if isinstance(usage, dict):
            usage = types.SimpleNamespace(
                prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                prompt_tokens_details=types.SimpleNamespace(
                    cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens")))
        _openai_chat_usage(u, usage)
        cost = kwargs.get("response_cost")
        if cost is None:
            cost = (kwargs.get("standard_logging_object") or {}).get("response_cost")
        rec.after_call(call_id, model=_model_of(response_obj) or model, input_tokens=u.input,
                       output_tokens=u.output, cached_tokens=u.cached, latency_ms=latency_ms,
                       cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
                       complete=u.final)


def _latency_ms(start: Any, end: Any, t0: float) -> float:
    try:
        return max(0.0, (end - start).total_seconds() * 1000.0)
    except Exception:
        return (time.monotonic() - t0) * 1000.0


# `flowrun.instrument` names both this submodule and the function: once the
# submodule is imported, the package attribute is the module, so the module is
# made callable and `flowrun.instrument(client)` works either way.
class _CallableModule(types.ModuleType):
    def __call__(self, client: Any) -> Any:
        return instrument(client)


sys.modules[__name__].__class__ = _CallableModule
