"""The door's read deadlines (bot.front_door.ReadDeadlines): a request whose headers or body trickle in (slowloris)
loses its connection; a request sent at once, a steady slow upload, a keep-alive connection's next request and
a long answer are not cut. A real uvicorn server on 127.0.0.1, short deadlines, raw sockets as the attacker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bot.front_door import ReadDeadlines

pytestmark = pytest.mark.timeout(30)


class Short(ReadDeadlines):
    header_s = 0.5
    body_s = 0.5
    min_rate = 1000.0


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/slow-answer")
    async def slow_answer() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(4):
                await asyncio.sleep(0.4)
                yield b"part\n"

        return StreamingResponse(parts())

    return app


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = uvicorn.Server(uvicorn.Config(echo_app(), host="127.0.0.1", port=0, http=Short, log_config=None))
    server.capture_signals = lambda: _no_signals()  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    await serving


class _no_signals:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


async def closed_after(reader: asyncio.StreamReader, limit_s: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before."""
    started = time.perf_counter()
    data = await asyncio.wait_for(reader.read(), limit_s)
    return time.perf_counter() - started, data


async def closed_while_trickling(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, byte: bytes
) -> tuple[float, bytes]:
    """`closed_after` while `byte` is sent every 0.1 s, as a slowloris client sends; the connection closed after."""

    async def trickle() -> None:
        while True:
            writer.write(byte)
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    try:
        return await closed_after(reader, 5)
    finally:
        trickling.cancel()
        writer.close()


async def test_headers_trickled_a_byte_at_a_time_get_408_and_the_connection_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
    took, data = await closed_while_trickling(reader, writer, b"X")
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < took < 2


async def test_a_connection_that_never_sends_a_byte_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    took, data = await closed_after(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ") and took < 2


async def test_a_body_that_never_finishes_loses_its_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
    took, data = await closed_after(reader, 5)
    writer.close()
    assert data == b"" and took < 2


async def test_a_steady_upload_slower_than_the_body_deadline_alone_is_answered(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
    for _ in range(8):  # 1,250 bytes/s over 3.2 s, past body_s (0.5 s) but above min_rate
        writer.write(b"a" * 500)
        await asyncio.sleep(0.4)
    answer = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"bytes":4000}')


async def test_a_keep_alive_connections_next_request_and_a_long_answer_are_not_cut(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET /slow-answer HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert body.count(b"part") == 4
        await asyncio.sleep(0.3)
    writer.close()


async def test_a_connection_asking_for_an_unsupported_upgrade_closes_after_its_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    took, data = await closed_while_trickling(reader, writer, b"a")
    assert data.startswith(b"HTTP/1.1 ") and took < 2
