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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from adapters.api.door import DROP_CONNECTION
from bot import observability
from core.loops import call_on, on_loop

SWITCH_INTERVAL_S = 0.001
"""How long a thread that wants the GIL waits before the running one must hand it over (Python's default
is 5 ms; `parley serve` sets this). The door's thread needs the GIL a few times per request while the
pipeline's thread computes: with a turn-like CPU load on the pipeline's loop, a door answer took p95
25 ms, max 45 ms at 5 ms, and p95 10 ms, max 14 ms at 1 ms (measured here)."""


HEADER_S = 10.0
"""How long a request's headers may take from its first byte (a client sends them in one packet)."""
BODY_S = 20.0
BODY_MIN_RATE = 500.0
"""A body may take `BODY_S`, and a second more for every `BODY_MIN_RATE` bytes received (mod_reqtimeout's body
defaults)."""


RECEIVED_AT = "parley.received_at"
"""Scope extension `{"at": time.perf_counter()}`: when the request's first byte was read (`ReadDeadlines`), so
the time its answer took counts the wait for the door's loop, which a burst of requests lengthens."""
TIMING_HEADER = b"server-timing"
"""Every answer's `Server-Timing: app;dur=MS` (W3C Server Timing): milliseconds from its request's first byte to
its answer's first, what a client's own clock cannot tell apart from its own delays (the load benchmark's acks)."""


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
        if scope["type"] != "http":
            await self.across(scope, receive, send)
            return
        received = scope.get("extensions", {}).get(RECEIVED_AT)
        started, status = received["at"] if received else time.perf_counter(), 500

        async def timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                timing = (TIMING_HEADER, b"app;dur=%.1f" % ((time.perf_counter() - started) * 1000))
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        here = self.door.get(scope["path"])
        if here is None:
            await self.across(scope, receive, timed)
            return
        await here(scope, receive, timed)
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


class ReadDeadlines(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with deadlines for reading a request, as Apache's mod_reqtimeout
    sets them: uvicorn has none (its keep-alive timeout only closes a connection silent between requests, and
    any byte resets it), so a client that sent a header byte every few seconds, or a body that never finished,
    held its connection, an open file and a waiting request for good (500 such sockets: every one still open
    after 30 s). A request's headers must arrive within `header_s` of its first byte (or of connecting); its
    body within `body_s` of the headers, plus a second for every `min_rate` bytes received, so a large upload
    on a slow but steady link is never cut. Past the header deadline the client gets 408 and the connection
    closes; past the body deadline it closes (the request's handler sees the client gone). Answers are not
    bounded here: a stream's sends have their own deadline (adapters/api/routes/chat.py), and a stream that
    gives up on its client drops the connection through the `DROP_CONNECTION` extension offered here."""

    header_s: float = HEADER_S
    body_s: float = BODY_S
    min_rate: float = BODY_MIN_RATE

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._deadline = 0.0
        self._arm(self.header_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {RECEIVED_AT: {"at": time.perf_counter()}}
        self._reading_body = False
        self._arm(self.header_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():  # a websocket: its protocol takes over
            self._disarm()
            return
        self._reading_body = True
        self._arm(self.body_s)
        drop = partial(call_on, self.loop, partial(self._drop, self.cycle))
        self.scope.setdefault("extensions", {})[DROP_CONNECTION] = {"drop": drop}

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._deadline += len(body) / self.min_rate

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _drop(self, cycle: RequestResponseCycle) -> None:
        """Close the connection at once, its unsent bytes discarded, for an answer that gave up on its client
        (it stopped reading). The cycle counts as disconnected from here on, as when the client closes, so the
        app's unfinished answer is not logged as an error, and its sends return."""
        if cycle.response_complete or cycle.disconnected:
            return
        cycle.disconnected = True
        self.transport.abort()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.time() + seconds
        self._deadline_timer = self.loop.call_at(self._deadline, self._expired)

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _expired(self) -> None:
        """Close the connection, unless bytes received since moved the deadline on (then wait for it)."""
        if self.loop.time() < self._deadline:
            self._deadline_timer = self.loop.call_at(self._deadline, self._expired)
            return
        self._deadline_timer = None
        if self.transport.is_closing():
            return
        if not self._reading_body:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


TIMED_OUT_TEXT = b"The request was not sent in time.\n"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(TIMED_OUT_TEXT), TIMED_OUT_TEXT)
)


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
