"""A test run leaves no process behind, whether it ends, is killed, or is interrupted: the session's embedded
Postgres and the servers the tests start end with it (a killed run's lingered with parent 1, a finished run's
Postgres too, its folder removed under it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
HOLDING = """
import os, time

def test_holds_the_database(pg_uri, data_dir):
    print(data_dir, flush=True)
    if os.environ.get("HOLD"):
        time.sleep(600)
"""
SERVING = """
import sys, time
from pathlib import Path
from tests.server_process import start_server
server = start_server([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", sys.argv[1]],
                      url=f"http://127.0.0.1:{sys.argv[1]}", env={}, cwd=Path.cwd(), log_path=Path("server.log"),
                      health_path="/")
print(server.process.pid, flush=True)
time.sleep(600)
"""
"""A test run's process in miniature: it starts a server as the tests' fixtures do and waits to be killed."""


def _postgres_of(folder: str) -> list[psutil.Process]:
    """The live Postgres processes serving `folder`."""
    pgdata = str((Path(folder) / "pg").resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            serves = process.info["name"] == "postgres" and pgdata in (process.info["cmdline"] or [])
            if serves and process.status() != psutil.STATUS_ZOMBIE:  # not its watcher, which names the folder too
                found.append(process)
    return found


def _ended(process: psutil.Process, timeout_s: float = 60) -> bool:
    with contextlib.suppress(psutil.TimeoutExpired):
        process.wait(timeout_s)
    return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE


def _test_run(folder: Path, *, hold: bool) -> subprocess.Popen[str]:
    """A pytest run in a process of its own, on one test that uses the session's database; it prints the data
    folder first. Holding, it waits to be killed."""
    (folder / "test_inner.py").write_text(HOLDING)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOLD": "1" if hold else ""}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=session", "test_inner.py"],
        cwd=folder, env=env, stdout=subprocess.PIPE, text=True,
    )


def test_a_finished_test_run_leaves_no_postgres_running(tmp_path: Path) -> None:
    run = _test_run(tmp_path, hold=False)
    assert run.stdout is not None
    folder = run.stdout.readline().strip()
    [server] = _postgres_of(folder)

    assert run.wait(120) == 0

    assert _ended(server, 10)


def test_a_killed_test_run_leaves_no_postgres_running(tmp_path: Path) -> None:
    run = _test_run(tmp_path, hold=True)
    try:
        assert run.stdout is not None
        folder = run.stdout.readline().strip()
        [server] = _postgres_of(folder)

        run.send_signal(signal.SIGKILL)
        run.wait(30)

        assert _ended(server)
    finally:
        run.kill()
        run.wait(30)


def test_a_server_a_test_started_ends_when_the_test_run_is_killed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-c", SERVING, str(free_port())], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        server = psutil.Process(int(run.stdout.readline()))

        run.send_signal(signal.SIGKILL)
        run.wait(30)

        assert _ended(server, 30)
    finally:
        run.kill()
        run.wait(30)
