"""``flowrun.llm``: the runtime's own OpenAI-compatible client (C++), and ``record_llm_call``.

``llm()`` goes through the C++ ``LlmClient`` with the GIL released: the budget
is checked before the request (an exhausted budget suspends the run inside
the call, nothing sent), the call is recorded as started, then priced and
stored with the checkpoint of the calling context. Endpoint, key and default
model come from the environment (OPENAI_BASE_URL, OPENAI_API_KEY,
FLOWRUN_LLM_MODEL). ``record_llm_call`` records a call made by any other SDK.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as _dt
from typing import Optional, Union

from . import _context


def llm(prompt: str, *, model: Optional[str] = None, system: Optional[str] = None,
        temperature: Optional[float] = None, max_tokens: Optional[int] = None) -> str:
    """The reply's text to one user message (and an optional system message)."""
    rt = _context.runtime("flowrun.llm()")
    key = _context.current_checkpoint()
    messages = ([("system", system)] if system else []) + [("user", prompt)]
    out = rt.ex.llm_chat(key, messages, model, temperature, max_tokens)
    if not isinstance(out, tuple):  # a budget suspension: nothing was sent
        rt.suspend(out, own=1 if key is not None else 0)
    return out[0]


async def llm_async(prompt: str, *, model: Optional[str] = None, system: Optional[str] = None,
                    temperature: Optional[float] = None, max_tokens: Optional[int] = None) -> str:
    """``llm`` in a worker thread (the context, so the checkpoint, goes with it)."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: ctx.run(llm, prompt, model=model, system=system,
                                                            temperature=temperature, max_tokens=max_tokens))


def record_llm_call(model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
                    latency: Union[float, _dt.timedelta] = 0.0, cost_usd: Optional[float] = None) -> None:
    """Records a finished call made by other means; `latency` in seconds or a timedelta.

    ``cost_usd`` None prices it with the price table (unknown model: unknown cost).
    """
    rt = _context.runtime("record_llm_call()")
    seconds = latency.total_seconds() if isinstance(latency, _dt.timedelta) else float(latency)
    rt.ex.record_llm_call(_context.current_checkpoint(), model, int(input_tokens), int(output_tokens),
                          int(cached_tokens), seconds * 1000.0, cost_usd)
