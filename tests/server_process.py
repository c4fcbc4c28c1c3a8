"""The one way tests run a server process (`parley serve`, llama-cpp-python's server): in its own process
group, so stopping it stops its workers too; ending with the test run, even one that was killed (it gets
SIGTERM when the run's process dies: bot/children.py); its output in a log file, which nothing has to drain
and a test can read from an offset; started only once it answers its health URL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.children import ends_with_this_process


@dataclass(frozen=True, kw_only=True)
class ServerProcess:
    """A started server: its process (the group's leader), its base URL and its log."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self, since: int = 0) -> str:
        """Its output (stdout and stderr together) from byte offset `since`."""
        return self.log_path.read_bytes()[since:].decode("utf-8", "replace")

    def log_size(self) -> int:
        """The log's length now: pass it to `log` later to read only what came after."""
        return self.log_path.stat().st_size

    def wait_for_log(self, text: str, *, timeout_s: float = 30) -> str:
        """The log once it contains `text`."""
        deadline = time.monotonic() + timeout_s
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} did not appear in the log: {log[-3000:]}"
            time.sleep(0.1)
        return log

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout_s: float = 60) -> int:
        """Signal the process (only the leader: it stops its workers itself) and return its exit status."""
        self.process.send_signal(sig)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """Kill the whole group at once and reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)


def start_server(
    command: Sequence[str],
    *,
    url: str,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    health_path: str = "/healthz",
    timeout_s: float = 150,
) -> ServerProcess:
    """Start `command` and return once `url + health_path` answers 200; the group is killed if it never does."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=ends_with_this_process(),
        )
    server = ServerProcess(process=process, url=url, log_path=log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            assert process.poll() is None, f"{' '.join(command)} exited early: {server.log()[-3000:]}"
            assert time.monotonic() < deadline, f"{url} did not become healthy in {timeout_s:.0f} s"
            try:
                if httpx.get(f"{url}{health_path}", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    except BaseException:
        server.kill()
        raise
