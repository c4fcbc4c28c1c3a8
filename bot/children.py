"""Child processes that end with the process that started them.

`kill -9` of `parley serve` (an OOM killer, a supervisor's hard stop) runs none of Parley's cleanup, so
children it started kept running: the local model's server held ~400 MB and a port, and the workers of a
killed `--workers N` supervisor kept serving its port, so the next start found it in use. On Linux a child
asks the kernel for SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`), set between fork and exec.
Elsewhere nothing changes.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., Any] | None:
    """libc's `prctl` from the process's own symbols (`ctypes.util.find_library` would run `ldconfig`), looked
    up in the parent, on its first child: between fork and exec the child should do as little as it can."""
    if sys.platform != "linux":
        return None
    import ctypes  # only where a child is started: ~20 ms of a cold start otherwise

    prctl: Callable[..., Any] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def ends_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that makes the child get SIGTERM when this process dies, or None
    where the kernel offers no such request.

    The signal follows the thread that forks, so start children from a thread that lives as long as the
    process (the main thread or the serving loop's). If this process died before the child's request took
    effect, the child ends at once rather than live on as an orphan."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def request() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return request
