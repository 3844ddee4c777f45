"""The LLM-usage interface that SDK adapters (``flowrun.instrument``) code against.

    rec = llm_recorder()            # None outside a running flow
    if rec is not None:
        call_id = rec.before_call(model, estimated_input_tokens)   # budget; may end the process
    ... the HTTP request ...
        rec.after_call(call_id, model=..., input_tokens=..., output_tokens=...,
                       cached_tokens=..., latency_ms=..., cost_usd=None, complete=True)

``before_call`` re-reads the run's budget; when it is exhausted the execution
is suspended (``budget_exceeded``) and the process ends inside the call — the
request is never sent and no code after it runs. Async adapters await
``before_call_async`` instead: the other checkpoint bodies in flight (asyncio
tasks included) finish and are stored first. Otherwise the call is
recorded as *started* (so a call in flight when the pod is killed stays
visible as started with unknown cost) and attributed to the checkpoint of the
calling context (``contextvars``: asyncio tasks inherit it; a thread started
inside a checkpoint body should be given its context with
``contextvars.copy_context().run``). ``after_call`` completes it: tokens
``None`` mean unknown, ``cost_usd=None`` prices the call with the runtime's
price table (unknown model → unknown cost, never zero), ``complete=False``
marks a cut response (recorded with unknown cost). ``call_failed(call_id,
error)`` finishes a call that got no response (the provider call raised: HTTP
error, timeout, connection failure) as *failed* with the error text, outside
the usage totals (the engine's ``FailLlmCall``).
"""

from __future__ import annotations

from . import _context


class LlmRecorder:
    """Records the LLM calls of the running execution (see the module's docstring)."""

    def __init__(self, runtime: "_context.Runtime") -> None:
        self._rt = runtime

    def before_call(self, model: str, estimated_input_tokens: int) -> int:
        return self._rt.before_llm_call(_context.current_checkpoint(), model, int(estimated_input_tokens or 0))

    async def before_call_async(self, model: str, estimated_input_tokens: int) -> int:
        """``before_call`` for a call awaited on the event loop: an exhausted budget awaits the
        other in-flight bodies (they finish and are stored) before the process ends."""
        return await self._rt.before_llm_call_async(_context.current_checkpoint(), model,
                                                    int(estimated_input_tokens or 0))

    def after_call(
        self,
        call_id: int,
        *,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
        latency_ms: float,
        cost_usd: float | None = None,
        complete: bool = True,
    ) -> None:
        self._rt.finish_llm_call(
            call_id,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            latency_ms=latency_ms,
            cost_usd=cost_usd,
            complete=complete,
        )

    def call_failed(self, call_id: int, error: str) -> None:
        self._rt.fail_llm_call(call_id, str(error))


def llm_recorder() -> LlmRecorder | None:
    """The recorder of the running flow, or None outside one (then record nothing)."""
    rt = _context.runtime_or_none()
    return None if rt is None else LlmRecorder(rt)
