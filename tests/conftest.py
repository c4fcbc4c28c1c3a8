"""Session-wide fixtures: telemetry off, no real model requests, one embedded Postgres per session."""

from __future__ import annotations

from core.telemetry import quiet_libraries

quiet_libraries(force=True)

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pydantic_ai.models
import pytest
from hypothesis import settings as hypothesis_settings

from core.store.embedded import start_embedded
from core.store.migrations import migrate_sync
from core.store.pool import create_pool
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False
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


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack for one test module (each test adds its own workspace)."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()
