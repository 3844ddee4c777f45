"""The project's fake OpenAI-compatible server (tests/support/fake_llm_server.py) as a pytest resource."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]


class FakeLlm:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="flowrun-pytest-llm-")
        port_file = f"{self.dir}/port"
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests/support/fake_llm_server.py"), "--port", "0",
                                      "--port-file", port_file], stdout=subprocess.DEVNULL,
                                     stderr=open(f"{self.dir}/log", "wb"))
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake LLM server did not start: {Path(self.dir, 'log').read_text()}")
            time.sleep(0.02)
        self.port = int(Path(port_file).read_text())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def reset(self) -> None:
        self._call("POST", "/__fake/reset", {})

    def config(self, **settings: Any) -> None:
        self._call("POST", "/__fake/config", settings)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/__fake/stats")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
