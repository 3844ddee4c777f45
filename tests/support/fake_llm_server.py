#!/usr/bin/env python3
"""A deterministic, OpenAI-compatible chat-completions server for tests.

Usage: fake_llm_server.py --port 0 --port-file F [--api-key K]

Listens on 127.0.0.1 (port 0: the kernel picks one) and, once listening,
writes the bound port to F atomically (tmp file + rename), so a reader never
sees a partial number. Exits cleanly on SIGTERM or SIGINT. Python stdlib only.

Endpoints
  POST /v1/chat/completions  OpenAI chat-completions (non-streaming).
      Requires "Authorization: Bearer K" when --api-key is given (401 with an
      OpenAI-style error body otherwise). The reply content is
      "reply to: <last user message content>" truncated to 200 characters.
      Usage: prompt_tokens = (total characters of all message contents) // 4
      + 1, completion_tokens = len(content) // 4 + 1, cached_tokens = 0;
      each can be overridden via /__fake/config.
  GET  /__fake/stats     {"total", "succeeded", "failed", "by_prompt", "by_model"}
      total counts every chat request received (including failed ones);
      by_prompt (keyed by the full last user message) and by_model count only
      successful ones; failed counts requests answered with an error
      (injected failures, 401, 400).
  GET  /__fake/requests  the last 200 chat request bodies, oldest first, each
      {"body": <json or raw text>, "authorization_present": bool}.
  POST /__fake/reset     zero all counters, forget requests, clear config.
  POST /__fake/config    merge JSON settings into the current config:
      fail_next (int)    the next N chat requests fail ...
      fail_status (int)  ... with this HTTP status (default 500) ...
      retry_after (num)  ... and this Retry-After header if given.
      latency_ms (num)   delay before answering every chat request.
      usage (object)     prompt_tokens / completion_tokens / cached_tokens
                         overrides; null removes the override.
Admin endpoints need no API key.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_CONTENT = 200
MAX_RECORDED_REQUESTS = 200


def _text_of(content):
    """Text of a message content: a string or a list of OpenAI content parts."""
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


class State:
    """Counters and config shared by all handler threads; one lock guards all."""

    def __init__(self, api_key):
        self.api_key = api_key
        self.lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self):
        self.total = 0
        self.failed = 0
        self.by_prompt = {}
        self.by_model = {}
        self.requests = []
        self.sequence = 0
        self.config = {"fail_next": 0, "fail_status": 500, "retry_after": None,
                       "latency_ms": 0, "usage": {}}

    def reset(self):
        with self.lock:
            self._reset_locked()

    def stats(self):
        with self.lock:
            return {"total": self.total, "succeeded": self.total - self.failed,
                    "failed": self.failed, "by_prompt": dict(self.by_prompt),
                    "by_model": dict(self.by_model)}

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
                        if k not in ("prompt_tokens", "completion_tokens", "cached_tokens"):
                            raise ValueError("unknown usage field: " + k)
                        if v is None:
                            self.config["usage"].pop(k, None)
                        else:
                            self.config["usage"][k] = int(v)
                elif key in ("fail_next", "fail_status"):
                    self.config[key] = int(value)
                elif key in ("retry_after", "latency_ms"):
                    self.config[key] = value if value is None else float(value)
                else:
                    raise ValueError("unknown config field: " + key)
            return dict(self.config, usage=dict(self.config["usage"]))


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients can keep connections alive; every response carries
    # Content-Length, which that requires.
    protocol_version = "HTTP/1.1"
    server_version = "flowrun-fake-llm/1"

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

    def _send_error(self, status, message, err_type, code=None, headers=None):
        self._send_json(status, {"error": {"message": message, "type": err_type,
                                           "param": None, "code": code}}, headers)

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
        if path == "/v1/chat/completions":
            self._chat(body)
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

    def _chat(self, raw):
        st = self.state
        auth = self.headers.get("Authorization")
        try:
            req = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            req = None

        # Decide the outcome under the lock, then sleep/answer outside it so
        # concurrent requests are really concurrent.
        with st.lock:
            st.total += 1
            st.sequence += 1
            seq = st.sequence
            st.requests.append({"body": req if req is not None else raw.decode("utf-8", "replace"),
                                "authorization_present": auth is not None})
            del st.requests[:-MAX_RECORDED_REQUESTS]
            latency = st.config["latency_ms"] or 0
            failure = None
            if st.api_key and auth != "Bearer " + st.api_key:
                failure = "auth"
            elif not isinstance(req, dict) or not isinstance(req.get("messages"), list):
                failure = "bad_request"
            elif req.get("stream"):
                failure = "stream"
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
            self._send_error(401, "Incorrect API key provided.", "invalid_request_error",
                             "invalid_api_key")
            return
        if failure == "bad_request":
            self._send_error(400, "request body must be a JSON object with a messages array",
                             "invalid_request_error")
            return
        if failure == "stream":
            self._send_error(400, "the fake LLM does not support stream=true",
                             "invalid_request_error")
            return
        if failure == "injected":
            headers = {}
            if retry_after is not None:
                ra = retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            if fail_status == 429:
                self._send_error(429, "Rate limit reached (injected by fake LLM).", "requests",
                                 "rate_limit_exceeded", headers)
            else:
                self._send_error(fail_status, "Injected failure from fake LLM.", "server_error",
                                 None, headers)
            return

        messages = req["messages"]
        last_user = ""
        for m in messages:
            if isinstance(m, dict) and m.get("role") == "user":
                last_user = _text_of(m.get("content"))
        content = ("reply to: " + last_user)[:MAX_CONTENT]
        prompt_chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt_tokens = usage_override.get("prompt_tokens", prompt_chars // 4 + 1)
        completion_tokens = usage_override.get("completion_tokens", len(content) // 4 + 1)
        cached_tokens = usage_override.get("cached_tokens", 0)
        model = req.get("model") if isinstance(req.get("model"), str) else ""

        with st.lock:
            st.by_prompt[last_user] = st.by_prompt.get(last_user, 0) + 1
            st.by_model[model] = st.by_model.get(model, 0) + 1

        self._send_json(200, {
            "id": "chatcmpl-fake-%d" % seq,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens,
                      "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": cached_tokens}},
        })


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
