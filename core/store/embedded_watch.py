"""Stops the embedded Postgres when the Parley that used it dies without stopping it (`kill -9`, the OOM killer).

Run as a script by `core.store.embedded.watch` (by path, so it needs nothing of Parley importable), one per
process that joined the server, with the read end of a pipe as stdin whose write end only that process holds.
The pipe closes when the process ends, however it ends. By then a process that exited normally has done
pgserver's own clean-up (taken its pid off `pg/.handle_pids.json` and stopped the server if it was the last),
and there is nothing left to do. A process that was killed is still listed: it is taken off, and if no listed
process runs any more the server is asked for Postgres' fast shutdown (SIGINT, as `pg_ctl stop -m fast`). All
under pgserver's inter-process lock, so a Parley starting meanwhile either joins first (and the server stays) or
starts it afresh.

Usage: python embedded_watch.py PID PGDATA LOCK_FILE
"""

from __future__ import annotations

import fcntl
import json
import signal
import sys
from pathlib import Path

STOP_S = 60
"""The longest a fast shutdown is waited for (it takes about a second: a checkpoint)."""


def release(pid: int, pgdata: Path) -> None:
    """Take the dead `pid` off the server's users; stop the server if no user is left."""
    import psutil  # only now: the watcher waits all its life with ~3 MB less

    def runs(user: int) -> bool:
        """As core.processes.runs: a zombie has ended; someone else's process is taken to run."""
        try:
            return psutil.Process(user).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True

    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list) or pid not in pids:
        return
    alive = [p for p in pids if p != pid and isinstance(p, int) and runs(p)]
    handles.write_text(json.dumps(alive))
    if alive:
        return
    try:
        postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0]))
        if str(pgdata) not in postmaster.cmdline():
            return  # not this folder's server
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(STOP_S)  # a start waiting on the lock must not find a server that is shutting down
    except (OSError, ValueError, psutil.Error):
        return  # no server of this folder runs, or it did not stop in time (the next start reports it)


def main(pid: int, pgdata: Path, lock_file: Path) -> None:
    while sys.stdin.buffer.read(65536):
        pass
    try:
        with lock_file.open("a") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)  # the lock pgserver's start and stop take (fasteners uses lockf too)
            release(pid, pgdata)
    except OSError:
        return  # the data or runtime folder was removed: nothing is left to stop


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
