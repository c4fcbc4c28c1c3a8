"""Whether a process still runs, as the clean-ups after a `kill -9` need to know (the embedded Postgres's list
of its users, the supervisors' metrics folders): a zombie has ended; a process this user may not look at is
taken to run, since what belongs to a live process must never be removed."""

from __future__ import annotations

import psutil


def runs(pid: int) -> bool:
    """Whether process `pid` runs."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
