"""`parley serve --workers N`: N server processes sharing one listening socket.

One Python process spends one core on its event loop (the pipeline, pydantic-ai, HTTP) however many
turns wait on the model; a second process uses the second core. The supervisor opens the database
once (starting the embedded Postgres and migrating it), binds the port, and starts the workers with
the socket and DATABASE_URL; worker 0 alone runs maintenance. The kernel hands each connection to
whichever worker accepts first. SIGTERM or SIGINT goes to every worker, each drains its turns as a
single server does, and the supervisor exits once all have. A worker that dies is started again.

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
    sock: socket.socket
    workers: int
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: int = 0
    """The signal passed on to the workers, once one came."""
    restarts: dict[int, int] = field(default_factory=dict)

    def start(self, index: int) -> None:
        fd = self.sock.fileno()
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
    """Run `workers` server processes on one socket until SIGTERM/SIGINT; return the exit status."""
    uri = database_uri(settings)
    asyncio.run(migrate(uri))
    sock = socket.create_server((host, port), backlog=2048)
    sock.set_inheritable(True)
    supervisor = Supervisor(
        command=[sys.executable, "-m", "bot", "serve", "--host", host, "--port", str(port)],
        first_only=["--playground-key"] if playground_key else [],
        env={**os.environ, "DATABASE_URL": uri},
        sock=sock,
        workers=workers,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    try:
        return supervisor.run()
    finally:
        sock.close()
