"""The HTTP door on an event loop of its own, in its own thread, so that no answer waits for turns.

A worker's turns keep its pipeline's event loop busy (pydantic-ai, the guard, the database
driver); a request that needs none of that (a Slack ack) used to queue behind their callbacks, and
its p99 grew with the load. Here uvicorn (sockets, HTTP parsing, writes) runs on the door's loop;
`LoopBridge` carries every other request to the pipeline's loop and its messages back, and answers
the `door` paths (POST /slack/events: verify, ack, then hand the work over) on the door's loop itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from socket import socket

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import observability
from core.loops import on_loop

SWITCH_INTERVAL_S = 0.001
"""How long a thread that wants the GIL waits before the running one must hand it over (Python's default
is 5 ms; `parley serve` sets this). The door's thread needs the GIL a few times per request while the
pipeline's thread computes: with a turn-like CPU load on the pipeline's loop, a door answer took p95
25 ms, max 45 ms at 5 ms, and p95 10 ms, max 14 ms at 1 ms (measured here)."""


DoorRoute = Callable[[ASGIApp], ASGIApp]
"""Given the app that carries a request to the pipeline's loop, the app that answers its path on the
door's loop (carrying it across itself when it must)."""


class LoopBridge:
    """ASGI app for the door's loop: each request runs `app` on the `work` loop, its receive and send
    carried across; a request to one of `door`'s paths is answered by that route on the door's loop, and
    counted and access-logged here when the route answered it without carrying it across (where the app's
    `RequestContext` does that)."""

    def __init__(self, app: ASGIApp, work: asyncio.AbstractEventLoop, door: Mapping[str, DoorRoute]) -> None:
        self.app = app
        self.work = work
        self.door = {path: route(self.across) for path, route in door.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        here = self.door.get(scope["path"]) if scope["type"] == "http" else None
        if here is None:
            await self.across(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await here(scope, receive, noted)
        if not observability.was_recorded(scope):  # answered here (a Slack ack, a shed turn's 503): count and log it
            observability.record_answer(scope, scope["path"], status, time.perf_counter() - started)

    async def across(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app` on the work loop for this request."""
        door = asyncio.get_running_loop()

        async def receive_across() -> Message:
            return await on_loop(door, receive)

        async def send_across(message: Message) -> None:
            await on_loop(door, partial(send, message))

        await on_loop(self.work, partial(self.app, scope, receive_across, send_across))


WORKER_HEADER = "X-Parley-Worker"


class WorkerAnswers:
    """Where several workers serve one port (bot/workers.py): names the worker in every answer
    (`X-Parley-Worker: N`, a number, nothing more), so an operator, a test or the load benchmark sees how
    connections are spread over them; and closes the connection after an answer to one of `hand_off`'s
    paths. Those (a Slack event: ack first, the turn after) leave their work on this worker once answered,
    so a client (or a proxy's pool) that sends every event on its one or two busiest keep-alive connections
    would give one worker every turn (2,295 of 2,400 Slack turns in a load run); closed, each event comes
    on a new connection, which the kernel spreads as it spreads connections."""

    def __init__(self, app: ASGIApp, *, worker: int, hand_off: Collection[str] = ()) -> None:
        self.app = app
        self.header = (WORKER_HEADER.lower().encode(), str(worker).encode())
        self.hand_off = frozenset(hand_off)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = [self.header, (b"connection", b"close")] if scope["path"] in self.hand_off else [self.header]

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, named)


async def serve_in_thread(
    server: uvicorn.Server,
    *,
    sockets: Sequence[socket] | None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run `server` on a new loop in a thread of its own until it stops; SIGTERM and SIGINT, which only
    the main thread receives, are passed on to it."""
    loop = asyncio.get_running_loop()
    finished: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(server.serve(sockets=list(sockets) if sockets is not None else None))
        except BaseException as exc:
            finished.set_exception(exc)
        else:
            finished.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    try:
        threading.Thread(target=run, name="parley-http", daemon=True).start()
        await asyncio.wrap_future(finished)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
