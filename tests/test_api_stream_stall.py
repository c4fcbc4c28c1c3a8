"""A client of /v1/chat/stream that stops reading: once a write has waited `stream_send_timeout_s`, the stream is
cut and its connection dropped, and the turn is still finished and saved once. `parley serve`'s door (uvicorn with
bot.front_door's protocol, in a thread of its own, carrying the request to this loop) whose sockets send through a
small buffer, the fake model writing a long reply, and a client that reads nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import uvicorn

from adapters.api.deps import ApiConfig, ApiState
from bot.front_door import LoopBridge, ReadDeadlines, serve_in_thread
from bot.server import create_app
from tests.api_helpers import fake_model_settings, new_key
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.pipeline_helpers import build_pipeline

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("allow_model_requests")]
SEND_TIMEOUT_S = 1.0
SMALL_BUFFER = 4096
WORDS = 20_000
"""About 100 KB of deltas: more than the kernel's buffers (a few KB here) and uvicorn's (64 KB) hold."""


@pytest.fixture
async def server(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> AsyncIterator[tuple[int, ApiState]]:
    settings = fake_model_settings(openai_server.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool, config=ApiConfig(
        rate_per_min=1000, invalid_keys_per_min=1000, stream_send_timeout_s=SEND_TIMEOUT_S,
    ))
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)  # accepted sockets inherit it
    bridge = LoopBridge(app, asyncio.get_running_loop(), {})
    server = uvicorn.Server(uvicorn.Config(bridge, log_config=None, lifespan="off", http=ReadDeadlines))
    async with app.router.lifespan_context(app):
        serving = asyncio.create_task(serve_in_thread(server, sockets=[listening]))
        while not server.started:
            await asyncio.sleep(0.01)
        yield listening.getsockname()[1], app.state.api
        server.should_exit = True
        await serving
    listening.close()


async def test_a_stream_whose_client_stopped_reading_is_cut_and_its_turn_saved_once(
    server: tuple[int, ApiState], pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port, state = server
    workspace, key = await new_key(pool)
    openai_server.queue(Text("word " * WORDS))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    client.connect(("127.0.0.1", port))
    body = json.dumps({"message": "write at length", "user_id": f"u-{uuid.uuid4().hex[:8]}"}).encode()
    client.sendall(b"POST /v1/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    loop = asyncio.get_running_loop()
    for _ in range(500):  # the turn finishes while its stream waits on the client
        if await pool.fetchval("SELECT count(*) FROM turns WHERE workspace_id = $1 AND status <> 'started'",
                               workspace):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(SEND_TIMEOUT_S + 1.0)
    assert not state.turns and state.admission.in_flight == 0
    client.settimeout(10)
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):  # dropped: what the server had left to send is discarded
        while chunk := await loop.run_in_executor(None, client.recv, 65536):
            received += chunk
    client.close()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"event: done" not in received, "the stream was still waiting for the client"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "asyncio"]
    assert [r.getMessage() for r in warnings] == [  # asyncio's own: -X dev's slow callbacks of the fake model
        f"stream cut: the client read nothing for {SEND_TIMEOUT_S:.0f} s (its turn is finished and saved all the same)"
    ]
    rows = await pool.fetch("SELECT status FROM turns WHERE workspace_id = $1", workspace)
    assert [r["status"] for r in rows] not in ([], ["started"]) and len(rows) == 1
    reply = await pool.fetchval(
        "SELECT content FROM messages WHERE workspace_id = $1 AND role = 'assistant'", workspace
    )
    assert reply is not None and reply.count("word") == WORDS
