"""`parley serve --workers N`: N server processes on one port.

One Python process spends one core on its event loop (the pipeline, pydantic-ai, HTTP) however many
turns wait on the model; a second process uses the second core. The supervisor opens the database
once (starting the embedded Postgres and migrating it), binds the port, and starts the workers with
a listening socket and DATABASE_URL; worker 0 alone runs maintenance. SIGTERM or SIGINT goes to every
worker, each drains its turns as a single server does, and the supervisor exits once all have. A
worker that dies is started again on the same socket (connections that arrive meanwhile wait in its queue).

How connections reach the workers (`listening_sockets`): a client keeps its connection for many
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


@dataclass(kw_only=True)
class Supervisor:
    """Starts, watches and stops the worker processes."""

    command: Sequence[str]
    first_only: Sequence[str] = ()
    """Arguments for worker 0 alone (printing the playground key)."""
    env: dict[str, str]
    sockets: Sequence[socket.socket]
    """Worker i listens on sockets[i % len(sockets)]: one each, or one shared by all."""
    workers: int
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: int = 0
    """The signal passed on to the workers, once one came."""
    restarts: dict[int, int] = field(default_factory=dict)

    def start(self, index: int) -> None:
        fd = self.sockets[index % len(self.sockets)].fileno()
        args = [*self.command, *(self.first_only if index == 0 else ()), "--worker-fd", str(fd)]
        args += ["--worker-index", str(index)]
        self.processes[index] = subprocess.Popen(args, env=self.env, pass_fds=(fd,))
        log.info("worker %d started (pid %d)", index, self.processes[index].pid)

    def stop(self, sig: int, frame: Any = None) -> None:
        if not self.stopping:
            log.info("signal %s: stopping %d worker(s)", signal.Signals(sig).name, len(self.processes))
        self.stopping = sig
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
        while True:
            time.sleep(0.2)
            for index, process in list(self.processes.items()):
                code = process.poll()
                if code is None or self.stopping:
                    continue
                tries = self.restarts.get(index, 0)
                wait = RESTART_BACKOFF_S[min(tries, len(RESTART_BACKOFF_S) - 1)]
                log.error("worker %d exited with %d; starting it again in %.0f s", index, code, wait)
                self.restarts[index] = tries + 1
                time.sleep(wait)
                if not self.stopping:
                    self.start(index)
            if self.stopping and all(p.poll() is not None for p in self.processes.values()):
                # A worker still loading when the signal came dies of it, with nothing in flight: clean too.
                codes = [0 if p.returncode == -self.stopping else abs(p.returncode) for p in self.processes.values()]
                return max(codes, default=0)


def supervise(settings: Settings, *, host: str, port: int, workers: int, playground_key: bool) -> int:
    """Run `workers` server processes on one port until SIGTERM/SIGINT; return the exit status."""
    uri = database_uri(settings)
    asyncio.run(migrate(uri))
    sockets = listening_sockets(host, port, workers)
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


def listening_sockets(host: str, port: int, workers: int, *, balanced: bool = BALANCING_KERNEL) -> list[socket.socket]:
    """Listening sockets on (host, port) for `workers` processes, inheritable: one per worker where the
    kernel balances connections over them (`balanced`), else one for all. Port 0 picks a free port.

    The port is first bound once without SO_REUSEPORT, which fails while anything else listens there
    (even another `parley serve` with SO_REUSEPORT, which would otherwise silently take half of the
    connections); the sockets that share it are bound right after."""
    probe = socket.create_server((host, port), backlog=BACKLOG)
    if not balanced or workers == 1:
        probe.set_inheritable(True)
        return [probe]
    port = probe.getsockname()[1]
    probe.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(workers):
            sockets.append(socket.create_server((host, port), backlog=BACKLOG, reuse_port=True))
            sockets[-1].set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
