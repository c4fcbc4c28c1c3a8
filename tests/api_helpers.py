"""Shared by the API, web and observability tests: a real uvicorn server on a random port, keys, SSE."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import uvicorn
from starlette.types import ASGIApp

from bot.server import create_app
from bot.settings import Settings
from core.apikeys import ApiKeyInfo, authenticate, create_api_key
from core.store.pool import create_pool
from tests.pipeline_helpers import build_pipeline


def fake_model_settings(base_url: str | None, **overrides: Any) -> Settings:
    """Settings for a pipeline answering from the fake OpenAI server (no model when base_url is None)."""
    model = (
        {"parley_model": "openai:fake", "openai_base_url": base_url, "openai_api_key": "sk-test"} if base_url else {}
    )
    # Tests share one database and one client address: invalid keys sent by one test must not lock out
    # the next (tests of that limit set their own).
    quiet = {"parley_api_invalid_keys_per_min": 10_000}
    return Settings(_env_file=None, **{**model, **quiet, **overrides})  # type: ignore[call-arg]


async def new_key(pool: asyncpg.Pool, workspace: str | None = None) -> tuple[str, str]:
    """A fresh workspace (unique per test) and a live key for it."""
    workspace = workspace or f"ws-{uuid.uuid4().hex[:10]}"
    _, key = await create_api_key(pool, workspace_id=workspace, name="test")
    return workspace, key


async def key_of(pool: asyncpg.Pool, key: str) -> ApiKeyInfo | None:
    """The key a request carrying `key` authenticates as (no rate limit in the way)."""
    checked = await authenticate(pool, key, address="test", per_key=10_000, invalid_per_address=10_000)
    return checked.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def live_server(
    app: ASGIApp, *, serve: Callable[[uvicorn.Server], Coroutine[Any, Any, None]] | None = None
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1, in this event loop or as `serve` runs the server; yield its
    base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    task = asyncio.create_task(serve(server) if serve is not None else server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextmanager
def _no_signals() -> Iterator[None]:
    yield


@contextmanager
def threaded_server(pg_uri: str, settings: Settings) -> Iterator[tuple[str, str]]:
    """A server with its own event loop, pool and key in a background thread, for synchronous clients
    (schemathesis, the browser test). Yields (base URL, API key)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        pool = await create_pool(pg_uri, max_size=4)
        pipeline = build_pipeline(settings, pool)
        try:
            app = create_app(settings, pipeline, pool)
            _, box["key"] = await new_key(pool)
            async with live_server(app) as url:
                box["url"] = url
                box["stop"] = asyncio.Event()
                box["loop"] = asyncio.get_running_loop()
                ready.set()
                await box["stop"].wait()
        finally:
            if pipeline.models is not None:  # its pools' connections would outlive this thread's loop
                await pipeline.models.aclose()
            await pool.close()
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True, name="api-server")
    thread.start()
    ready.wait(60)
    if "url" not in box:
        raise RuntimeError("the test server did not start")
    try:
        yield box["url"], box["key"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a server-sent event stream; comments and pings skipped."""
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
