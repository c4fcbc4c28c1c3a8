"""`parley serve --workers N`: N server processes on one port.

One Python process spends one core on its event loop (the pipeline, pydantic-ai, HTTP) however many
turns wait on the model; a second process uses the second core. The supervisor opens the database
once (starting the embedded Postgres and migrating it), binds the port, and starts the workers with
a socket and DATABASE_URL; worker 0 alone runs maintenance. SIGTERM or SIGINT goes to every
worker, each drains its turns as a single server does, and the supervisor exits once all have. A
worker that dies is started again after a backoff, on a fresh socket of its own (`Supervisor`). At the
first start the workers listen together, once all have loaded (`StartGate`).

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

Metrics: each worker counts in files of its own under a folder the supervisor makes for this start
(prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR), so a scrape of any worker's /metrics, or of
the supervisor's PARLEY_METRICS_PORT, shows every worker's counters added up rather than one worker's, which
went back and forth from scrape to scrape (read by Prometheus as resets). The workers ask the kernel for SIGTERM
when the supervisor dies (bot/children.py): a `kill -9` of it left them serving its port. The folder is named with
the supervisor's pid, and a start removes those whose supervisor is gone (a `kill -9` runs no cleanup, so each one
stayed in the temp folder for good); a live supervisor's is never touched (`metrics_folder`).

Each worker keeps its own rate-limit windows: with N workers, one person may get up to N times the
per-minute limits, so divide them by N where that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import multiprocess

from bot.children import ends_with_this_process
from bot.config_check import ConfigError, Problem
from bot.database import database_uri
from bot.settings import Settings
from core.metrics import MULTIPROCESS_DIR, listen, scrape_registry
from core.processes import runs
from core.store.migrations import migrate

log = logging.getLogger("parley.workers")
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
STEADY_S = 60.0
"""A worker that ran this long before it died starts again after the first backoff step, not the next one."""
WAKE_S = 0.2
"""The longest the supervisor sleeps between looks at its workers (a worker's exit wakes it at once on Linux)."""
GATE_S = 60.0
"""At the first start, the longest a loaded worker waits for the others before it listens anyway."""


@dataclass(kw_only=True)
class StartGate:
    """The first start's barrier, so the port's first connections spread over every worker.

    Each worker's socket joins the port when that worker listens. Without a barrier the first worker to
    load took every connection made before the others listened, `/readyz` included, and a client or proxy
    that keeps its connections alive (as load balancers do) stayed on it. So at the first start each worker
    reports that it has loaded (a byte on `loaded`) and listens only when the supervisor opens the gate
    (closes `gate`, which the workers read to its end): once every worker has loaded or died, once
    `GATE_S` has passed since the first loaded (a worker stuck loading holds nobody back for longer), or
    at a stop. A restarted worker passes no gate: the others already serve."""

    loaded_read: int
    loaded_write: int
    gate_read: int
    gate_write: int
    loaded: int = 0
    first_loaded: float | None = None

    @classmethod
    def open_pipes(cls) -> StartGate:
        loaded_read, loaded_write = os.pipe()
        gate_read, gate_write = os.pipe()
        return cls(loaded_read=loaded_read, loaded_write=loaded_write, gate_read=gate_read, gate_write=gate_write)

    @property
    def worker_fds(self) -> tuple[int, int]:
        return (self.loaded_write, self.gate_read)

    def argument(self) -> str:
        return f"{self.loaded_write},{self.gate_read}"

    def started(self) -> None:
        """Every worker has its copies: the supervisor's own of the workers' ends go, so that `loaded`
        reads to its end once each worker has either reported or died."""
        os.close(self.loaded_write)
        os.close(self.gate_read)

    def heard(self, now: float) -> bool:
        """Read what the workers reported; True once all have loaded or died (no writer is left)."""
        data = os.read(self.loaded_read, 64)
        if data and self.first_loaded is None:
            self.first_loaded = now
        self.loaded += len(data)
        return not data

    def due(self, now: float, wait_s: float) -> bool:
        return self.first_loaded is not None and now - self.first_loaded >= wait_s

    def open(self) -> None:
        os.close(self.gate_write)
        os.close(self.loaded_read)


def pass_start_gate(argument: str) -> None:
    """A worker's side of `StartGate`: report loaded, then wait until the supervisor opens the gate."""
    loaded_write, gate_read = (int(fd) for fd in argument.split(","))
    with contextlib.suppress(BrokenPipeError):  # the gate opened already, without waiting for this worker
        os.write(loaded_write, b"1")
    os.close(loaded_write)
    while os.read(gate_read, 64):
        pass
    os.close(gate_read)


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
    gate_s: float = GATE_S
    """How long loaded workers wait at the first start for the others (`StartGate`)."""
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
    gate: StartGate | None = None
    """The first start's barrier while it is closed (several workers with a socket each)."""
    metrics_dir: str | None = None
    """The workers' PROMETHEUS_MULTIPROC_DIR, where a dead worker is marked dead."""

    def __post_init__(self) -> None:
        self.family = self.sockets[0].family
        self.address = self.sockets[0].getsockname()

    @property
    def own_sockets(self) -> bool:
        return len(self.sockets) > 1

    def start(self, index: int, gate: StartGate | None = None) -> None:
        fd = self.sockets[index % len(self.sockets)].fileno()
        args = [*self.command, *(self.first_only if index == 0 else ()), "--worker-fd", str(fd)]
        args += ["--worker-index", str(index)]
        args += ["--start-gate", gate.argument()] if gate else []
        try:
            process = subprocess.Popen(
                args, env=self.env, pass_fds=(fd, *(gate.worker_fds if gate else ())),
                preexec_fn=ends_with_this_process(),
            )
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
        first, self.stopping = not self.stopping, sig  # before logging: a second signal may come during the log call
        if first:
            log.info("signal %s: stopping %d worker(s)", signal.Signals(sig).name, len(self.processes))
        self.due.clear()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(sig)
        # Each worker closes its socket as it stops accepting; the port is free once this copy closes too,
        # so new connections are refused (a balancer tries elsewhere) instead of queueing with nobody to accept.
        for sock in self.sockets:
            sock.close()

    def run(self) -> int:
        gate = StartGate.open_pipes() if self.own_sockets else None
        for index in range(self.workers):
            self.start(index, gate)
        if gate:
            gate.started()
            self.gate = gate
        while not (self.stopping and all(p.poll() is not None for p in self.processes.values())):
            self.wait()
            now = time.monotonic()
            if self.gate and self.gate.due(now, self.gate_s):
                loaded = self.gate.loaded
                log.warning("%d of %d workers loaded in %.0f s: they serve now", loaded, self.workers, self.gate_s)
                self.open_gate()
            if self.stopping:  # opened here, not in the signal handler, which may interrupt a select on its pipe
                self.open_gate()
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
        readable = [*self.exits.values(), *([self.gate.loaded_read] if self.gate else [])]
        if not readable:
            time.sleep(timeout)
            return
        ready, _, _ = select.select(readable, [], [], timeout)
        if self.gate and self.gate.loaded_read in ready and self.gate.heard(time.monotonic()):
            self.open_gate()

    def open_gate(self) -> None:
        """Let the workers waiting at the first start's gate listen (`StartGate`)."""
        if self.gate:
            self.gate.open()
            self.gate = None

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
        if self.metrics_dir:  # its counters stay in the sum; only live gauges (none yet) would leave
            multiprocess.mark_process_dead(self.processes[index].pid, self.metrics_dir)
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
    metrics_dir = metrics_folder()
    supervisor = Supervisor(
        command=[sys.executable, "-m", "bot", "serve", "--host", host, "--port", str(port)],
        first_only=["--playground-key"] if playground_key else [],
        env={**os.environ, "DATABASE_URL": uri, MULTIPROCESS_DIR: metrics_dir},
        sockets=sockets,
        workers=workers,
        metrics_dir=metrics_dir,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    try:
        with metrics_port(settings, host, metrics_dir):
            return supervisor.run()
    except ConfigError as exc:
        from bot.cli.common import report_problems

        report_problems(exc.problems)
        return 2
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


METRICS_FOLDER = "parley-metrics-"
_OWNED_FOLDER = re.compile(rf"{METRICS_FOLDER}([0-9]+)-.+")
"""A supervisor's metrics folder: the prefix, its pid, a random part. Older Parleys left the pid out; such a
folder cannot be told from a live one, so it is left alone."""


def metrics_folder(parent: str | None = None) -> str:
    """A new folder for the workers' metrics files in `parent` (the temp folder), named with this supervisor's
    pid, once the folders of supervisors that are gone are removed."""
    remove_stale_metrics_folders(parent)
    return tempfile.mkdtemp(prefix=f"{METRICS_FOLDER}{os.getpid()}-", dir=parent)


def remove_stale_metrics_folders(parent: str | None = None) -> list[str]:
    """Remove the metrics folders in `parent` whose supervisor no longer runs (killed with no cleanup); return
    their paths. A pid another process has taken since keeps its folder until that process ends too: a live
    supervisor's folder must never go, and a leftover folder costs only a little disk."""
    removed: list[str] = []
    try:
        with os.scandir(parent or tempfile.gettempdir()) as entries:
            stale = [
                entry.path for entry in entries
                if (owner := _OWNED_FOLDER.fullmatch(entry.name))
                and entry.is_dir(follow_symlinks=False) and not runs(int(owner[1]))
            ]
    except OSError:  # an unreadable temp folder: the start goes on, as mkdtemp will say what is wrong
        return removed
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)  # another user's folder stays: the temp folder is sticky
        if not os.path.lexists(path):
            removed.append(path)
    if removed:
        log.info("removed %d metrics folder(s) of supervisors that were killed: %s", len(removed), ", ".join(removed))
    return removed


@contextlib.contextmanager
def metrics_port(settings: Settings, host: str, directory: str | None = None) -> Iterator[None]:
    """PARLEY_METRICS_PORT's listener while the block runs (the supervisor's with several workers, adding up the
    workers' counters in `directory`): /metrics with no token, said loudly, since the port must stay private."""
    port = settings.parley_metrics_port
    if port is None:
        yield
        return
    try:
        server = listen(host, port, scrape_registry(directory))
    except OSError as exc:
        problem = Problem(
            variable="PARLEY_METRICS_PORT", value=str(port), what=f"cannot listen on {host}:{port} ({exc.strerror})",
            fix="choose a free port other than PORT, or unset PARLEY_METRICS_PORT",
        )
        raise ConfigError([problem]) from None
    log.warning(
        "metrics at http://%s:%d/metrics with no token (PARLEY_METRICS_PORT): keep port %d private, "
        "reachable only by your scraper, never published", host, server.server_port, server.server_port,
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


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
