"""`parley serve --workers N`'s supervisor: restarts that wait without stalling it, and a dead worker's socket
closed so the port's new connections reach the workers that serve. Real processes (a stub worker that
answers its number on every connection) and real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.workers import BALANCING_KERNEL, GATE_S, Supervisor, worker_sockets

CONNECTIONS = 16
"""Connections a test opens: all on one of two workers by chance about once in 30,000 runs."""
STUB_WORKER = """
import os, socket, sys, time
from bot.workers import pass_start_gate
index = sys.argv[sys.argv.index("--worker-index") + 1]
if index in os.environ["STUB_CRASHING"].split(","):
    sys.exit(3)
time.sleep(float(dict(pair.split(":") for pair in os.environ["STUB_LOAD_S"].split(",") if pair).get(index, 0)))
if "--start-gate" in sys.argv:
    pass_start_gate(sys.argv[sys.argv.index("--start-gate") + 1])
sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--worker-fd") + 1]))
sock.listen(64)
if index in os.environ["STUB_STALLED"].split(","):
    time.sleep(3600)
while True:
    conn, _ = sock.accept()
    conn.sendall(index.encode())
    conn.close()
"""
"""A worker: crashes at once (STUB_CRASHING), or loads for a while (STUB_LOAD_S, "index:seconds,..."), passes the
first start's gate and then listens but never accepts (STUB_STALLED) or answers its number."""
pytestmark = pytest.mark.skipif(not BALANCING_KERNEL, reason="each worker has its own socket on Linux only")


@dataclass(kw_only=True)
class Running:
    supervisor: Supervisor
    thread: threading.Thread
    status: list[int]

    def pid(self, index: int) -> int:
        return self.supervisor.processes[index].pid

    def address(self) -> tuple[str, int]:
        return self.supervisor.address


@contextmanager
def supervised(
    backoff: Sequence[float], *, crashing: str = "", stalled: str = "", load_s: str = "", gate_s: float = GATE_S
) -> Iterator[Running]:
    """Two stub workers under a Supervisor running in a thread (signals reach only the main thread, so the
    test calls `stop` as the signal handler would)."""
    supervisor = Supervisor(
        command=[sys.executable, "-c", STUB_WORKER],
        env={**os.environ, "STUB_CRASHING": crashing, "STUB_STALLED": stalled, "STUB_LOAD_S": load_s},
        sockets=worker_sockets("127.0.0.1", 0, 2),
        workers=2,
        backoff=backoff,
        gate_s=gate_s,
    )
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(supervisor.run()), daemon=True)
    thread.start()
    running = Running(supervisor=supervisor, thread=thread, status=status)
    try:
        yield running
    finally:
        if thread.is_alive():
            supervisor.stop(signal.SIGTERM)
            thread.join(10)
        for sock in supervisor.sockets:
            sock.close()


def eventually(condition: Callable[[], bool], *, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def answers(address: tuple[str, int], count: int = CONNECTIONS, *, timeout_s: float = 5) -> list[str]:
    """The worker number each of `count` new connections is answered with ('' if none answers or listens)."""
    found = []
    for _ in range(count):
        try:
            with socket.create_connection(address, timeout=timeout_s) as client:
                found.append(client.recv(16).decode())
        except (TimeoutError, ConnectionRefusedError):
            found.append("")
    return found


def listening(sock: socket.socket) -> bool:
    """Whether the worker given `sock` listens on it yet (the supervisor's copy shares the socket's state)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def alive(process_pid: int) -> bool:
    """Running: neither gone nor a zombie (a killed supervisor's workers go to an init that may be slow to reap)."""
    try:
        stat = Path(f"/proc/{process_pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_crash_looping_worker_delays_neither_another_workers_restart_nor_the_stop() -> None:
    with supervised((0.05, 60.0), crashing="1") as running:
        eventually(lambda: running.supervisor.restarts.get(1) == 2)  # worker 1 now waits 60 s to start again
        first = running.pid(0)
        os.kill(first, signal.SIGKILL)
        eventually(lambda: running.pid(0) != first and alive(running.pid(0)), timeout_s=5)
        running.supervisor.stop(signal.SIGTERM)
        running.thread.join(5)
        assert not running.thread.is_alive()
        assert running.status == [3]  # worker 1's crash, not worker 0's SIGTERM


def test_at_the_first_start_no_worker_listens_until_every_worker_has_loaded() -> None:
    """Worker 0 loads at once and worker 1 in 1.5 s: the port's first connections (a proxy's kept-alive ones,
    /readyz's) would all have stuck to worker 0."""
    started = time.monotonic()
    with supervised((60.0,), load_s="1:1.5") as running:
        eventually(lambda: any(listening(sock) for sock in running.supervisor.sockets))
        assert time.monotonic() - started >= 1.5
        eventually(lambda: all(listening(sock) for sock in running.supervisor.sockets), timeout_s=1)


def test_a_worker_that_dies_while_loading_holds_nobody_at_the_first_starts_gate() -> None:
    with supervised((60.0,), crashing="1") as running:
        eventually(lambda: listening(running.supervisor.sockets[0]), timeout_s=5)
        assert answers(running.address()) == ["0"] * CONNECTIONS


def test_a_worker_still_loading_holds_the_others_back_only_for_the_gates_time() -> None:
    started = time.monotonic()
    with supervised((60.0,), load_s="1:3600", gate_s=1.0) as running:
        eventually(lambda: listening(running.supervisor.sockets[0]), timeout_s=5)
        assert time.monotonic() - started >= 1.0
        assert not listening(running.supervisor.sockets[1])
        assert answers(running.address()) == ["0"] * CONNECTIONS


def test_a_stop_while_a_worker_still_loads_opens_the_gate_and_returns() -> None:
    with supervised((60.0,), load_s="1:3600") as running:
        eventually(lambda: running.supervisor.gate is not None and running.supervisor.gate.loaded == 1)
        running.supervisor.stop(signal.SIGTERM)
        running.thread.join(5)
        assert not running.thread.is_alive()
        assert running.supervisor.gate is None


def test_new_connections_go_to_the_other_worker_while_one_is_down() -> None:
    with supervised((60.0,)) as running:
        eventually(lambda: set(answers(running.address())) == {"0", "1"})
        os.kill(running.pid(1), signal.SIGKILL)
        eventually(lambda: 1 in running.supervisor.due)
        assert answers(running.address()) == ["0"] * CONNECTIONS


def test_a_restarted_worker_gets_connections_again_on_a_fresh_socket() -> None:
    with supervised((0.1,)) as running:
        eventually(lambda: set(answers(running.address())) == {"0", "1"})
        first = running.pid(1)
        os.kill(first, signal.SIGKILL)
        eventually(lambda: running.pid(1) != first)
        eventually(lambda: set(answers(running.address())) == {"0", "1"})


def test_connections_waiting_on_a_dead_workers_socket_are_reset_or_moved_not_left_waiting() -> None:
    """Worker 1 listens and never accepts: the connections the kernel queued on its socket are reset when it
    dies (or, with net.ipv4.tcp_migrate_req=1, moved to worker 0, which answers them)."""
    with supervised((60.0,), stalled="1") as running:
        eventually(lambda: all(listening(sock) for sock in running.supervisor.sockets))
        clients = [socket.create_connection(running.address(), timeout=0.5) for _ in range(CONNECTIONS)]
        try:
            waiting = [client for client in clients if not read_or_timeout(client)]
            assert waiting  # the kernel put some on worker 1's socket
            os.kill(running.pid(1), signal.SIGKILL)
            assert {outcome(client) for client in waiting} <= {"reset", "0"}
        finally:
            for client in clients:
                client.close()


def outcome(client: socket.socket) -> str:
    """What becomes of a waiting connection within 5 s: 'reset', the answering worker's number, or 'waiting'."""
    client.settimeout(5)
    try:
        return client.recv(16).decode()
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "waiting"


def read_or_timeout(client: socket.socket) -> bytes:
    try:
        return client.recv(16)
    except TimeoutError:
        return b""


KILLED_SUPERVISOR = """
import os, sys
from bot.workers import Supervisor, worker_sockets
sockets = worker_sockets("127.0.0.1", 0, 2)
print(sockets[0].getsockname()[1], flush=True)
worker = [sys.executable, "-c", os.environ["STUB_WORKER"]]
Supervisor(command=worker, env=dict(os.environ), sockets=sockets, workers=2).run()
"""
"""A supervisor of two stub workers in a process of its own, printing its port, for a test to kill -9."""


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_workers_of_a_killed_supervisor_end_and_free_its_port() -> None:
    """`kill -9` of `parley serve --workers 2` (an OOM kill) runs none of its stop: its workers kept serving the
    port, and the next start found it in use."""
    env = {**os.environ, "STUB_WORKER": STUB_WORKER, "STUB_CRASHING": "", "STUB_STALLED": "", "STUB_LOAD_S": ""}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    supervisor = subprocess.Popen([sys.executable, "-c", KILLED_SUPERVISOR], env=env, stdout=subprocess.PIPE)
    workers: list[int] = []
    try:
        assert supervisor.stdout is not None
        address = ("127.0.0.1", int(supervisor.stdout.readline()))
        eventually(lambda: set(answers(address)) == {"0", "1"})
        workers = children(supervisor.pid)
        supervisor.kill()
        supervisor.wait(5)
        eventually(lambda: not any(alive(pid) for pid in workers))
        socket.create_server(address).close()  # the port is free for the next start
    finally:
        supervisor.kill()
        supervisor.wait(5)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
