"""Session-wide fixtures: telemetry off, no real model requests, one embedded Postgres per session."""

from __future__ import annotations

from core.telemetry import quiet_libraries

quiet_libraries(force=True)

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pydantic_ai.models
import pytest
from hypothesis import settings as hypothesis_settings

from core.store.embedded import start_embedded
from core.store.migrations import migrate_sync
from core.store.pool import create_pool
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

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
def pg_uri(data_dir: Path) -> str:
    uri = start_embedded(data_dir)
    migrate_sync(uri)
    return uri


@pytest.fixture(scope="session")
async def pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_uri, max_size=8)
    yield pool
    await pool.close()


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


StartServe = Callable[[dict[str, str]], tuple[subprocess.Popen[str], str]]
ROOT = Path(__file__).resolve().parents[1]
SERVE_START_S = 150
"""Loading the models takes seconds alone and a minute or more on a busy 2-core machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve(pg_uri: str, tmp_path: Path) -> Iterator[StartServe]:
    """Start `parley serve` (a real process, on the session's database) with the given extra environment;
    returns the process and its URL once /healthz answers. Every process is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(extra_env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
        env.update(DATABASE_URL=pg_uri, PYTHONPATH=str(ROOT), PARLEY_LOG_JSON="true", PARLEY_DATA_DIR=str(tmp_path))
        env.update(PARLEY_FACT_EXTRACTION="off")
        env.update(extra_env)
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group: the end of the test kills the workers with it, so nothing holds
            # the pipes open and the teardown's wait cannot hang on an orphaned worker.
            start_new_session=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVE_START_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"parley serve exited early: {process.communicate()[1][-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return process, url
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"parley serve did not become healthy in {SERVE_START_S} s")

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=30)


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack for one test module (each test adds its own workspace)."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()
