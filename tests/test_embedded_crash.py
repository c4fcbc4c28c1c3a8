"""The embedded Postgres after a crash: what a killed Parley or a lost machine leaves behind must neither
block the next start nor keep a server running after everyone has left."""

from __future__ import annotations

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

from core.store.embedded import EmbeddedPostgresError, clear_stale_state, start_embedded

ROOT = Path(__file__).resolve().parents[1]
START = "import sys, pathlib; from core.store.embedded import start_embedded; start_embedded(pathlib.Path(sys.argv[1]))"
"""A process that starts (or joins) the embedded server of the folder in argv[1] and exits."""


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
    for process in psutil.process_iter(["cmdline"]):
        if pgdata in (process.info["cmdline"] or []) and process.status() != psutil.STATUS_ZOMBIE:
            return process
    return None


def _python(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], env=env, stdin=subprocess.PIPE)


def _holding(folder: Path) -> subprocess.Popen[bytes]:
    """A process that started the folder's server and uses it until its stdin closes."""
    holder = _python("-c", START + "; sys.stdin.read()", str(folder))
    deadline = time.monotonic() + 60
    while _postmaster(folder) is None or not (folder / "pg" / ".handle_pids.json").exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    return holder


def test_a_server_left_by_a_killed_process_stops_when_the_next_user_exits(folder: Path) -> None:
    killed = _holding(folder)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    orphan = _postmaster(folder)
    assert orphan is not None

    assert _python("-c", START, str(folder)).wait(60) == 0

    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE


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
