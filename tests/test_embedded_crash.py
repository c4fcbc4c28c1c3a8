"""The embedded Postgres after a crash: what a killed Parley or a lost machine leaves behind must neither
block the next start nor keep a server running after everyone has left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.store.embedded import WATCHER, EmbeddedPostgresError, clear_stale_state, start_embedded

ROOT = Path(__file__).resolve().parents[1]
START = "import sys, pathlib; from core.store.embedded import start_embedded; start_embedded(pathlib.Path(sys.argv[1]))"
"""A process that starts (or joins) the embedded server of the folder in argv[1] and exits."""
LOGGED_START = "import logging; logging.basicConfig(level=logging.INFO); " + START


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short data folder of its own; any server left in it is stopped at the end."""
    path = Path(tempfile.mkdtemp(prefix="pc", dir="/tmp"))
    yield path
    postmaster = _postmaster(path)
    if postmaster is not None:
        postmaster.kill()
    shutil.rmtree(path, ignore_errors=True)


def _postmaster(folder: Path) -> psutil.Process | None:
    """The live Postgres serving `folder`, if any."""
    pgdata = str((folder / "pg").resolve())
    for process in psutil.process_iter(["name", "cmdline"]):
        serves = process.info["name"] == "postgres" and pgdata in (process.info["cmdline"] or [])
        if serves and process.status() != psutil.STATUS_ZOMBIE:  # not its watcher, which names the folder too
            return process
    return None


def _python(*args: str, stdin: int = subprocess.DEVNULL, stderr: int | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], env=env, stdin=stdin, stderr=stderr)


def _watcher(holder: subprocess.Popen[bytes]) -> psutil.Process:
    """The process that watches `holder` for the embedded server."""
    [watcher] = [p for p in psutil.Process(holder.pid).children() if str(WATCHER) in p.cmdline()]
    return watcher


def _stopped(process: psutil.Process, timeout_s: float = 60) -> bool:
    with contextlib.suppress(psutil.TimeoutExpired):
        process.wait(timeout_s)
    return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE


def _listed(folder: Path) -> list[int]:
    """The pids pgserver's list names as the server's users (none while it has none, or is being written)."""
    try:
        listed: list[int] = json.loads((folder / "pg" / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return []
    return listed


def _holding(folder: Path) -> subprocess.Popen[bytes]:
    """A process that started the folder's server and uses it until its stdin closes."""
    holder = _python("-c", START + "; sys.stdin.read()", str(folder), stdin=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _postmaster(folder) is None or holder.pid not in _listed(folder):
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    return holder


def test_the_server_of_a_killed_process_stops_with_it(folder: Path) -> None:
    killed = _holding(folder)
    server = _postmaster(folder)
    assert server is not None

    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)

    assert _stopped(server)
    assert _listed(folder) == []


def test_the_server_of_a_killed_process_runs_on_for_another_process_using_it(folder: Path) -> None:
    killed, other = _holding(folder), _holding(folder)
    server = _postmaster(folder)
    assert server is not None

    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    deadline = time.monotonic() + 30
    while killed.pid in _listed(folder):  # its watcher takes it off
        assert time.monotonic() < deadline
        time.sleep(0.1)

    assert server.is_running() and _listed(folder) == [other.pid]
    other.communicate(b"", timeout=60)
    assert _stopped(server)


def test_a_server_left_by_a_process_killed_with_its_watcher_is_taken_over_and_stops_with_the_next_user(
    folder: Path,
) -> None:
    killed = _holding(folder)
    _watcher(killed).kill()
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    orphan = _postmaster(folder)
    assert orphan is not None

    next_user = _python("-c", LOGGED_START, str(folder), stderr=subprocess.PIPE)
    _, said = next_user.communicate(timeout=60)

    assert next_user.returncode == 0
    assert f"took over the embedded Postgres (pid {orphan.pid}) left running by Parley process(es) {killed.pid}" in (
        said.decode()
    )
    assert _stopped(orphan, 10)


def test_a_postmaster_pid_naming_another_process_after_a_power_loss_does_not_block_the_start(folder: Path) -> None:
    assert _python("-c", START, str(folder)).wait(60) == 0
    pid_file = folder / "pg" / "postmaster.pid"
    lines = ["1", str((folder / "pg").resolve()), "1700000000", "5432", str((folder / "pg").resolve()), "", "0 0",
             "ready"]
    pid_file.write_text("\n".join(lines) + "\n")  # pid 1 lives, and is no Postgres of this folder

    assert start_embedded(folder).startswith("postgresql://")


def test_a_handle_list_cut_short_by_a_crash_is_started_afresh(folder: Path) -> None:
    handles = folder / "pg" / ".handle_pids.json"
    handles.parent.mkdir()
    handles.write_text('[12')

    clear_stale_state(handles.parent)

    assert json.loads(handles.read_text()) == []


def test_a_server_that_cannot_start_is_reported_in_postgres_own_words(folder: Path) -> None:
    assert _python("-c", START, str(folder)).wait(60) == 0
    with (folder / "pg" / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = banana\n")

    with pytest.raises(EmbeddedPostgresError, match=r'invalid value for parameter "shared_buffers"'):
        start_embedded(folder)


def test_a_server_of_this_folder_running_out_of_sight_is_refused_not_started_twice(folder: Path) -> None:
    holder = _holding(folder)
    pid_file = folder / "pg" / "postmaster.pid"
    real = pid_file.read_text()
    unseen = next(pid for pid in range(4_000_000, 4_100_000) if not psutil.pid_exists(pid))
    pid_file.write_text(f"{unseen}\n" + real.split("\n", 1)[1])  # as another container's pid looks from here

    try:
        with pytest.raises(EmbeddedPostgresError, match=f"another Postgres serves .*pid {unseen}"):
            clear_stale_state(folder / "pg")
    finally:
        pid_file.write_text(real)
        holder.communicate(b"", timeout=60)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 64 MiB filesystem of its own (tmpfs), where mounting one is permitted."""
    path = Path(tempfile.mkdtemp(prefix="pk", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield path
    postmaster = _postmaster(path)
    if postmaster is not None:
        postmaster.kill()
        postmaster.wait(10)
    subprocess.run(["umount", "--lazy", str(path)], check=True)
    path.rmdir()


def test_a_full_disk_is_named_as_such_and_the_next_start_after_freeing_it_works(small_disk: Path) -> None:
    assert _python("-c", START, str(small_disk)).wait(60) == 0
    filler = small_disk / "filler"
    with filler.open("wb") as fill, pytest.raises(OSError, match="No space left"):
        fill.write(b"\0" * 128 * 2**20)

    with pytest.raises(EmbeddedPostgresError, match="The disk holding PARLEY_DATA_DIR is full"):
        start_embedded(small_disk)

    filler.unlink()
    assert start_embedded(small_disk).startswith("postgresql://")
