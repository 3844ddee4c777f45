"""Session resources of the SDK's tests: one real PostgreSQL, the project's fake LLM.

Every test gets its own database (migrated by flowrunctl, as the controller
does at start) and its own run uid, so tests never see each other's rows.
"""

from __future__ import annotations

import subprocess
from typing import Callable, Iterator

import pytest

from support.agent import FLOWRUNCTL, Run
from support.fake_llm import FakeLlm
from support.postgres import PostgresServer, clean_env


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    assert FLOWRUNCTL.exists(), f"{FLOWRUNCTL} is missing: build flowrunctl (ctest runs this suite after the build)"
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLlm]:
    server = FakeLlm()
    yield server
    server.stop()


@pytest.fixture
def database(pg: PostgresServer) -> str:
    name = pg.create_database()
    r = subprocess.run([str(FLOWRUNCTL), "--db", pg.url(name), "migrate"], capture_output=True, text=True,
                       env=clean_env())
    assert r.returncode == 0, r.stderr
    return name


@pytest.fixture
def make_run(pg: PostgresServer, database: str, fake_llm: FakeLlm) -> Callable[..., Run]:
    def make(target: str, **kw: object) -> Run:
        return Run(pg=pg, database=database, target=target, llm_url=fake_llm.base_url, **kw)  # type: ignore[arg-type]

    return make
