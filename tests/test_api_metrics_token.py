"""/metrics answers the metrics token's bearer (`PARLEY_METRICS_TOKEN`), or anyone on a loopback-only server
without a token; a server listening beyond the machine with no token set shows its counters to no one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from bot.server import api_config, create_app
from bot.settings import Settings
from tests.api_helpers import bearer, fake_model_settings, live_server
from tests.pipeline_helpers import build_pipeline

pytestmark = pytest.mark.timeout(60)
TOKEN = "metrics-token-for-the-tests"


@asynccontextmanager
async def metrics_of(pool: asyncpg.Pool, *, host: str, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server configured as `parley serve --host host` with PARLEY_METRICS_TOKEN=token."""
    settings = fake_model_settings(None, parley_metrics_token=token)
    pipeline = build_pipeline(settings, pool)
    app = create_app(settings, pipeline, pool, config=api_config(settings, pipeline, host=host))
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def test_a_public_server_without_a_token_shows_its_metrics_to_no_one(pool: asyncpg.Pool) -> None:
    async with metrics_of(pool, host="0.0.0.0", token=None) as client:
        refused = await client.get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"] == "metrics_need_a_token" and "PARLEY_METRICS_TOKEN" in refused.json()["fix"]
    assert "parley_" not in refused.text


@pytest.mark.parametrize("presented", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_metrics_with_a_token_refuse_any_other_credential(pool: asyncpg.Pool, presented: str | None) -> None:
    headers = {"Authorization": presented} if presented else {}
    async with metrics_of(pool, host="0.0.0.0", token=TOKEN) as client:
        refused = await client.get("/metrics", headers=headers)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "parley_" not in refused.text


async def test_metrics_answer_the_tokens_bearer(pool: asyncpg.Pool) -> None:
    async with metrics_of(pool, host="0.0.0.0", token=TOKEN) as client:
        answered = await client.get("/metrics", headers=bearer(TOKEN))
    assert answered.status_code == 200 and "parley_http_requests_total" in answered.text


async def test_a_token_is_asked_for_on_a_loopback_server_too(pool: asyncpg.Pool) -> None:
    async with metrics_of(pool, host="127.0.0.1", token=TOKEN) as client:
        assert (await client.get("/metrics")).status_code == 401


async def test_a_loopback_server_without_a_token_answers_anyone(pool: asyncpg.Pool) -> None:
    async with metrics_of(pool, host="127.0.0.1", token=None) as client:
        assert (await client.get("/metrics")).status_code == 200


def test_the_metrics_token_is_masked_wherever_settings_are_shown() -> None:
    settings = Settings(_env_file=None, parley_metrics_token=SecretStr(TOKEN))  # type: ignore[call-arg]
    assert settings.masked()["PARLEY_METRICS_TOKEN"] == "****"
    assert TOKEN not in str(settings.masked()) and TOKEN not in repr(settings)
