"""`parley serve --workers N`'s metrics folder: one a killed supervisor left in the temp folder is removed at the
next start, and a live supervisor's never. Real processes, killed with SIGKILL as an OOM kill would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.workers import metrics_folder

SUPERVISOR = """
import sys, time
from bot.workers import metrics_folder
print(metrics_folder(sys.argv[1]), flush=True)
time.sleep(600)
"""
"""A process that makes its metrics folder as a supervisor does and lives on, printing the folder."""


@contextmanager
def supervisor_with_folder(parent: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(parent)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process, Path(process.stdout.readline().strip())
    finally:
        process.kill()
        process.wait(10)


def test_a_killed_supervisors_metrics_folder_is_removed_at_the_next_start(tmp_path: Path) -> None:
    with supervisor_with_folder(tmp_path) as (killed, left):
        (left / "counter_123.db").write_bytes(b"\0" * 64)
        killed.kill()
        killed.wait(10)
    ours = Path(metrics_folder(str(tmp_path)))
    assert not left.exists()
    assert [p.name for p in tmp_path.iterdir()] == [ours.name]


def test_a_running_supervisors_metrics_folder_is_kept(tmp_path: Path) -> None:
    with supervisor_with_folder(tmp_path) as (_, live):
        ours = Path(metrics_folder(str(tmp_path)))
        assert live.is_dir() and ours.is_dir() and live != ours


def test_a_metrics_folder_that_names_no_supervisor_is_left_alone(tmp_path: Path) -> None:
    older = tmp_path / "parley-metrics-k2j4h5g1"  # an older Parley's: no pid in its name
    older.mkdir()
    metrics_folder(str(tmp_path))
    assert older.is_dir()
