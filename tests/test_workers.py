"""`parley serve --workers N`: how the workers' listening sockets spread connections over them."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from starlette.responses import PlainTextResponse

from bot.front_door import WORKER_HEADER, WorkerAnswers
from bot.workers import BALANCING_KERNEL, worker_sockets
from tests.conftest import StartServe

CONNECTIONS = 16
"""Connections a test opens: all on one of two workers by chance about once in 30,000 runs."""
linux_only = pytest.mark.skipif(not BALANCING_KERNEL, reason="the kernel balances SO_REUSEPORT sockets on Linux only")


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def accept_all(sock: socket.socket) -> int:
    """Accept (and close) every connection waiting on `sock`; how many there were."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@linux_only
def test_each_worker_gets_its_own_socket_on_one_port_where_the_kernel_balances() -> None:
    sockets = worker_sockets("127.0.0.1", 0, 3)
    try:
        assert len({s.getsockname() for s in sockets}) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
        assert all(s.get_inheritable() for s in sockets)
    finally:
        close_all(sockets)


@linux_only
def test_a_workers_socket_takes_no_connections_until_its_worker_listens() -> None:
    """A worker still loading leaves the port's connections to those that serve, instead of queueing some."""
    sockets = worker_sockets("127.0.0.1", 0, 2)
    sockets[0].listen()
    clients = [socket.create_connection(sockets[0].getsockname()) for _ in range(CONNECTIONS)]
    try:
        assert accept_all(sockets[0]) == CONNECTIONS
    finally:
        close_all(clients + sockets)


def test_workers_share_one_socket_where_the_kernel_does_not_balance() -> None:
    sockets = worker_sockets("127.0.0.1", 0, 3, balanced=False)
    try:
        assert len(sockets) == 1 and sockets[0].get_inheritable()
    finally:
        close_all(sockets)


@linux_only
def test_a_port_another_server_shares_with_so_reuseport_is_refused() -> None:
    """Two `parley serve` on one port would silently split its connections: the second must fail."""
    other = socket.create_server(("127.0.0.1", 0), reuse_port=True)
    try:
        with pytest.raises(OSError):
            worker_sockets("127.0.0.1", other.getsockname()[1], 2)
    finally:
        other.close()


@linux_only
def test_the_kernel_spreads_new_connections_over_the_workers_sockets() -> None:
    sockets = worker_sockets("127.0.0.1", 0, 2)
    for sock in sockets:
        sock.listen()
    clients = [socket.create_connection(sockets[0].getsockname()) for _ in range(CONNECTIONS)]
    try:
        accepted = [accept_all(sock) for sock in sockets]
        assert sum(accepted) == CONNECTIONS
        assert min(accepted) > 0, accepted
    finally:
        close_all(clients + sockets)


async def both_workers_listening(url: str, *, timeout_s: float = 120.0) -> None:
    """Until new connections have reached both workers: at the first start both listen once both have
    loaded (`StartGate`), but a worker still loading after the gate's 60 s (a slow CI machine) is not waited
    for, and the test is about spreading connections over two running workers."""
    seen: set[str] = set()
    async with asyncio.timeout(timeout_s):
        while seen != {"0", "1"}:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                seen.add((await client.get("/healthz")).headers[WORKER_HEADER])
            await asyncio.sleep(0.05)


@linux_only
@pytest.mark.timeout(300)
async def test_keep_alive_connections_to_two_workers_are_answered_by_both(serve: StartServe) -> None:
    server = serve({"PARLEY_WORKERS": "2", "PARLEY_MODEL": "none"})
    await both_workers_listening(server.url)
    clients = [httpx.AsyncClient(base_url=server.url, timeout=30) for _ in range(CONNECTIONS)]
    try:
        answers = await asyncio.gather(*(client.get("/healthz") for client in clients))
        again = await asyncio.gather(*(client.get("/healthz") for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    workers = [r.headers[WORKER_HEADER] for r in answers]
    assert set(workers) == {"0", "1"}, workers
    assert [r.headers[WORKER_HEADER] for r in again] == workers  # a connection keeps its worker
    assert await asyncio.to_thread(server.stop) == 0, server.log()[-3000:]


async def test_a_worker_names_itself_and_closes_the_connection_only_after_handing_work_off() -> None:
    """A Slack event's turn stays on the worker that acked it: the next event comes on a new connection,
    which the kernel may give to another worker; an API turn's connection lives as long as its turn."""
    app = WorkerAnswers(PlainTextResponse("ok"), worker=1, hand_off={"/slack/events"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as http:
        event = await http.post("/slack/events")
        turn = await http.post("/v1/chat")
    assert event.headers[WORKER_HEADER] == turn.headers[WORKER_HEADER] == "1"
    assert event.headers["connection"] == "close"
    assert "connection" not in turn.headers
