"""Runs Python agents (sdk/python/tests/agents) as real processes with the controller's environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .postgres import PostgresServer, clean_env

TESTS = Path(__file__).resolve().parents[1]
AGENTS = TESTS / "agents"
REPO = TESTS.parents[2]
BUILD = Path(os.environ.get("FLOWRUN_BUILD_DIR", REPO / "build"))
FLOWRUNCTL = BUILD / "runtime-lib" / "flowrunctl"
PRICES = REPO / "examples" / "prices.yaml"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    message: Optional[dict[str, Any]]  # the termination message, parsed


@dataclass
class Run:
    """One FlowRun's identity and database; `start()` launches an execution (attempt += 1)."""

    pg: PostgresServer
    database: str
    target: str  # module:function under tests/agents
    llm_url: str = ""
    uid: str = field(default_factory=lambda: "r-" + uuid.uuid4().hex[:12])
    parameters: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    attempt: int = 0
    cwd: Path = AGENTS
    command: Optional[list[str]] = None  # default: python -m flowrun run <target>
    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="flowrun-pytest-run-"))

    @property
    def url(self) -> str:
        return self.pg.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env()
        pythonpath = [p for p in (os.environ.get("PYTHONPATH", ""), str(self.cwd)) if p]
        env.update({
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "FLOWRUN_RUN_UID": self.uid,
            "FLOWRUN_RUN_NAME": self.uid,
            "FLOWRUN_RUN_NAMESPACE": "default",
            "FLOWRUN_FLOW": "pytest",
            "FLOWRUN_ATTEMPT": str(self.attempt),
            "FLOWRUN_PARAMETERS": json.dumps(self.parameters),
            "FLOWRUN_DATABASE_URL": self.url,
            "FLOWRUN_PRICE_TABLE": str(PRICES),
            "FLOWRUN_TERMINATION_MESSAGE_PATH": f"{self.dir}/termination-{self.attempt}",
            "FLOWRUN_DB_CONNECT_ATTEMPTS": "3",
            "OPENAI_BASE_URL": self.llm_url,
            "OPENAI_API_KEY": "sk-test",
            "AGENT_MARKER_DIR": self.dir,
        })
        env.update(self.extra_env)
        env.update(extra)
        return env

    def start(self, **extra: str) -> subprocess.Popen[str]:
        self.attempt += 1
        argv = self.command or [sys.executable, "-m", "flowrun", "run", self.target]
        return subprocess.Popen(argv, cwd=str(self.cwd),
                                env=self.env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, proc: subprocess.Popen[str], timeout: float = 120) -> Result:
        out, err = proc.communicate(timeout=timeout)
        path = Path(self.dir, f"termination-{self.attempt}")
        msg = json.loads(path.read_text()) if path.exists() and path.read_text() else None
        return Result(proc.returncode, out, err, msg)

    def execute(self, timeout: float = 120, **extra: str) -> Result:
        return self.finish(self.start(**extra), timeout)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(FLOWRUNCTL), "--db", self.url, *args], capture_output=True, text=True,
                              env=clean_env())

    def show(self) -> dict[str, Any]:
        r = self.ctl("--json", "show", self.uid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def answer(self, wait: str, answer: Any) -> subprocess.CompletedProcess[str]:
        return self.ctl("answer", self.uid, wait, json.dumps(answer))

    def sql(self, statement: str, **variables: str) -> str:
        return self.pg.psql(self.database, statement, uid=self.uid, **variables)

    def checkpoints(self) -> list[tuple[str, int, str, str]]:
        """(name, occurrence, kind, status) of every checkpoint row, by name and occurrence."""
        rows = self.sql("SELECT name, occurrence, kind, status FROM flowrun.checkpoints "
                        "WHERE run_uid = :'uid' ORDER BY name, occurrence")
        return [(r.split("|")[0], int(r.split("|")[1]), r.split("|")[2], r.split("|")[3])
                for r in rows.splitlines() if r]

    def marker(self, name: str) -> bool:
        return Path(self.dir, name).exists()


def kill(proc: subprocess.Popen[str]) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
