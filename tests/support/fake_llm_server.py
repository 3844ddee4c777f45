#!/usr/bin/env python3
"""A deterministic fake of the paid LLM APIs (OpenAI and Anthropic) for tests.

Usage: fake_llm_server.py --port 0 --port-file F [--api-key K]

Listens on 127.0.0.1 (port 0: the kernel picks one) and, once listening,
writes the bound port to F atomically (tmp file + rename), so a reader never
sees a partial number. Exits cleanly on SIGTERM or SIGINT. Python stdlib only
(the demo scripts run it with the system python3).

Model endpoints (all counted, all subject to --api-key and injected failures)
  POST /v1/chat/completions  OpenAI chat completions. The reply content is
      "reply to: <last user message content>" truncated to 200 characters.
      Usage: prompt_tokens = (total characters of all message contents) // 4
      + 1, completion_tokens = len(content) // 4 + 1, cached_tokens = 0;
      each can be overridden via /__fake/config.
      With "stream": true the answer is Server-Sent Events: a role chunk, the
      content in up to 3 delta chunks, a chunk with finish_reason "stop", then
      - only when stream_options.include_usage is true - a chunk with
      "choices": [] and the usage, then "data: [DONE]".
  POST /v1/responses  OpenAI Responses. "input" (a string or a list of input
      items) plays the role of the messages, "instructions" that of a system
      message; the same reply text and token rule. usage = {input_tokens,
      input_tokens_details.cached_tokens, output_tokens, total_tokens}.
      "stream": true gives the event sequence response.created ...
      response.output_text.delta ... response.completed (usage in the last).
  POST /v1/embeddings  OpenAI embeddings: one deterministic 8-float vector per
      input (float list, or base64 of little-endian float32 when
      "encoding_format": "base64"); usage prompt_tokens = chars // 4 + 1.
  POST /v1/messages  Anthropic Messages ("system" counts as a message). The
      API key is read from "x-api-key" (or "Authorization: Bearer"). Usage:
      with P prompt tokens (rule above, or the prompt_tokens override), cached
      C (cached_tokens) and written-to-cache W (cache_creation_tokens):
      cache_read_input_tokens = C, cache_creation_input_tokens = W,
      input_tokens = max(P - C - W, 0), output_tokens as completion_tokens.
      "stream": true gives message_start (input usage), content_block_start,
      ping, content_block_delta x up to 3, content_block_stop, message_delta
      (output usage), message_stop.
  Auth failures answer 401, malformed bodies 400, injected failures the
  configured status - each in the provider's error shape.

Cutting a stream: a streaming request whose last user message contains the
marker "[[cut-stream]]", or that carries the header "X-Fake-Cut-After: N",
has its connection closed after N events (marker: 2) without the end of the
chunked body, so a client sees a broken stream (never the usage event). The
request still counts as succeeded and is also counted in "cut".

Admin endpoints (no API key needed)
  GET  /__fake/stats     {"total", "succeeded", "failed", "cut", "by_prompt",
      "by_model", "by_endpoint"}. total counts every model request received
      (including failed ones); by_prompt (keyed by the full last user
      message; for embeddings the inputs joined by newlines), by_model and
      by_endpoint ("chat.completions", "responses", "embeddings", "messages")
      count only successful ones; failed counts requests answered with an
      error (injected failures, 401, 400); cut counts cut streams.
  GET  /__fake/requests  the last 200 model request bodies, oldest first, each
      {"path", "body": <json or raw text>, "authorization_present": bool}.
  POST /__fake/reset     zero all counters, forget requests, clear config.
  POST /__fake/config    merge JSON settings into the current config:
      fail_next (int)    the next N model requests fail ...
      fail_status (int)  ... with this HTTP status (default 500) ...
      retry_after (num)  ... and this Retry-After header if given.
      latency_ms (num)   delay before answering every model request.
      chunk_delay_ms (num) delay between the events of a stream.
      usage (object)     prompt_tokens / completion_tokens / cached_tokens /
                         cache_creation_tokens overrides; null removes one.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_CONTENT = 200
MAX_RECORDED_REQUESTS = 200
CUT_MARKER = "[[cut-stream]]"
CUT_MARKER_EVENTS = 2
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens")
EMBEDDING_DIM = 8


def _text_of(content):
    """Text of a message content: a string or a list of content parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def _split3(text):
    """The text in up to 3 non-empty pieces (the deltas of a stream)."""
    if not text:
        return []
    n = max(1, (len(text) + 2) // 3)
    return [text[i:i + n] for i in range(0, len(text), n)]


class Prompt:
    """What a model request asks: the texts that count as prompt, the last user text."""

    def __init__(self, texts, last_user):
        self.texts = texts
        self.last_user = last_user

    @property
    def chars(self):
        return sum(len(t) for t in self.texts)


def _chat_prompt(req):
    msgs = req.get("messages")
    if not isinstance(msgs, list):
        return None
    last_user = ""
    texts = []
    for m in msgs:
        if isinstance(m, dict):
            texts.append(_text_of(m.get("content")))
            if m.get("role") == "user":
                last_user = _text_of(m.get("content"))
    return Prompt(texts, last_user)


def _responses_prompt(req):
    inp = req.get("input")
    texts = []
    if isinstance(req.get("instructions"), str):
        texts.append(req["instructions"])
    if isinstance(inp, str):
        texts.append(inp)
        return Prompt(texts, inp)
    if not isinstance(inp, list):
        return None
    last_user = ""
    for item in inp:
        if isinstance(item, dict):
            text = _text_of(item.get("content"))
            texts.append(text)
            if item.get("role", "user") == "user":
                last_user = text
        elif isinstance(item, str):
            texts.append(item)
            last_user = item
    return Prompt(texts, last_user)


def _embeddings_prompt(req):
    inp = req.get("input")
    if isinstance(inp, str):
        inputs = [inp]
    elif isinstance(inp, list) and all(isinstance(x, str) for x in inp) and inp:
        inputs = inp
    else:
        return None
    return Prompt(inputs, "\n".join(inputs))


def _messages_prompt(req):
    p = _chat_prompt(req)
    if p is None:
        return None
    system = req.get("system")
    if system is not None:
        p.texts.insert(0, _text_of(system))
    return p


# endpoint name -> (prompt parser, error style)
ENDPOINTS = {
    "/v1/chat/completions": ("chat.completions", _chat_prompt),
    "/v1/responses": ("responses", _responses_prompt),
    "/v1/embeddings": ("embeddings", _embeddings_prompt),
    "/v1/messages": ("messages", _messages_prompt),
}
BAD_REQUEST = {
    "chat.completions": "request body must be a JSON object with a messages array",
    "responses": "request body must be a JSON object with an input string or array",
    "embeddings": "request body must be a JSON object with an input string or array of strings",
    "messages": "request body must be a JSON object with a messages array",
}


class State:
    """Counters and config shared by all handler threads; one lock guards all."""

    def __init__(self, api_key):
        self.api_key = api_key
        self.lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self):
        self.total = 0
        self.failed = 0
        self.cut = 0
        self.by_prompt = {}
        self.by_model = {}
        self.by_endpoint = {}
        self.requests = []
        self.sequence = 0
        self.config = {"fail_next": 0, "fail_status": 500, "retry_after": None,
                       "latency_ms": 0, "chunk_delay_ms": 0, "usage": {}}

    def reset(self):
        with self.lock:
            self._reset_locked()

    def stats(self):
        with self.lock:
            return {"total": self.total, "succeeded": self.total - self.failed,
                    "failed": self.failed, "cut": self.cut, "by_prompt": dict(self.by_prompt),
                    "by_model": dict(self.by_model), "by_endpoint": dict(self.by_endpoint)}

    def configure(self, cfg):
        if not isinstance(cfg, dict):
            raise ValueError("config must be a JSON object")
        with self.lock:
            for key, value in cfg.items():
                if key == "usage":
                    if value is None:
                        self.config["usage"] = {}
                        continue
                    if not isinstance(value, dict):
                        raise ValueError("usage must be an object")
                    for k, v in value.items():
                        if k not in USAGE_FIELDS:
                            raise ValueError("unknown usage field: " + k)
                        if v is None:
                            self.config["usage"].pop(k, None)
                        else:
                            self.config["usage"][k] = int(v)
                elif key in ("fail_next", "fail_status"):
                    self.config[key] = int(value)
                elif key in ("retry_after", "latency_ms", "chunk_delay_ms"):
                    self.config[key] = value if value is None else float(value)
                else:
                    raise ValueError("unknown config field: " + key)
            return dict(self.config, usage=dict(self.config["usage"]))


class StreamCut(Exception):
    """The planned end of a cut stream: the connection is dropped mid-body."""


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients can keep connections alive; every response carries
    # Content-Length or is chunked, which that requires.
    protocol_version = "HTTP/1.1"
    server_version = "flowrun-fake-llm/2"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    @property
    def state(self):
        return self.server.state

    # --- plumbing -------------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status, message, err_type, code=None, headers=None, anthropic=False):
        if anthropic:
            body = {"type": "error", "error": {"type": err_type, "message": message}}
        else:
            body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        self._send_json(status, body, headers)

    # --- routes ---------------------------------------------------------------

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/__fake/stats":
            self._send_json(200, self.state.stats())
        elif path == "/__fake/requests":
            with self.state.lock:
                recorded = list(self.state.requests)
            self._send_json(200, recorded)
        elif path == "/__fake/health":
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, "no route " + path, "invalid_request_error", "not_found")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self._read_body()
        if path in ENDPOINTS:
            self._model_request(path, body)
        elif path == "/__fake/reset":
            self.state.reset()
            self._send_json(200, {"ok": True})
        elif path == "/__fake/config":
            try:
                cfg = self.state.configure(json.loads(body.decode("utf-8") or "{}"))
            except (ValueError, TypeError) as e:
                self._send_error(400, "bad config: %s" % e, "invalid_request_error")
                return
            self._send_json(200, cfg)
        else:
            self._send_error(404, "no route " + path, "invalid_request_error", "not_found")

    def _model_request(self, path, raw):
        st = self.state
        endpoint, parse_prompt = ENDPOINTS[path]
        anthropic = endpoint == "messages"
        auth = self.headers.get("Authorization")
        key = self.headers.get("x-api-key") if anthropic else None
        presented = key if key is not None else (auth[len("Bearer "):] if auth and auth.startswith("Bearer ") else None)
        try:
            req = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            req = None
        prompt = parse_prompt(req) if isinstance(req, dict) else None

        # Decide the outcome under the lock, then sleep/answer outside it so
        # concurrent requests are really concurrent.
        with st.lock:
            st.total += 1
            st.sequence += 1
            seq = st.sequence
            st.requests.append({"path": path,
                                "body": req if req is not None else raw.decode("utf-8", "replace"),
                                "authorization_present": auth is not None or key is not None})
            del st.requests[:-MAX_RECORDED_REQUESTS]
            latency = st.config["latency_ms"] or 0
            chunk_delay = st.config["chunk_delay_ms"] or 0
            failure = None
            if st.api_key and presented != st.api_key:
                failure = "auth"
            elif prompt is None:
                failure = "bad_request"
            elif st.config["fail_next"] > 0:
                st.config["fail_next"] -= 1
                failure = "injected"
                fail_status = st.config["fail_status"]
                retry_after = st.config["retry_after"]
            if failure is not None:
                st.failed += 1
            usage_override = dict(st.config["usage"])

        if latency > 0:
            time.sleep(latency / 1000.0)

        if failure == "auth":
            if anthropic:
                self._send_error(401, "invalid x-api-key", "authentication_error", anthropic=True)
            else:
                self._send_error(401, "Incorrect API key provided.", "invalid_request_error",
                                 "invalid_api_key")
            return
        if failure == "bad_request":
            self._send_error(400, BAD_REQUEST[endpoint], "invalid_request_error", anthropic=anthropic)
            return
        if failure == "injected":
            headers = {}
            if retry_after is not None:
                ra = retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            if fail_status == 429:
                self._send_error(429, "Rate limit reached (injected by fake LLM).",
                                 "rate_limit_error" if anthropic else "requests",
                                 "rate_limit_exceeded", headers, anthropic)
            else:
                self._send_error(fail_status, "Injected failure from fake LLM.",
                                 "api_error" if anthropic else "server_error", None, headers, anthropic)
            return

        model = req.get("model") if isinstance(req.get("model"), str) else ""
        content = ("reply to: " + prompt.last_user)[:MAX_CONTENT]
        usage = {
            "prompt": usage_override.get("prompt_tokens", prompt.chars // 4 + 1),
            "completion": usage_override.get("completion_tokens", len(content) // 4 + 1),
            "cached": usage_override.get("cached_tokens", 0),
            "cache_creation": usage_override.get("cache_creation_tokens", 0),
        }
        with st.lock:
            st.by_prompt[prompt.last_user] = st.by_prompt.get(prompt.last_user, 0) + 1
            st.by_model[model] = st.by_model.get(model, 0) + 1
            st.by_endpoint[endpoint] = st.by_endpoint.get(endpoint, 0) + 1

        ctx = {"seq": seq, "model": model, "content": content, "usage": usage, "req": req,
               "prompt": prompt}
        if endpoint == "embeddings":
            self._send_json(200, _embeddings_reply(ctx))
            return
        if not req.get("stream"):
            reply = {"chat.completions": _chat_reply, "responses": _responses_reply,
                     "messages": _messages_reply}[endpoint](ctx)
            self._send_json(200, reply)
            return
        events = {"chat.completions": _chat_events, "responses": _responses_events,
                  "messages": _messages_events}[endpoint](ctx)
        self._stream(events, self._cut_after(prompt), chunk_delay)

    def _cut_after(self, prompt):
        header = self.headers.get("X-Fake-Cut-After")
        if header is not None:
            try:
                return max(0, int(header))
            except ValueError:
                return CUT_MARKER_EVENTS
        return CUT_MARKER_EVENTS if CUT_MARKER in prompt.last_user else None

    def _stream(self, events, cut_after, chunk_delay_ms):
        """Sends (event name | None, data) pairs as SSE over a chunked body."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, (name, data) in enumerate(events):
                if cut_after is not None and i >= cut_after:
                    raise StreamCut()
                if i and chunk_delay_ms > 0:
                    time.sleep(chunk_delay_ms / 1000.0)
                text = "" if name is None else "event: %s\n" % name
                text += "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
                payload = text.encode("utf-8")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except StreamCut:
            with self.state.lock:
                self.state.cut += 1
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream


# --- OpenAI chat completions ---------------------------------------------------

def _chat_usage(u):
    return {"prompt_tokens": u["prompt"], "completion_tokens": u["completion"],
            "total_tokens": u["prompt"] + u["completion"],
            "prompt_tokens_details": {"cached_tokens": u["cached"]}}


def _chat_reply(ctx):
    return {
        "id": "chatcmpl-fake-%d" % ctx["seq"],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ctx["model"],
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": ctx["content"]},
                     "finish_reason": "stop"}],
        "usage": _chat_usage(ctx["usage"]),
    }


def _chat_events(ctx):
    base = {"id": "chatcmpl-fake-%d" % ctx["seq"], "object": "chat.completion.chunk",
            "created": int(time.time()), "model": ctx["model"]}
    include_usage = bool((ctx["req"].get("stream_options") or {}).get("include_usage"))

    def chunk(delta, finish=None):
        c = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        if include_usage:
            c["usage"] = None
        return (None, c)

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _split3(ctx["content"])]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append((None, dict(base, choices=[], usage=_chat_usage(ctx["usage"]))))
    events.append((None, "[DONE]"))
    return events


# --- OpenAI responses ----------------------------------------------------------

def _responses_usage(u):
    return {"input_tokens": u["prompt"], "input_tokens_details": {"cached_tokens": u["cached"]},
            "output_tokens": u["completion"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u["prompt"] + u["completion"]}


def _response_object(ctx, status, text, usage):
    msg_id = "msg_fake_%d" % ctx["seq"]
    output = []
    if text is not None:
        output = [{"type": "message", "id": msg_id, "status": status, "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": [],
                                "logprobs": []}]}]
    return {"id": "resp_fake_%d" % ctx["seq"], "object": "response", "created_at": int(time.time()),
            "status": status, "model": ctx["model"], "output": output, "error": None,
            "incomplete_details": None, "instructions": ctx["req"].get("instructions"),
            "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto",
            "tools": [], "top_p": 1.0, "usage": usage}


def _responses_reply(ctx):
    return _response_object(ctx, "completed", ctx["content"], _responses_usage(ctx["usage"]))


def _responses_events(ctx):
    msg_id = "msg_fake_%d" % ctx["seq"]
    seq = iter(range(1 << 30))
    events = []

    def ev(kind, **fields):
        events.append((kind, dict(fields, type=kind, sequence_number=next(seq))))

    ev("response.created", response=_response_object(ctx, "in_progress", None, None))
    ev("response.in_progress", response=_response_object(ctx, "in_progress", None, None))
    ev("response.output_item.added", output_index=0,
       item={"type": "message", "id": msg_id, "status": "in_progress", "role": "assistant",
             "content": []})
    ev("response.content_part.added", item_id=msg_id, output_index=0, content_index=0,
       part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    for piece in _split3(ctx["content"]):
        ev("response.output_text.delta", item_id=msg_id, output_index=0, content_index=0,
           delta=piece, logprobs=[])
    ev("response.output_text.done", item_id=msg_id, output_index=0, content_index=0,
       text=ctx["content"], logprobs=[])
    ev("response.content_part.done", item_id=msg_id, output_index=0, content_index=0,
       part={"type": "output_text", "text": ctx["content"], "annotations": [], "logprobs": []})
    ev("response.output_item.done", output_index=0,
       item={"type": "message", "id": msg_id, "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": ctx["content"], "annotations": [],
                          "logprobs": []}]})
    ev("response.completed", response=_responses_reply(ctx))
    return events


# --- OpenAI embeddings ---------------------------------------------------------

def _embeddings_reply(ctx):
    base64_format = ctx["req"].get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(ctx["prompt"].texts):
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        vector = [(b - 128) / 128.0 for b in digest[:EMBEDDING_DIM]]
        if base64_format:
            packed = struct.pack("<%df" % EMBEDDING_DIM, *vector)
            embedding = base64.b64encode(packed).decode("ascii")
        else:
            embedding = vector
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    prompt = ctx["usage"]["prompt"]
    return {"object": "list", "data": data, "model": ctx["model"],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


# --- Anthropic messages --------------------------------------------------------

def _anthropic_usage(u, output_tokens):
    cached, creation = u["cached"], u["cache_creation"]
    return {"input_tokens": max(u["prompt"] - cached - creation, 0),
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": creation,
            "output_tokens": output_tokens}


def _message_object(ctx, content, stop_reason, usage):
    return {"id": "msg_fake_%d" % ctx["seq"], "type": "message", "role": "assistant",
            "model": ctx["model"], "content": content, "stop_reason": stop_reason,
            "stop_sequence": None, "usage": usage}


def _messages_reply(ctx):
    return _message_object(ctx, [{"type": "text", "text": ctx["content"]}], "end_turn",
                           _anthropic_usage(ctx["usage"], ctx["usage"]["completion"]))


def _messages_events(ctx):
    start_usage = _anthropic_usage(ctx["usage"], 1)
    events = [("message_start", {"type": "message_start",
                                 "message": _message_object(ctx, [], None, start_usage)}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("ping", {"type": "ping"})]
    for piece in _split3(ctx["content"]):
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": ctx["usage"]["completion"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class Server(ThreadingHTTPServer):
    daemon_threads = True  # do not wait for in-flight requests on shutdown
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--api-key", default="")
    args = ap.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.api_key)

    def stop(signum, frame):
        # Raised in the main thread, which unwinds serve_forever().
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tmp = args.port_file + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)

    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
