"""`parley serve`'s HTTP door runs on an event loop of its own (bot/front_door.py, issue #22): turn work
that keeps the pipeline's loop busy delays no Slack ack, and every other request still runs on the
pipeline's loop with its body, streaming and lifespan intact."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.slack.handlers import SlackHandlers
from bot.front_door import DoorRoute, LoopBridge, ReadDeadlines, serve_in_thread
from bot.observability import RequestContext
from tests.api_helpers import live_server
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import EventSender, FakeSlack, mention
from tests.test_slack_e2e import SECRET, running

pytestmark = [pytest.mark.timeout(60)]
BLOCK_S = 1.5
"""How long the 'slow turn' holds the pipeline's loop without yielding."""


def door_server(app: ASGIApp, door: dict[str, DoorRoute]) -> AbstractAsyncContextManager[str]:
    """`app` behind a LoopBridge whose uvicorn runs in its own thread; yields the base URL."""
    return live_server(
        LoopBridge(app, asyncio.get_running_loop(), door), serve=lambda server: serve_in_thread(server, sockets=None)
    )


def blocking_app(blocking: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        blocking.set()
        time.sleep(BLOCK_S)  # a turn's CPU work, holding the pipeline's loop
        return {"done": "slow"}

    @app.get("/loop")
    async def loop() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    @app.post("/echo")
    async def echo(request: Request) -> StreamingResponse:
        body = await request.body()

        async def chunks() -> AsyncIterator[bytes]:
            for part in (body[:3], body[3:]):
                await asyncio.sleep(0)
                yield part

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


async def answered_on_the_door(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": threading.current_thread().name.encode()})


async def test_a_door_path_is_answered_while_the_pipeline_loop_is_held_by_a_turn() -> None:
    blocking = threading.Event()
    async with door_server(blocking_app(blocking), {"/ack": lambda _: answered_on_the_door}) as url:

        def client() -> tuple[float, float]:
            slow = threading.Thread(target=httpx.get, args=(f"{url}/slow",), kwargs={"timeout": 10})
            slow.start()
            assert blocking.wait(5)
            started = time.perf_counter()
            assert httpx.post(f"{url}/ack", timeout=10).text == "parley-http"
            acked = time.perf_counter() - started
            httpx.get(f"{url}/loop", timeout=10)
            waited = time.perf_counter() - started
            slow.join()
            return acked, waited

        acked, waited = await asyncio.to_thread(client)
    assert acked < BLOCK_S / 3
    assert waited > BLOCK_S / 2  # the same moment, a request for the pipeline's loop waits for the turn


async def test_every_other_request_runs_on_the_pipeline_loop_with_its_body_and_stream() -> None:
    async with (
        door_server(blocking_app(threading.Event()), {"/ack": lambda _: answered_on_the_door}) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.get("/loop")).json() == {"thread": threading.current_thread().name}
        assert (await http.post("/echo", content=b"hello door")).text == "hello door"
        assert (await http.get("/missing")).status_code == 404


async def test_the_apps_lifespan_runs_on_the_pipeline_loop() -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        seen.append(f"start:{threading.current_thread().name}")
        yield
        seen.append(f"stop:{threading.current_thread().name}")

    async with door_server(FastAPI(lifespan=lifespan), {}):
        assert seen == [f"start:{threading.current_thread().name}"]
    assert seen[-1] == f"stop:{threading.current_thread().name}"


async def test_a_door_route_may_carry_its_request_to_the_pipeline_loop() -> None:
    def when_asked(forward: ASGIApp) -> ASGIApp:
        async def route(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] == "POST":
                await answered_on_the_door(scope, receive, send)
            else:
                await forward(scope, receive, send)

        return route

    async with door_server(blocking_app(threading.Event()), {"/loop": when_asked}) as url, httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/loop")).text == "parley-http"
        assert (await http.get(f"{url}/loop")).json() == {"thread": threading.current_thread().name}


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_slow_turn_does_not_delay_another_events_ack(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = threading.Event()
    answer = SlackHandlers.message

    async def a_slow_turn(self: SlackHandlers, message: Any, **kwargs: Any) -> None:
        if message.text == "slow":
            blocking.set()
            time.sleep(BLOCK_S)  # CPU work that holds the pipeline's loop
        await answer(self, message, **kwargs)

    monkeypatch.setattr(SlackHandlers, "message", a_slow_turn)
    async with running(fake_slack, pool, openai_server) as slack:
        app = FastAPI()
        app.include_router(slack.adapter.router)
        async with door_server(app, slack.adapter.door_routes(asyncio.get_running_loop())) as url:
            channel = f"C{uuid.uuid4().hex[:9].upper()}"
            first, second = slack.ts(), slack.ts()

            def client() -> float:
                async def send() -> float:
                    sender = EventSender(url=f"{url}/slack/events", signing_secret=SECRET)
                    text = mention(slack.workspace, channel=channel, user="UALICE", text="slow", ts=first)
                    assert (await sender.event(slack.workspace, text)).response.status_code == 200
                    assert blocking.wait(5)
                    text = mention(slack.workspace, channel=channel, user="UBOB", text="fast", ts=second)
                    sent = await sender.event(slack.workspace, text)
                    assert sent.response.status_code == 200
                    await sender.aclose()
                    return sent.elapsed_s

                return asyncio.run(send())

            ack_s = await asyncio.to_thread(client)
            await slack.settle()
    assert ack_s < BLOCK_S / 3
    assert slack.thread(channel, first) == ["You said: slow"]
    assert slack.thread(channel, second) == ["You said: fast"]


async def test_a_request_answered_on_the_door_is_access_logged_once_like_a_carried_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shed turn's 503 and a Slack ack never reach the app's RequestContext; they are logged all the same."""

    async def refused(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    door: dict[str, DoorRoute] = {"/v1/chat": lambda _: refused}
    app = RequestContext(blocking_app(threading.Event()))
    with caplog.at_level(logging.INFO, logger="parley.http"):
        async with door_server(app, door) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/v1/chat")).status_code == 503
            assert (await http.get("/loop")).status_code == 200
    assert sorted(r.getMessage() for r in caplog.records if r.name == "parley.http") == [
        "GET /loop 200",
        "POST /v1/chat 503",
    ]


async def test_every_answer_says_how_long_the_server_took_from_its_requests_first_byte() -> None:
    """`Server-Timing: app;dur=MS`: counted from the first byte read, so time a request waited in the door
    (here, headers that took 0.4 s to arrive) is in it, and a client can tell the server's time from its own."""
    door: dict[str, DoorRoute] = {"/ack": lambda _: answered_on_the_door}
    bridge = LoopBridge(blocking_app(threading.Event()), asyncio.get_running_loop(), door)
    server = uvicorn.Server(uvicorn.Config(bridge, host="127.0.0.1", port=0, log_config=None, lifespan="off",
                                           http=ReadDeadlines))
    serving = asyncio.create_task(serve_in_thread(server, sockets=None))
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        timings = {}
        for method, path in (("POST", "/ack"), ("GET", "/loop")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0.4)
            writer.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            head = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n\r\n")[0].decode()
            writer.close()
            timings[path] = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
                             if line.lower().startswith("server-timing:")]
    finally:
        server.should_exit = True
        await serving
    for path, values in timings.items():
        assert len(values) == 1 and values[0].startswith("app;dur="), (path, values)
        # the door may read the first part a little after it was sent: 0.3 s of the 0.4 s at least
        assert 300 <= float(values[0].removeprefix("app;dur=")) < 5000, (path, values)
