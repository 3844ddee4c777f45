"""A 40-checkpoint sync agent and an async agent with a gather fan-out (the kill test's subjects).

Every checkpoint sends one prompt that names the run, so the fake LLM's
per-prompt counters tell how often each checkpoint's call really went out.
The results strip the run's uid, so every run of a flow returns the same value.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import flowrun
from flowrun import checkpoint, flow


@checkpoint
def step(i: int, uid: str) -> str:
    time.sleep(0.002)
    return flowrun.llm(f"{uid} step {i}").replace(uid, "<run>")


@flow
def chain(steps: int = 40) -> dict:
    uid = flowrun.current().uid
    outs = [step(i, uid) for i in range(1, steps + 1)]
    return {"steps": len(outs), "digest": hashlib.sha256("\n".join(outs).encode()).hexdigest()}


@checkpoint(key=lambda q, uid: q)
async def search(q: str, uid: str) -> str:
    await asyncio.sleep(random.uniform(0, 0.01))  # finish in any order
    return (await flowrun.llm_async(f"{uid} search {q}")).replace(uid, "<run>")


@checkpoint
async def summarize(i: int, uid: str, hits: list[str]) -> str:
    return (await flowrun.llm_async(f"{uid} summarize {i} of {len(hits)}")).replace(uid, "<run>")


@flow
async def fan_out(width: int = 20, depth: int = 20) -> dict:
    uid = flowrun.current().uid
    hits = await asyncio.gather(*(search(f"q{i}", uid) for i in range(width)))
    sums = [await summarize(i, uid, hits) for i in range(depth)]
    return {"steps": len(hits) + len(sums),
            "digest": hashlib.sha256("\n".join(hits + sums).encode()).hexdigest()}
