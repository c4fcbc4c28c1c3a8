"""Failures no route handles: a full database disk is a 503 naming the storage and what to do, not a 500; a lost
database a 503; anything else a 500; and each is logged once (uvicorn logged every one a second time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import APIRouter

from bot.server import create_app
from tests.api_helpers import fake_model_settings, live_server
from tests.pipeline_helpers import build_pipeline

pytestmark = pytest.mark.timeout(60)
FULL_DISK = """DO $$ BEGIN RAISE EXCEPTION 'could not extend file "base/5/16384": No space left on device'
USING ERRCODE = 'disk_full'; END $$"""
"""Postgres' own disk_full error (SQLSTATE 53100), as it raises it when a table cannot grow."""
UVICORN_TRACEBACK = "Exception in ASGI application"


def failing_routes(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter()

    @router.get("/full-disk")
    async def full_disk() -> None:
        await pool.execute(FULL_DISK)

    @router.get("/lost-database")
    async def lost_database() -> None:
        async with pool.acquire() as connection:
            await pool.execute("SELECT pg_terminate_backend($1)", await connection.fetchval("SELECT pg_backend_pid()"))
            await connection.fetchval("SELECT 1")

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    return router


@asynccontextmanager
async def client_of(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    settings = fake_model_settings(None)
    app = create_app(settings, build_pipeline(settings, pool), pool, extra_routers=[failing_routes(pool)])
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def answer_and_log(
    pool: asyncpg.Pool, path: str, caplog: pytest.LogCaptureFixture
) -> tuple[httpx.Response, list[logging.LogRecord]]:
    async with client_of(pool) as client:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            answered = await client.get(path)
    return answered, [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_full_database_disk_is_a_503_naming_the_storage_and_what_to_do(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    answered, _ = await answer_and_log(pool, "/full-disk", caplog)
    assert answered.status_code == 503 and answered.headers["retry-after"].isdigit()
    assert answered.json()["error"] == "storage_full"
    assert "disk" in answered.json()["message"] and "free space" in answered.json()["fix"]


@pytest.mark.parametrize(("path", "status"), [("/full-disk", 503), ("/lost-database", 503), ("/bug", 500)])
async def test_a_failure_no_route_handles_is_logged_once(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    answered, logged = await answer_and_log(pool, path, caplog)
    assert answered.status_code == status
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert UVICORN_TRACEBACK not in logged[0].getMessage()
