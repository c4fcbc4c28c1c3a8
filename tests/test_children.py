"""Children end with the process that started them, even when it is killed with SIGKILL (Linux)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bot.children import ends_with_this_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
ROOT = Path(__file__).resolve().parents[1]
PARENT = """
import subprocess, sys, time
from bot.children import ends_with_this_process
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=ends_with_this_process())
print(child.pid, flush=True)
time.sleep(120)
"""


def gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_child_ends_when_the_process_that_started_it_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert gone(child)
    finally:
        if not gone(child, 0):
            psutil.Process(child).kill()


def test_a_child_runs_on_while_its_parent_lives() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    child = subprocess.Popen(sleeper, preexec_fn=ends_with_this_process())
    try:
        assert not gone(child.pid, 0.5)
    finally:
        child.kill()
        child.wait()
