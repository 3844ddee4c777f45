"""flowrun.instrument() with the REAL openai and anthropic packages against the project's fake server.

A recording LlmRecorder stands in for the engine (installed where the SDK looks
it up, flowrun._recorder.llm_recorder), so each test sees exactly what
instrument() reports: the pre-request call (with the fake's request count at
that moment, which proves the budget check runs before the HTTP request) and
the tokens after it. The end-to-end test through a real flow and PostgreSQL is
test_instrument_e2e.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from typing import Any, Iterator

import anthropic
import openai
import pytest

import flowrun
from flowrun import _recorder
from flowrun.instrument import LiteLLMCallback, estimate_input_tokens

API_KEY = "sk-fake"


class Suspended(BaseException):
    """What the engine does on an exhausted budget (end the process), as an exception a test can catch."""


@dataclasses.dataclass
class Started:
    id: int
    model: str
    estimated_input_tokens: int
    fake_requests_before: int  # the fake's request count when the budget was checked


@dataclasses.dataclass
class Finished:
    id: int
    model: str
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    latency_ms: float
    cost_usd: float | None
    complete: bool


class RecordingRecorder:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.started: list[Started] = []
        self.finished: list[Finished] = []
        self.failed: list[tuple[int, str]] = []
        self.budget_left = True
        self.async_checks = 0

    def before_call(self, model: str, estimated_input_tokens: int) -> int:
        if not self.budget_left:
            raise Suspended()
        call_id = len(self.started) + 1
        self.started.append(Started(call_id, model, estimated_input_tokens, self.fake.stats()["total"]))
        return call_id

    async def before_call_async(self, model: str, estimated_input_tokens: int) -> int:
        self.async_checks += 1  # an async client's check is awaited (so a budget stop can drain)
        return self.before_call(model, estimated_input_tokens)

    def after_call(self, call_id: int, *, model: str, input_tokens: int | None, output_tokens: int | None,
                   cached_tokens: int | None, latency_ms: float, cost_usd: float | None = None,
                   complete: bool = True) -> None:
        assert call_id in [s.id for s in self.started], "after_call for a call never started"
        assert call_id not in [f.id for f in self.finished], "a call finished twice"
        self.finished.append(Finished(call_id, model, input_tokens, output_tokens, cached_tokens, latency_ms,
                                      cost_usd, complete))

    def call_failed(self, call_id: int, error: str) -> None:
        assert call_id in [s.id for s in self.started], "call_failed for a call never started"
        assert call_id not in [f.id for f in self.finished] + [i for i, _ in self.failed], "a call finished twice"
        self.failed.append((call_id, error))

    @property
    def only(self) -> Finished:
        assert len(self.started) == 1 and len(self.finished) == 1, (self.started, self.finished)
        return self.finished[0]


@pytest.fixture
def fake(fake_llm: Any) -> Iterator[Any]:
    fake_llm.reset()
    yield fake_llm


@pytest.fixture
def rec(fake: Any, monkeypatch: pytest.MonkeyPatch) -> RecordingRecorder:
    recorder = RecordingRecorder(fake)
    monkeypatch.setattr(_recorder, "llm_recorder", lambda: recorder)
    return recorder


def requests_seen(fake: Any) -> list[dict[str, Any]]:
    return fake._call("GET", "/__fake/requests")


def openai_client(fake: Any) -> openai.OpenAI:
    return flowrun.instrument(openai.OpenAI(base_url=fake.base_url, api_key=API_KEY, max_retries=0))


def async_openai_client(fake: Any) -> openai.AsyncOpenAI:
    return flowrun.instrument(openai.AsyncOpenAI(base_url=fake.base_url, api_key=API_KEY, max_retries=0))


def anthropic_client(fake: Any) -> anthropic.Anthropic:
    # The Anthropic SDK appends /v1/messages to its base URL.
    return flowrun.instrument(anthropic.Anthropic(base_url=fake.base_url[: -len("/v1")], api_key=API_KEY,
                                                  max_retries=0))


def async_anthropic_client(fake: Any) -> anthropic.AsyncAnthropic:
    return flowrun.instrument(anthropic.AsyncAnthropic(base_url=fake.base_url[: -len("/v1")], api_key=API_KEY,
                                                       max_retries=0))


MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
# The fake's rule: ("be brief" + "hello there") = 19 chars -> 19 // 4 + 1 = 5 prompt tokens;
# "reply to: hello there" = 21 chars -> 6 completion tokens.
PROMPT_TOKENS, COMPLETION_TOKENS, REPLY = 5, 6, "reply to: hello there"


# --- outside a flow -----------------------------------------------------------------

def test_outside_a_flow_calls_pass_through_untouched(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_recorder, "llm_recorder", lambda: None)
    client = openai_client(fake)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(r) is openai.types.chat.ChatCompletion and r.choices[0].message.content == REPLY
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert "stream_options" not in requests_seen(fake)[-1]["body"]  # nothing added outside a flow
    msg = anthropic_client(fake).messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES[1:])
    assert msg.content[0].text == REPLY


# --- openai chat completions ------------------------------------------------------------

def test_chat_completion_records_the_reported_tokens_after_a_budget_check_before_the_request(
        fake: Any, rec: RecordingRecorder) -> None:
    fake.config(usage={"prompt_tokens": 1000, "cached_tokens": 800})
    r = openai_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert rec.started[0].model == "gpt-4o-mini"
    assert rec.started[0].fake_requests_before == 0
    assert rec.started[0].estimated_input_tokens == estimate_input_tokens(MESSAGES) == 19 // 4
    f = rec.only
    assert (f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) == (1000, COMPLETION_TOKENS, 800, True)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (1000, COMPLETION_TOKENS)
    assert f.cost_usd is None  # priced by the runtime's table, not here
    assert f.latency_ms > 0


def test_chat_stream_gets_include_usage_and_iterates_normally(fake: Any, rec: RecordingRecorder) -> None:
    stream = openai_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    assert rec.finished == []  # not before the stream ends
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == REPLY
    assert requests_seen(fake)[-1]["body"]["stream_options"] == {"include_usage": True}
    f = rec.only
    assert (f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) == (PROMPT_TOKENS, COMPLETION_TOKENS, 0,
                                                                               True)


def test_chat_stream_keeps_the_callers_stream_options(fake: Any, rec: RecordingRecorder) -> None:
    client = openai_client(fake)
    list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                        stream_options={"include_obfuscation": False}))
    assert requests_seen(fake)[-1]["body"]["stream_options"] == {"include_obfuscation": False,
                                                                 "include_usage": True}
    # An explicit include_usage=False is respected: the tokens are then unknown, never zero.
    list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                        stream_options={"include_usage": False}))
    assert requests_seen(fake)[-1]["body"]["stream_options"] == {"include_usage": False}
    last = rec.finished[-1]
    assert (last.output_tokens, last.complete) == (None, False)


def test_a_cut_chat_stream_is_recorded_incomplete_with_unknown_tokens(fake: Any, rec: RecordingRecorder) -> None:
    stream = openai_client(fake).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me [[cut-stream]]"}], stream=True)
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 2  # the fake cut after two events
    f = rec.only
    assert f.complete is False
    assert (f.input_tokens, f.output_tokens) == (None, None)
    assert fake.stats()["cut"] == 1


def test_a_stream_abandoned_early_is_recorded_incomplete(fake: Any, rec: RecordingRecorder) -> None:
    client = openai_client(fake)
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    assert rec.finished[-1].complete is False and rec.finished[-1].output_tokens is None
    # Dropped without close(): recorded when the stream is garbage collected.
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    assert len(rec.finished) == 2 and rec.finished[-1].complete is False


def test_chat_stream_helper_and_parse_are_recorded(fake: Any, rec: RecordingRecorder) -> None:
    client = openai_client(fake)
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY
    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES)
    assert parsed.choices[0].message.content == REPLY
    assert [(f.input_tokens, f.output_tokens, f.complete) for f in rec.finished] == [
        (PROMPT_TOKENS, COMPLETION_TOKENS, True)] * 2


def test_with_raw_response_is_recorded_at_parse(fake: Any, rec: RecordingRecorder) -> None:
    client = openai_client(fake)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["content-type"] == "application/json"
    assert rec.finished == []
    assert raw.parse().choices[0].message.content == REPLY
    raw.parse()  # parsed twice, recorded once
    assert rec.only.output_tokens == COMPLETION_TOKENS
    with client.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES, stream=True) as resp:
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == REPLY
    assert rec.finished[-1].output_tokens == COMPLETION_TOKENS and rec.finished[-1].complete


def test_an_sdk_error_is_recorded_failed_and_reraised_unchanged(fake: Any, rec: RecordingRecorder) -> None:
    fake.config(fail_next=1, fail_status=500)
    with pytest.raises(openai.InternalServerError) as err:
        openai_client(fake).chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.status_code == 500
    assert len(rec.started) == 1 and rec.finished == [], rec.finished
    assert [i for i, _ in rec.failed] == [rec.started[0].id]
    assert rec.failed[0][1].startswith("InternalServerError:"), rec.failed


def test_an_async_sdk_error_is_recorded_failed_and_reraised(fake: Any, rec: RecordingRecorder) -> None:
    fake.config(fail_next=1, fail_status=429)

    async def main() -> None:
        with pytest.raises(openai.RateLimitError):
            await async_openai_client(fake).chat.completions.create(model="m", messages=MESSAGES)

    asyncio.run(main())
    assert rec.finished == [] and [i for i, _ in rec.failed] == [rec.started[0].id]


def test_an_exhausted_budget_stops_before_the_http_request(fake: Any, rec: RecordingRecorder) -> None:
    rec.budget_left = False
    client, claude = openai_client(fake), anthropic_client(fake)
    with pytest.raises(Suspended):
        client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(Suspended):
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(Suspended):
        client.responses.create(model="m", input="hi")
    with pytest.raises(Suspended):
        client.embeddings.create(model="m", input="hi")
    with pytest.raises(Suspended):
        claude.messages.create(model="m", max_tokens=8, messages=MESSAGES[1:])
    with pytest.raises(Suspended):
        with claude.messages.stream(model="m", max_tokens=8, messages=MESSAGES[1:]):
            pass
    assert fake.stats()["total"] == 0  # the fake saw no request at all
    assert rec.started == [] and rec.finished == []


# --- openai responses and embeddings -------------------------------------------------------

def test_responses_create_and_stream(fake: Any, rec: RecordingRecorder) -> None:
    fake.config(usage={"cached_tokens": 2})
    client = openai_client(fake)
    r = client.responses.create(model="gpt-4o-mini", input="hello there", instructions="be brief")
    assert r.output_text == REPLY
    events = list(client.responses.create(model="gpt-4o-mini", input="hello there", instructions="be brief",
                                          stream=True))
    assert events[-1].type == "response.completed"
    with client.responses.stream(model="gpt-4o-mini", input="hello there", instructions="be brief") as s:
        assert s.get_final_response().output_text == REPLY
    assert [(f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) for f in rec.finished] == [
        (PROMPT_TOKENS, COMPLETION_TOKENS, 2, True)] * 3


def test_a_cut_responses_stream_is_incomplete(fake: Any, rec: RecordingRecorder) -> None:
    stream = openai_client(fake).responses.create(model="m", input="x [[cut-stream]]", stream=True)
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    assert (rec.only.complete, rec.only.output_tokens, rec.only.input_tokens) == (False, None, None)


def test_embeddings_record_prompt_tokens(fake: Any, rec: RecordingRecorder) -> None:
    r = openai_client(fake).embeddings.create(model="text-embedding-3-small", input=["abcdefgh", "ijkl"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 8
    f = rec.only
    assert (f.model, f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) == (
        "text-embedding-3-small", 12 // 4 + 1, 0, 0, True)


# --- anthropic ----------------------------------------------------------------------------

def test_anthropic_usage_maps_cache_fields(fake: Any, rec: RecordingRecorder) -> None:
    fake.config(usage={"prompt_tokens": 1000, "cached_tokens": 600, "cache_creation_tokens": 100})
    msg = anthropic_client(fake).messages.create(model="claude-sonnet-4", max_tokens=64, system="be brief",
                                                 messages=MESSAGES[1:])
    assert isinstance(msg, anthropic.types.Message) and msg.content[0].text == REPLY
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens,
            msg.usage.cache_creation_input_tokens) == (300, 600, 100)
    f = rec.only
    # input = input_tokens + cache_read + cache_creation; cached = cache_read.
    assert (f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) == (1000, COMPLETION_TOKENS, 600, True)
    assert rec.started[0].estimated_input_tokens == estimate_input_tokens(MESSAGES[1:], "be brief")


def test_anthropic_streams(fake: Any, rec: RecordingRecorder) -> None:
    claude = anthropic_client(fake)
    with claude.messages.stream(model="claude-sonnet-4", max_tokens=64, system="be brief",
                                messages=MESSAGES[1:]) as stream:
        assert rec.started and rec.started[0].fake_requests_before == 0  # checked at enter, before the request
        text = "".join(stream.text_stream)
    assert text == REPLY
    events = list(claude.messages.create(model="claude-sonnet-4", max_tokens=64, system="be brief",
                                         messages=MESSAGES[1:], stream=True))
    assert [e.type for e in events][0] == "message_start" and events[-1].type == "message_stop"
    assert [(f.model, f.input_tokens, f.output_tokens, f.cached_tokens, f.complete) for f in rec.finished] == [
        ("claude-sonnet-4", PROMPT_TOKENS, COMPLETION_TOKENS, 0, True)] * 2


def test_a_cut_anthropic_stream_keeps_the_known_input_and_leaves_output_unknown(
        fake: Any, rec: RecordingRecorder) -> None:
    claude = anthropic_client(fake)
    with pytest.raises(Exception) as err:
        with claude.messages.stream(model="claude-sonnet-4", max_tokens=64,
                                    messages=[{"role": "user", "content": "go [[cut-stream]]"}],
                                    extra_headers={"X-Fake-Cut-After": "3"}) as stream:
            for _ in stream:
                pass
    assert "closed" in str(err.value).lower() or isinstance(err.value, anthropic.APIConnectionError)
    f = rec.only
    assert f.complete is False and f.output_tokens is None
    assert f.input_tokens == len("go [[cut-stream]]") // 4 + 1  # message_start had arrived


# --- async clients --------------------------------------------------------------------------

def test_async_clients(fake: Any, rec: RecordingRecorder) -> None:
    async def main() -> None:
        client, claude = async_openai_client(fake), async_anthropic_client(fake)
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert r.choices[0].message.content == REPLY
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == REPLY
        r2 = await client.responses.create(model="gpt-4o-mini", input="hello there", instructions="be brief")
        assert r2.output_text == REPLY
        msg = await claude.messages.create(model="claude-sonnet-4", max_tokens=64, system="be brief",
                                           messages=MESSAGES[1:])
        assert msg.content[0].text == REPLY
        async with claude.messages.stream(model="claude-sonnet-4", max_tokens=64, system="be brief",
                                          messages=MESSAGES[1:]) as s:
            assert (await s.get_final_message()).content[0].text == REPLY
        cut = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[[cut-stream]]"}], stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in cut:
                pass
        raw = await claude.messages.with_raw_response.create(model="claude-sonnet-4", max_tokens=64,
                                                             system="be brief", messages=MESSAGES[1:])
        assert (await raw.parse()).content[0].text == REPLY  # anthropic's async raw parse is a coroutine

    asyncio.run(main())
    assert (rec.finished[6].output_tokens, rec.finished[6].complete) == (COMPLETION_TOKENS, True)
    del rec.finished[6], rec.started[6]
    assert [(f.input_tokens, f.output_tokens, f.complete) for f in rec.finished[:5]] == [
        (PROMPT_TOKENS, COMPLETION_TOKENS, True)] * 5
    assert (rec.finished[5].complete, rec.finished[5].output_tokens) == (False, None)
    assert len(rec.started) == 6
    assert rec.async_checks == 7  # every async call's budget check was awaited


# --- the wrapper itself ---------------------------------------------------------------------

def test_instrument_is_idempotent_and_follows_copies(fake: Any, rec: RecordingRecorder) -> None:
    client = openai_client(fake)
    create = client.chat.completions.create
    assert flowrun.instrument(client) is client and client.chat.completions.create is create
    flowrun.instrument(client.with_options(timeout=30)).chat.completions.create(model="m", messages=MESSAGES)
    client.with_options(timeout=30).chat.completions.create(model="m", messages=MESSAGES)
    assert len(rec.finished) == 2
    assert callable(flowrun.instrument)  # the package attribute, even once the submodule is imported


def test_instrument_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="openai or anthropic client"):
        flowrun.instrument(object())


# --- LiteLLM --------------------------------------------------------------------------------

def test_litellm_callback_records_the_reported_cost(fake: Any, rec: RecordingRecorder) -> None:
    import datetime as dt

    cb = LiteLLMCallback()
    kwargs = {"litellm_call_id": "c1", "model": "gpt-4o-mini", "messages": MESSAGES, "response_cost": 0.00042}
    cb.log_pre_api_call("gpt-4o-mini", MESSAGES, kwargs)
    assert len(rec.started) == 1 and rec.finished == []
    response = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                                                  "prompt_tokens_details": {"cached_tokens": 3}}}
    t0 = dt.datetime(2026, 1, 1)
    cb.log_success_event(kwargs, response, t0, t0 + dt.timedelta(milliseconds=250))
    f = rec.only
    assert (f.input_tokens, f.output_tokens, f.cached_tokens, f.cost_usd, f.complete) == (11, 7, 3, 0.00042, True)
    assert f.latency_ms == pytest.approx(250)
    # Failure, and a success without a pre-call hook (async path).
    cb.log_pre_api_call("m", MESSAGES, {"litellm_call_id": "c2"})
    cb.log_failure_event({"litellm_call_id": "c2", "model": "m", "exception": TimeoutError("no answer")}, None, t0, t0)
    asyncio.run(cb.async_log_success_event(
        {"litellm_call_id": "c3", "model": "m", "standard_logging_object": {"response_cost": 0.5}},
        {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}, t0, t0))
    # The failed call is finished failed (no response: unknown cost, outside the totals), as every path does.
    assert rec.failed == [(2, "TimeoutError: no answer")]
    assert [(f.complete, f.cost_usd) for f in rec.finished[1:]] == [(True, 0.5)]
