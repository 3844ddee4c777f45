"""Flows that call the REAL openai and anthropic SDKs through flowrun.instrument() (test_instrument_e2e.py).

Both clients point at the project's fake server ($OPENAI_BASE_URL); prompts
start with the run uid so the fake's per-prompt counts belong to one test.
"""

from __future__ import annotations

import asyncio
import os

import anthropic
import openai

import flowrun
from flowrun import checkpoint, flow, wait

BASE = os.environ["OPENAI_BASE_URL"]
gpt = flowrun.instrument(openai.OpenAI(base_url=BASE, api_key=os.environ["OPENAI_API_KEY"], max_retries=0))
claude = flowrun.instrument(anthropic.Anthropic(base_url=BASE[: -len("/v1")], api_key=os.environ["OPENAI_API_KEY"],
                                                max_retries=0))


def prompt(what: str) -> str:
    return f"{flowrun.current().uid} {what}"


@checkpoint
def chat(what: str) -> str:
    r = gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt(what)}])
    return r.choices[0].message.content


@checkpoint
def chat_stream(what: str) -> str:
    stream = gpt.chat.completions.create(model="gpt-4o-mini", stream=True,
                                         messages=[{"role": "user", "content": prompt(what)}])
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@checkpoint
def respond(what: str) -> str:
    return gpt.responses.create(model="gpt-4o-mini", input=prompt(what)).output_text


@checkpoint
def ask_claude(what: str) -> str:
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": prompt(what)}]) as s:
        return "".join(s.text_stream)


@checkpoint
def cut(what: str) -> str:
    """The fake drops the connection after two events: the SDK raises, the call is recorded incomplete."""
    stream = gpt.chat.completions.create(model="gpt-4o-mini", stream=True,
                                         messages=[{"role": "user", "content": prompt(what + " [[cut-stream]]")}])
    try:
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    except openai.APIConnectionError:
        return "cut"


@flow
def sdk_calls() -> dict:
    out = {"chat": chat("a"), "stream": chat_stream("b"), "responses": respond("c"), "claude": ask_claude("d"),
           "cut": cut("e")}
    if not wait(bool, name="go", question="go on?"):
        return {"stopped": True}
    return out


@flow
def sdk_spender(calls: int = 3) -> dict:
    return {"replies": [chat(f"paid {i}") for i in range(calls)]}


@checkpoint
def chat_refused(what: str) -> str:
    """The fake answers the request with an HTTP error: the SDK's exception reaches the flow unchanged."""
    try:
        gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt(what)}])
    except openai.APIStatusError as e:
        return f"{type(e).__name__} {e.status_code}"
    return "answered"


@flow
def sdk_failure() -> dict:
    return {"refused": chat_refused("refused"), "then": chat("after")}


# --- a budget stop inside one of three concurrent async bodies ---------------------
# The real AsyncOpenAI client. Two `side` bodies make a paid call each, then
# await the `burner`'s stop; the burner calls once both sides have called —
# after their spend exhausted the budget — and stops there. The sides must
# still finish and be stored before the process ends (the stop awaits them).
gpt_async = flowrun.instrument(openai.AsyncOpenAI(base_url=BASE, api_key=os.environ["OPENAI_API_KEY"],
                                                  max_retries=0))
_stage: dict = {}


def _side_called(i: int) -> None:
    _stage["called"].add(i)
    if len(_stage["called"]) == 2:
        _stage["both_called"].set()


@checkpoint
async def side(i: int) -> str:
    r = await gpt_async.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": prompt(f"side {i}")}])
    _side_called(i)
    await _stage["stopping"].wait()  # the burner is stopping on the budget now
    return r.choices[0].message.content


@checkpoint
async def burner() -> str:
    await _stage["both_called"].wait()
    _stage["stopping"].set()
    r = await gpt_async.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": prompt("burn")}])
    return r.choices[0].message.content


async def _tracked_side(i: int) -> str:
    out = await side(i)
    _side_called(i)  # a side served from the cache never ran its body
    return out


@flow
async def gather_spender() -> dict:
    _stage.update(called=set(), both_called=asyncio.Event(), stopping=asyncio.Event())
    outs = await asyncio.gather(_tracked_side(1), burner(), _tracked_side(2))
    return {"outs": outs}
