"""Small flows for the SDK's behaviour tests (markers go to $AGENT_MARKER_DIR)."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import os
import pathlib
import threading
import time
from typing import Optional

from pydantic import BaseModel

import flowrun
from flowrun import checkpoint, flow, wait

MARKERS = pathlib.Path(os.environ.get("AGENT_MARKER_DIR", "."))


def mark(name: str, text: str = "") -> None:
    (MARKERS / name).write_text(text)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Hit(BaseModel):
    url: str
    score: float


class Report(BaseModel):
    title: str
    at: dt.datetime
    color: Color
    note: Optional[str] = None
    hits: list[Hit]


class Review(BaseModel):
    approved: bool
    notes: str = ""


@checkpoint
def make_report(title: str, tags: list[str]) -> Report:
    tags.append("mutated inside the body")
    return Report(title=title, at=dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc), color=Color.BLUE,
                  hits=[Hit(url=f"https://example.com/{t}", score=i / 3) for i, t in enumerate(tags)])


@flow
def typed(title: str, tags: list[str]) -> dict:
    report = make_report(title, tags)
    assert isinstance(report, Report) and isinstance(report.at, dt.datetime) and report.color is Color.BLUE
    mark(f"report-{flowrun.current().attempt}.json", report.model_dump_json())
    mark(f"tags-{flowrun.current().attempt}", repr(tags))
    wait(bool, name="again", question="run again?")
    return {"report": report.model_dump(mode="json"), "tags": tags}


@checkpoint
def research(topic: str) -> str:
    return flowrun.llm(f"Research {topic}")


@flow
def approval(topic: str) -> dict:
    notes = research(topic)
    try:
        review = wait(Review, name="review", question=f"Approve the notes on {topic}?")
        mark("after-wait")
    finally:
        mark("finally-ran")
    if not review.approved:
        return {"status": "rejected", "notes": review.notes}
    ok = wait(bool, name="proceed", question="Proceed?")
    return {"status": "done" if ok else "stopped", "notes": notes, "review": review.model_dump()}


@flow
def with_default() -> dict:
    r = wait(Review, name="review", question="Approve?", timeout=1, on_timeout="default",
             default=Review(approved=False, notes="no answer in time"))
    return r.model_dump()


class Bytes(BaseModel):
    n: int


@checkpoint(retries=2, backoff=0.01)
def not_json():
    return object()  # JSON cannot carry it: no retry helps


@flow
def bad_output() -> dict:
    not_json()
    return {}


@flow
def params(count: int, name: str = "x", when: Optional[dt.date] = None) -> dict:
    return {"count": count, "name": name, "when": when.isoformat() if when else None}


# --- divergence: the flow's shape depends on AGENT_VARIANT -----------------
@checkpoint
def first(x: int) -> int:
    return x * 2


@checkpoint
def second(x: int) -> int:
    return x + 1


@checkpoint(name="first")
def renamed_first(x: int) -> int:  # same checkpoint name, other function
    return x * 2


@checkpoint
def prepare(x: int) -> int:  # a new step taking first's very arguments
    return x - 1


@flow
def shaped() -> dict:
    v = os.environ.get("AGENT_VARIANT", "a")
    if v == "inserted":  # a new step before first, first still there: not a rename
        prepare(1)
    if v == "renamed":
        a = renamed_first(1)
    elif v == "args":
        a = first(2)
    else:
        a = first(1)
    b = second(a)
    if not wait(bool, name="go", question="go on?"):
        return {"a": a}
    return {"a": a, "b": b}


@checkpoint(on_divergence="rerun")
def tolerant(x: int) -> int:
    return x * 10


@flow
def rerunnable() -> dict:
    x = int(os.environ.get("AGENT_ARG", "1"))
    a = tolerant(x)
    wait(bool, name="go", question="go on?")
    return {"a": a}


@checkpoint
def fetch(q: str) -> str:
    return f"page for {q}"


@checkpoint(key=lambda q: q)
def fetch_keyed(q: str) -> str:
    return f"page for {q}"


@flow
def fan(keyed: bool = False) -> dict:
    qs = os.environ.get("AGENT_ORDER", "a,b,c").split(",")
    f = fetch_keyed if keyed else fetch
    pages = [f(q) for q in qs]
    wait(bool, name="go", question="go on?")
    return {"pages": sorted(pages)}


# --- two executors -----------------------------------------------------------
@checkpoint
def slow(i: int) -> int:
    gate = MARKERS / "gate"
    mark(f"slow-{i}-started-{os.getpid()}")
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return i


@flow
def fenced() -> dict:
    try:
        a = slow(1)
    except Exception as e:  # an author who swallows everything
        mark(f"caught-{os.getpid()}", repr(e))
        a = -1
    try:
        b = slow(2)
    except Exception as e:
        mark(f"caught2-{os.getpid()}", repr(e))
        b = -1
    return {"a": a, "b": b}


# --- the GIL is released during database and LLM calls ----------------------
@checkpoint
def llm_step(i: int) -> str:
    return flowrun.llm(f"{flowrun.current().uid} tick {i}")


class Ticker:
    """A thread that counts while the flow blocks in the engine: it counts only if the GIL is free."""

    def __init__(self) -> None:
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ticks += 1
            time.sleep(0.001)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def measure(self, call) -> dict:
        """Runs call(); the ticks counted meanwhile and how long it took."""
        before, start = self.ticks, time.monotonic()
        call()
        return {"ticks_during_call": self.ticks - before, "call_seconds": time.monotonic() - start}


@flow
def ticker() -> dict:
    with Ticker() as t:
        return t.measure(lambda: llm_step(1))  # the fake LLM answers after latency_ms: ticks must go on meanwhile


@checkpoint
def artifact_step() -> int:
    return flowrun.save_artifact("notes", {"k": [1, 2]})


@flow
def misc() -> dict:
    v1 = artifact_step()
    v2 = flowrun.save_artifact("blob", b"\x00\x01", content_type="application/octet-stream")
    flowrun.record_llm_call("gpt-4o-mini", 1000, 500, latency=0.25)
    info = flowrun.current()
    return {"v1": v1, "v2": v2, "attempt": info.attempt, "uid": info.uid, "spent": info.spent_usd > 0}


# --- budgets: an exhausted budget suspends inside the LLM call ---------------
@checkpoint
def paid(i: int) -> str:
    return flowrun.llm(f"{flowrun.current().uid} paid {i}")


@flow
def spender(calls: int = 3) -> dict:
    out = []
    try:
        for i in range(calls):
            out.append(paid(i))
    finally:
        mark(f"spender-finally-{flowrun.current().attempt}")
    return {"calls": len(out)}


# --- async: wait_async lets in-flight checkpoints finish first ---------------
@checkpoint
async def background(uid: str) -> str:
    gate = MARKERS / "bg-started"
    gate.write_text("")
    await asyncio.sleep(0.3)
    return await flowrun.llm_async(f"{uid} background")


@flow
async def async_wait() -> dict:
    uid = flowrun.current().uid
    task = asyncio.ensure_future(background(uid))
    while not (MARKERS / "bg-started").exists():
        await asyncio.sleep(0.01)
    ok = await flowrun.wait_async(bool, name="go", question="go?")
    return {"ok": ok, "bg": await task}


# --- the recorder interface (what flowrun.instrument builds on) --------------
@checkpoint
async def recorded(name: str, tokens: int) -> int:
    from flowrun._recorder import llm_recorder

    rec = llm_recorder()
    assert rec is not None
    call = rec.before_call("gpt-4o-mini", tokens)
    await asyncio.sleep(0.05)  # the other body records meanwhile
    rec.after_call(call, model="gpt-4o-mini", input_tokens=tokens, output_tokens=10, cached_tokens=None,
                   latency_ms=50.0)
    return tokens


@flow
async def recorders() -> dict:
    a, b = await asyncio.gather(recorded("a", 1000), recorded("b", 2000))
    from flowrun._recorder import llm_recorder

    rec = llm_recorder()
    cut = rec.before_call("gpt-4o-mini", 10)
    rec.after_call(cut, model="gpt-4o-mini", input_tokens=None, output_tokens=None, cached_tokens=None,
                   latency_ms=1.0, complete=False)
    return {"a": a, "b": b}


# --- sticky divergence: an author's except does not resume writing ----------
@flow
def swallow() -> dict:
    v = int(os.environ.get("AGENT_ARG", "1"))
    try:
        a = first(v)
    except Exception as e:
        mark("swallowed", repr(e))
        a = 0
    b = second(a)
    wait(bool, name="go", question="go on?")
    return {"a": a, "b": b}


# --- retries and final failures ----------------------------------------------
@checkpoint(retries=2, backoff=0.01)
def flaky() -> int:
    n = len(list(MARKERS.glob("flaky-try-*"))) + 1
    mark(f"flaky-try-{n}")
    if n < 3:
        raise ConnectionError(f"try {n} failed")
    return n


@checkpoint(retries=5, backoff=0.01, give_up_on=(ValueError,))
def hopeless() -> int:
    n = len(list(MARKERS.glob("hopeless-try-*"))) + 1
    mark(f"hopeless-try-{n}")
    if not (MARKERS / "fixed").exists():
        raise ValueError("bad input")
    return n


@flow
def retrying() -> dict:
    return {"flaky": flaky(), "hopeless": hopeless()}


@checkpoint
async def paid_async(i: int, uid: str) -> str:
    return await flowrun.llm_async(f"{uid} paid-async {i}")


@flow
async def spender_async(width: int = 4) -> dict:
    uid = flowrun.current().uid
    first = await paid_async(0, uid)  # spends the budget
    rest = await asyncio.gather(*(paid_async(i, uid) for i in range(1, width)))  # all stop at once
    return {"calls": 1 + len(rest), "first": first}


# --- flowrun.llm without a response: the body's failure, retried ------------
@checkpoint(retries=1, backoff=0.01)
def ask_twice(uid: str) -> str:
    return flowrun.llm(f"{uid} ask twice")


@flow
def llm_retry() -> dict:
    return {"reply": ask_twice(flowrun.current().uid)}


# --- identity at call time: a gather numbers its calls in list order --------
@checkpoint
async def probe(i: int, n: int) -> dict:
    await asyncio.sleep(0.02 * (n - i))  # the first call finishes last
    mark(f"probe-done-{flowrun.current().attempt}-{i}", str(time.monotonic()))
    return {"i": i}


@checkpoint
async def other(i: int) -> int:  # another name in the same gather (DBOS #688)
    await asyncio.sleep(0.01 * i)
    return i


@flow
async def gather_order(n: int = 5) -> dict:
    outs = await asyncio.gather(*(probe(i, n) for i in range(n)), *(other(i) for i in (2, 1)))
    await flowrun.wait_async(bool, name="go", question="go on?")
    return {"outs": outs}


# --- suspension flushes Python's stdio and logging --------------------------
@flow
def chatty() -> dict:
    import logging
    import logging.handlers

    target = logging.FileHandler(MARKERS / "agent.log")
    # Holds records until flushed (capacity and level far above what this flow logs).
    logging.getLogger().addHandler(logging.handlers.MemoryHandler(10000, logging.CRITICAL, target))
    logging.getLogger().setLevel(logging.INFO)
    print("printed before the wait")  # stdout is a pipe: block-buffered unless flushed
    logging.getLogger("chatty").info("logged before the wait")
    ok = wait(bool, name="go", question="go on?")
    print("printed after the wait")
    return {"ok": ok}


# --- a call in flight when the process dies ----------------------------------
@checkpoint
def slow_call(uid: str) -> str:
    return flowrun.llm(f"{uid} slow call")


@flow
def in_flight() -> dict:
    return {"reply": slow_call(flowrun.current().uid)}


# --- the GIL is released while the engine waits for PostgreSQL ---------------
@checkpoint
def db_step(i: int) -> int:
    return i


@flow
def db_ticker() -> dict:
    with Ticker() as t:
        mark("ready")
        deadline = time.monotonic() + 60
        while not (MARKERS / "locked").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        # db_step's rows wait for the test's lock on flowrun.checkpoints: ticks must go on meanwhile
        return t.measure(lambda: db_step(1))


# --- a store error is sticky: an author's except does not resume writing ----
@flow
def store_swallow() -> dict:
    try:
        flowrun.save_artifact("poison", {"x": 1})  # the test's trigger makes PostgreSQL refuse it
    except Exception as e:  # an author who swallows everything
        mark("caught-store", repr(e))
    try:
        first(1)
    except Exception as e:
        mark("caught-again", repr(e))
    mark("went-on")
    return {"ok": True}


# --- checkpoints on several threads: each call's usage reaches its own checkpoint ----
@checkpoint
def threaded_call(i: int, uid: str) -> str:
    return flowrun.llm(f"{uid} threaded {i} " + "x" * (40 * i))


@flow
def threaded(width: int = 4) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    uid = flowrun.current().uid
    with ThreadPoolExecutor(width) as pool:
        outs = list(pool.map(lambda i: threaded_call(i, uid), range(width)))
    return {"n": len(outs)}


# --- flowrun.llm at flow scope (the twin of tests/runtime/agents/test_agent.cc's flow_llm) ----
@flow
def flow_llm(scenario: str = "flow_llm", prompt: str = "at flow scope") -> dict:
    return {"reply": flowrun.llm(prompt)}
