"""A private PostgreSQL server for one pytest session (the Python twin of
tests/support/postgres_server.cc): initdb in a temporary directory, fsync off,
listening on 127.0.0.1 only, one database per test. As root, initdb and
postgres run as the `postgres` system user (PostgreSQL refuses root), started directly as that
user so that stopping it (SIGQUIT, immediate shutdown) reaches the postmaster.

SQL from the tests goes through psql with variables (``-v name=value`` and
``:'name'`` in the statement), never by pasting values into SQL text.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

PG_ENV_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE",
               "PGOPTIONS", "PGDATA", "PGSSLMODE")
SUPERUSER = "flowrun"


def _bindir() -> str:
    env = os.environ.get("FLOWRUN_PG_BINDIR")
    if env:
        return env
    found = sorted((d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.access(f"{d}/initdb", os.X_OK)),
                   key=lambda d: int(Path(d).parent.name))
    if found:
        return found[-1]
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV_VARS}
    env.update(LC_ALL="C", LANG="C")
    return env


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = tempfile.mkdtemp(prefix="flowrun-pytest-pg-")
        os.chmod(self.root, 0o755)
        self.data = f"{self.root}/data"
        self.as_root = os.geteuid() == 0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        self._next_db = 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _user(self) -> dict[str, object]:
        # As root, run as `postgres` directly (not through runuser), so signals reach postgres itself.
        return {"user": "postgres", "group": "postgres", "extra_groups": []} if self.as_root else {}

    def start(self) -> None:
        subprocess.run([f"{self.bindir}/initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"],
                       cwd=self.root, env=clean_env(), check=True, capture_output=True, **self._user())
        conf = (f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\njit = off\n")
        subprocess.run(["sh", "-c", f"cat >> {self.data}/postgresql.conf"], input=conf.encode(),
                       check=True, cwd=self.root, **self._user())
        for _ in range(5):
            self.port = _free_port()
            log = open(f"{self.root}/postgres.log", "ab")
            self.proc = subprocess.Popen([f"{self.bindir}/postgres", "-D", self.data, "-p", str(self.port)],
                                         cwd=self.root, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                                         **self._user())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                r = subprocess.run([f"{self.bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", SUPERUSER, "-d", "postgres", "-t", "2"], env=clean_env())
                if r.returncode == 0:
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                raise RuntimeError(f"postgres not ready after 60 s; log: {self.root}/postgres.log")
        raise RuntimeError(f"postgres did not start; log: {self.root}/postgres.log")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(3)  # SIGQUIT: immediate shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        self._next_db += 1
        name = f"t{os.getpid()}_{self._next_db}"
        # CREATE DATABASE takes no parameters; the name is ours, [a-z0-9_] only.
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return name

    def psql(self, database: str, sql: str, **variables: str) -> str:
        argv = [f"{self.bindir}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url(database)]
        for k, v in variables.items():
            argv += ["-v", f"{k}={v}"]
        r = subprocess.run(argv, input=sql, capture_output=True, text=True, env=clean_env())
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr}")
        return r.stdout.strip()
