"""`parley serve --workers N`: N server processes on one port.

One Python process spends one core on its event loop (the pipeline, pydantic-ai, HTTP) however many
turns wait on the model; a second process uses the second core. The supervisor opens the database
once (starting the embedded Postgres and migrating it), binds the port, and starts the workers with
a socket and DATABASE_URL; worker 0 alone runs maintenance. SIGTERM or SIGINT goes to every
worker, each drains its turns as a single server does, and the supervisor exits once all have. A
worker that dies is started again after a backoff, on a fresh socket of its own (`Supervisor`).

How connections reach the workers (`worker_sockets`): a client keeps its connection for many
requests, so whoever accepts it serves all of them. With one socket shared by every worker, the
worker whose loop woke first took each new connection: in a load run one worker served every turn
(33.8 against 0.2 ms of CPU per turn) and shed requests while the other sat idle. On Linux each worker
therefore gets a socket of its own on the same port (`SO_REUSEPORT`), and the kernel spreads new
connections over them by a hash of the client's address and port, whichever worker is busy or idle,
as nginx's `reuseport` does. Where the kernel does not balance such sockets (macOS and the BSDs give
every connection to one of them) the workers share one socket as before. Answers that leave work or
refusal behind close their connection, so the client's next request is spread afresh: a shed turn's 503
(adapters/api/deps.py) and, with several workers, a Slack event's ack (bot/front_door.py).

Each worker keeps its own rate-limit windows: with N workers, one person may get up to N times the
per-minute limits, so divide them by N where that matters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.database import database_uri
from bot.settings import Settings
from core.store.migrations import migrate

log = logging.getLogger("parley.workers")
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
STEADY_S = 60.0
"""A worker that ran this long before it died starts again after the first backoff step, not the next one."""
WAKE_S = 0.2
"""The longest the supervisor sleeps between looks at its workers (a worker's exit wakes it at once on Linux)."""


@dataclass(kw_only=True)
class Supervisor:
    """Starts, watches and stops the worker processes.

    Restarts are scheduled, not slept: one worker waiting out its backoff delays neither noticing another's
    death nor stopping. Where every worker has a socket of its own (`own_sockets`), a dead worker's socket is
    closed as soon as its exit is seen, so the kernel gives the port's new connections to the other workers
    instead of queueing them for nobody; its restart gets a fresh socket, which joins the port only when the
    new worker starts listening on it, once loaded. Connections already waiting in the dead socket's queue
    are reset (the client sees a reset and may retry), unless `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14+),
    where the kernel moves them to another worker's socket."""

    command: Sequence[str]
    first_only: Sequence[str] = ()
    """Arguments for worker 0 alone (printing the playground key)."""
    env: dict[str, str]
    sockets: list[socket.socket]
    """Worker i listens on sockets[i % len(sockets)]: one each, or one shared by all."""
    workers: int
    backoff: Sequence[float] = RESTART_BACKOFF_S
    """Seconds before the 1st, 2nd, ... restart of a worker that keeps dying; the last repeats."""
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: int = 0
    """The signal passed on to the workers, once one came."""
    restarts: dict[int, int] = field(default_factory=dict)
    """Restarts in a row of each worker (reset once one runs for `STEADY_S`)."""
    due: dict[int, float] = field(default_factory=dict)
    """When (time.monotonic) each dead worker is to be started again."""
    started: dict[int, float] = field(default_factory=dict)
    exits: dict[int, int] = field(default_factory=dict)
    """A pidfd per running worker, readable once it exits (Linux), so its death wakes the supervisor."""

    def __post_init__(self) -> None:
        self.family = self.sockets[0].family
        self.address = self.sockets[0].getsockname()

    @property
    def own_sockets(self) -> bool:
        return len(self.sockets) > 1

    def start(self, index: int) -> None:
        fd = self.sockets[index % len(self.sockets)].fileno()
        args = [*self.command, *(self.first_only if index == 0 else ()), "--worker-fd", str(fd)]
        args += ["--worker-index", str(index)]
        try:
            process = subprocess.Popen(args, env=self.env, pass_fds=(fd,))
        except ValueError:
            if self.stopping:  # the signal came after the restart was decided and closed the socket
                return
            raise
        self.processes[index] = process
        self.started[index] = time.monotonic()
        self._forget_exit(index)
        if hasattr(os, "pidfd_open"):
            self.exits[index] = os.pidfd_open(process.pid)
        log.info("worker %d started (pid %d)", index, process.pid)

    def stop(self, sig: int, frame: Any = None) -> None:
        if not self.stopping:
            log.info("signal %s: stopping %d worker(s)", signal.Signals(sig).name, len(self.processes))
        self.stopping = sig
        self.due.clear()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(sig)
        # Each worker closes its socket as it stops accepting; the port is free once this copy closes too,
        # so new connections are refused (a balancer tries elsewhere) instead of queueing with nobody to accept.
        for sock in self.sockets:
            sock.close()

    def run(self) -> int:
        for index in range(self.workers):
            self.start(index)
        while not (self.stopping and all(p.poll() is not None for p in self.processes.values())):
            self.wait()
            now = time.monotonic()
            for index, process in self.processes.items():
                if index not in self.due and process.poll() is not None and not self.stopping:
                    self.died(index, process.returncode, now)
            for index, when in list(self.due.items()):
                if when <= now and not self.stopping:
                    del self.due[index]
                    self.restart(index)
        for index in list(self.exits):
            self._forget_exit(index)
        # A worker still loading when the signal came dies of it, with nothing in flight: clean too.
        codes = [0 if p.returncode == -self.stopping else abs(p.returncode) for p in self.processes.values()]
        return max(codes, default=0)

    def wait(self) -> None:
        """Until a worker exits, a restart is due, or WAKE_S has passed."""
        for index, process in self.processes.items():
            if process.poll() is not None:
                self._forget_exit(index)
        timeout = min([WAKE_S, *(when - time.monotonic() for when in self.due.values())])
        if timeout <= 0:
            return
        if self.exits:
            select.select(list(self.exits.values()), [], [], timeout)
        else:
            time.sleep(timeout)

    def _forget_exit(self, index: int) -> None:
        """Close worker `index`'s pidfd: once its process is reaped, it would wake every wait at once."""
        if index in self.exits:
            os.close(self.exits.pop(index))

    def died(self, index: int, code: int, now: float) -> None:
        """Close the worker's own socket, so new connections go to the others, and schedule its restart."""
        tries = 0 if now - self.started[index] >= STEADY_S else self.restarts.get(index, 0)
        wait = self.backoff[min(tries, len(self.backoff) - 1)]
        self.restarts[index] = tries + 1
        self.due[index] = now + wait
        log.error("worker %d exited with %d; starting it again in %.1f s", index, code, wait)
        if self.own_sockets and self.sockets[index].fileno() != -1:
            self.sockets[index].close()

    def restart(self, index: int) -> None:
        if self.own_sockets and self.sockets[index].fileno() == -1:
            try:
                self.sockets[index] = port_socket(self.family, self.address)
            except OSError as exc:
                log.error("worker %d: cannot bind a socket again (%s); trying later", index, exc)
                self.due[index] = time.monotonic() + self.backoff[-1]
                return
        self.start(index)


def supervise(settings: Settings, *, host: str, port: int, workers: int, playground_key: bool) -> int:
    """Run `workers` server processes on one port until SIGTERM/SIGINT; return the exit status."""
    uri = database_uri(settings)
    asyncio.run(migrate(uri))
    sockets = worker_sockets(host, port, workers)
    supervisor = Supervisor(
        command=[sys.executable, "-m", "bot", "serve", "--host", host, "--port", str(port)],
        first_only=["--playground-key"] if playground_key else [],
        env={**os.environ, "DATABASE_URL": uri},
        sockets=sockets,
        workers=workers,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    try:
        return supervisor.run()
    finally:
        for sock in sockets:
            sock.close()


BACKLOG = 2048
BALANCING_KERNEL = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Linux (3.9 and later) spreads connections over sockets that share a port with SO_REUSEPORT."""


def worker_sockets(host: str, port: int, workers: int, *, balanced: bool = BALANCING_KERNEL) -> list[socket.socket]:
    """Inheritable sockets on (host, port) for `workers` processes: one per worker where the kernel balances
    connections over them (`balanced`), else one listening socket for all. Port 0 picks a free port.

    A worker's own socket is bound but not listening: the kernel gives it connections only once its worker
    listens on it (uvicorn does when it starts serving), so none wait in the queue of a worker still loading
    while another could take them, as happens to a single server's connections before it listens.

    The port is first bound once without SO_REUSEPORT, which fails while anything else listens there
    (even another `parley serve` with SO_REUSEPORT, which would otherwise silently take half of the
    connections); the sockets that share it are bound right after."""
    probe = socket.create_server((host, port), backlog=BACKLOG)
    if not balanced or workers == 1:
        probe.set_inheritable(True)
        return [probe]
    family, address = probe.family, probe.getsockname()
    probe.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(workers):
            sockets.append(port_socket(family, address))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def port_socket(family: socket.AddressFamily, address: Any) -> socket.socket:
    """An inheritable socket bound to `address` with SO_REUSEPORT, not yet listening."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
