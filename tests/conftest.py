"""Session-wide fixtures: telemetry off, no real model requests, one embedded Postgres per session."""

from __future__ import annotations

from core.telemetry import quiet_libraries

quiet_libraries(force=True)

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pydantic_ai.models
import pytest
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

from core.store.embedded import start_embedded, stop_embedded
from core.store.migrations import migrate_sync
from core.store.pool import create_pool
from tests.captured_telemetry import captured  # noqa: F401 (a fixture: registered here for every test)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.model_pools import close_all
from tests.server_process import ServerProcess, start_server

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False
# The fake model server answers from one shared script: a background fact extraction after a turn would
# take the next scripted answer. Tests of the model's extraction turn it on themselves; all others keep
# facts with the deterministic rules.
os.environ["PARLEY_FACT_EXTRACTION"] = "off"
hypothesis_settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
hypothesis_settings.register_profile("dev", max_examples=100, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    """A short data folder: Postgres' socket path must stay under 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pt", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_uri(data_dir: Path) -> Iterator[str]:
    """The session's embedded Postgres, stopped before its folder is removed (a killed run's is stopped by its
    watcher: core/store/embedded.py)."""
    uri = start_embedded(data_dir)
    migrate_sync(uri)
    yield uri
    stop_embedded(data_dir)


@pytest.fixture(scope="session")
async def pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_uri, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(scope="session", autouse=True)
async def model_pools_closed() -> AsyncIterator[None]:
    """The HTTP pools of the tests' model factories closed at the session's end, on the loop the tests ran on."""
    yield
    await close_all()


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def openai_server(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake model server, with its script and records cleared for this test."""
    fake_openai.reset()
    yield fake_openai
    fake_openai.reset()


@pytest.fixture
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real model clients may run: every test that asks for this talks to a local fake server."""
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)


StartServe = Callable[[dict[str, str]], ServerProcess]
ROOT = Path(__file__).resolve().parents[1]
SERVE_START_S = 150
"""Loading the models takes seconds alone and a minute or more on a busy 2-core machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(pg_uri: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `parley serve` under test: none of the developer's configuration, the
    session's database, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
    env.update(DATABASE_URL=pg_uri, PYTHONPATH=str(ROOT), PARLEY_LOG_JSON="true", PARLEY_DATA_DIR=str(data_dir))
    env.update(PARLEY_FACT_EXTRACTION="off")  # as in this process (see above)
    env.update(extra)
    return env


def start_serve(env: dict[str, str], folder: Path, *args: str) -> ServerProcess:
    """`parley serve ARGS` on a free port with `env`, its log under `folder`, once /healthz answers."""
    port = free_port()
    return start_server(
        [sys.executable, "-m", "bot.cli.serve", "--port", str(port), *args],
        url=f"http://127.0.0.1:{port}",
        env=env,
        cwd=folder,
        log_path=folder / f"serve-{port}.log",
        timeout_s=SERVE_START_S,
    )


@pytest.fixture
def serve(pg_uri: str, tmp_path: Path) -> Iterator[StartServe]:
    """Start `parley serve` (a real process, on the session's database) with the given extra environment;
    returns it once /healthz answers. Every process group is killed at the end."""
    started: list[ServerProcess] = []

    def start(extra_env: dict[str, str]) -> ServerProcess:
        started.append(start_serve(serve_env(pg_uri, tmp_path, **extra_env), tmp_path))
        return started[-1]

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def cli_env(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner for CLI commands in this process, on the session's database, leaving this process's logging as
    the test session set it."""
    from bot import observability
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", pg_uri)
    monkeypatch.setattr(observability, "_configured", True)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack for one test module (each test adds its own workspace)."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()
