"""The embedded Postgres (pgserver) used when no DATABASE_URL is given.

pgserver listens on a Unix socket inside its data folder; the socket path must stay under the
kernel's 107-byte limit, so a too-deep data folder is refused with a clear message.

pgserver shares one server between the processes that use a data folder: each adds its pid to
`pg/.handle_pids.json`, and the last to exit stops the server. A process killed with SIGKILL (or a
machine that lost power) leaves its pid there and, after a power loss, a `postmaster.pid` naming a
process id that may belong to something else after the reboot. Both are cleared before a start
(`clear_stale_state`): otherwise the next start hands out the socket of a server that is gone, or
Postgres refuses to start, and no later exit ever stops the server again. A server that answers on the
folder's socket while its pid is no process here runs in another container or machine: that is refused,
as two servers on one folder would corrupt it.

A killed process's server does not outlive it either: each process that joins the server starts a small
watcher (core/store/embedded_watch.py) that sees the process end and, if it ended without pgserver's
clean-up and was the server's last user, stops the server. Where the watcher could not (it was killed too),
the next start finds the server running with no user left, takes it over and says so in the log.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from core.processes import runs

SOCKET_LIMIT = 107
SERVER_LOG_LINES = 5
"""Lines of Postgres' own log quoted when it fails to start: enough for its FATAL line and hint."""
HANDLES = ".handle_pids.json"
_LOCK_FILES = ("postmaster.pid", ".s.PGSQL.5432.lock")
"""Files whose first line is the pid of the postmaster that owns the folder (the data lock, the socket's)."""
WATCHER = Path(__file__).with_name("embedded_watch.py")
log = logging.getLogger(__name__)
_servers: dict[Path, Any] = {}
_starting = threading.Lock()
"""One start at a time: a command may start the server early in a thread while it imports the rest."""


class EmbeddedPostgresError(RuntimeError):
    pass


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives under `data_dir`; return its URI.

    The data survives restarts: the folder is kept, only the server process stops with ours.
    """
    pgdata = (data_dir / "pg").resolve()
    if len(str(pgdata / ".s.PGSQL.5432")) >= SOCKET_LIMIT:
        raise EmbeddedPostgresError(
            f"PARLEY_DATA_DIR is too deep for Postgres' socket path ({pgdata}); choose a shorter folder"
        )
    with _starting:
        if pgdata not in _servers:
            with warnings.catch_warnings():
                # pgserver asks for the user's runtime folder on import; without XDG_RUNTIME_DIR (any
                # container) platformdirs warns on every command and falls back to /tmp, which is fine.
                warnings.simplefilter("ignore", UserWarning)
                import pgserver

            log_start = _size(pgdata / "log")
            try:
                pgdata.parent.mkdir(parents=True, exist_ok=True)
                if pgdata.is_dir():
                    with pgserver.PostgresServer._lock:  # the lock pgserver's own start and stop take
                        users = clear_stale_state(pgdata)
                        if users.orphaned is not None:
                            log.info("took over the embedded Postgres (pid %d) left running by Parley process(es) %s, "
                                     "which ended without stopping it; it stops when the last Parley using it exits",
                                     users.orphaned, ", ".join(map(str, users.gone)))
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
                server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
            except Exception as exc:
                # pgserver keeps a server that failed to start as this folder's: the next try would get it back
                pgserver.PostgresServer._instances.pop(pgdata, None)
                if isinstance(exc, subprocess.CalledProcessError | subprocess.TimeoutExpired):
                    raise EmbeddedPostgresError(not_started(pgdata, log_start)) from exc
                if isinstance(exc, OSError):
                    raise EmbeddedPostgresError(
                        f"the embedded Postgres in {pgdata} could not start: {exc.strerror} ({exc.filename})"
                        + _advice(exc.errno)
                    ) from exc
                raise
            _servers[pgdata] = server
            watch(pgdata, Path(pgserver.PostgresServer.lock_path))
    uri: str = _servers[pgdata].get_uri()
    return uri


@dataclass(frozen=True, kw_only=True)
class Users:
    """Who pgserver's list named as the server's users, after `clear_stale_state`."""

    alive: list[int]
    gone: list[int]
    """Processes that ended without taking themselves off (killed)."""
    postmaster: int | None
    """This folder's running server, if one runs."""

    @property
    def orphaned(self) -> int | None:
        """The pid of a server that outlived every process that used it, or None."""
        return self.postmaster if self.gone and not self.alive else None


def stop_embedded(data_dir: Path) -> None:
    """Leave the embedded server of `data_dir` now rather than at this process's exit, as pgserver's clean-up
    does then: it stops if this process was its last user. Call it before removing the folder: at exit
    pgserver finds no list of users in a removed folder and leaves the server running, with its data gone."""
    pgdata = (data_dir / "pg").resolve()
    with _starting:
        server = _servers.pop(pgdata, None)
        if server is not None:
            server.cleanup()


def clear_stale_state(pgdata: Path) -> Users:
    """Forget what processes that died without stopping left behind: their pids in pgserver's list of
    the server's users, and lock files naming a process that is not this folder's postmaster."""
    pid = _first_line_pid(pgdata / "postmaster.pid")
    postmaster = pid if pid is not None and _is_postmaster_of(pid, pgdata) else None
    if pid is not None and postmaster is None and _answers(pgdata / ".s.PGSQL.5432"):
        raise EmbeddedPostgresError(
            f"another Postgres serves {pgdata} (its postmaster.pid names pid {pid}, which is no Postgres "
            "on this machine): a Parley in another container or on another machine shares this "
            "PARLEY_DATA_DIR. Stop it, or give each its own data folder; one folder serves one machine"
        )
    for name in _LOCK_FILES:
        lock = pgdata / name
        pid = _first_line_pid(lock)
        if pid is not None and not _is_postmaster_of(pid, pgdata):
            lock.unlink(missing_ok=True)
    handles = pgdata / HANDLES
    try:
        pids = json.loads(handles.read_text())
    except FileNotFoundError:
        return Users(alive=[], gone=[], postmaster=postmaster)
    except ValueError:
        pids = None  # cut short by a crash while pgserver wrote it
    listed = [pid for pid in pids if isinstance(pid, int)] if isinstance(pids, list) else []
    alive = [pid for pid in listed if runs(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
    return Users(alive=alive, gone=[pid for pid in listed if pid not in alive], postmaster=postmaster)


class _Watcher(subprocess.Popen[bytes]):
    """A child meant to outlive this process's handle on it: it ends after this process does."""

    def __del__(self) -> None:
        """Not Popen's: it would warn "subprocess N is still running" for a child that is meant to."""


_watching: list[int] = []
"""The write ends of the watchers' pipes: open for as long as this process lives."""


def watch(pgdata: Path, lock_file: Path) -> None:
    """Start the watcher that stops the server if this process is killed while it is its last user (see the
    module's docstring); not on Windows, which has neither the lock it takes nor the signal it sends."""
    if sys.platform == "win32":
        return
    read, write = os.pipe()
    try:
        _Watcher(
            [sys.executable, str(WATCHER), str(os.getpid()), str(pgdata), str(lock_file)],
            stdin=read, stdout=subprocess.DEVNULL, start_new_session=True,  # no Ctrl-C of the terminal's group
        )
    finally:
        os.close(read)
    _watching.append(write)


def not_started(pgdata: Path, log_start: int = 0) -> str:
    """Why the embedded server did not start, in Postgres' own words: what this start added to its log
    (from byte `log_start`), its last lines."""
    log = pgdata / "log"
    lines: list[str] = []
    with contextlib.suppress(OSError), log.open("rb") as file:
        file.seek(log_start)
        lines = [line for line in file.read().decode(errors="replace").splitlines() if line.strip()]
    said = "\n  ".join(lines[-SERVER_LOG_LINES:]) if lines else "(its log is empty)"
    full = any(os.strerror(errno.ENOSPC) in line for line in lines)
    return (f"the embedded Postgres in {pgdata} did not start; the end of its log ({log}):\n  {said}"
            + (_advice(errno.ENOSPC) if full else ""))


def _advice(code: int | None) -> str:
    """What to do about a data folder's disk error; the data already written stays as it was."""
    if code == errno.ENOSPC:
        return ("\nThe disk holding PARLEY_DATA_DIR is full: free space on it (`df -h` shows how much is left), "
                "then start Parley again; nothing stored so far is lost")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ("\nPARLEY_DATA_DIR must be a folder this user can write, on a disk mounted read-write (its "
                "owner and mount show why not)")
    return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _first_line_pid(path: Path) -> int | None:
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _answers(socket_path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket (whoever it is and wherever it runs)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is a live Postgres serving `pgdata` (after a reboot the pid may be anyone's)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return str(pgdata) in process.cmdline()
    except psutil.AccessDenied:
        return True  # someone else's process: not ours to judge, Postgres will say so itself
    except psutil.Error:
        return False


def postgres_tool(name: str) -> str:
    """The path of a Postgres client program (`pg_dump`, `pg_restore`, `psql`): the one pgserver ships, of
    the embedded server's version, or else the one on PATH."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name
        if bundled.is_file():
            return str(bundled)
    found = shutil.which(name)
    if found is None:
        raise EmbeddedPostgresError(f"{name} was not found: install pgserver (a Parley dependency) or PostgreSQL's "
                                    "client programs")
    return found
