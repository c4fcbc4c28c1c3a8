"""`parley db backup` and `parley db restore`: an operator's copy of everything Parley knows, taken to a new
machine (here: a new data folder) and brought back whole, never over data by accident."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.backup import BackupError, backup
from tests.fakes.openai_server import FakeOpenAI
from tests.test_cli import model_env, parley


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="pb", dir="/tmp"))


@pytest.fixture(scope="module")
def first() -> Iterator[Path]:
    """The data folder of the machine that was backed up."""
    path = _folder()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def second() -> Iterator[Path]:
    """A new machine's empty data folder."""
    path = _folder()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sams_backup(first: Path, fake_openai: FakeOpenAI) -> tuple[Path, dict[str, object]]:
    """A backup of a database in which Sam told Parley his name, and Sam's export from it."""
    fake_openai.reset()
    said = parley("chat", "-m", "Hi, I'm Sam and I work on the billing team.", "--user", "sam", data=first,
                  env={**model_env(fake_openai), "PARLEY_FACT_EXTRACTION": "off"})
    assert said.returncode == 0, said.stderr
    file = first / "parley.dump"
    made = parley("db", "backup", str(file), data=first)
    assert made.returncode == 0, made.stderr
    assert "Restore with: parley db restore" in " ".join(made.stdout.split())
    return file, _export(first)


def _export(data: Path) -> dict[str, object]:
    exported = parley("memory", "export", "--user", "sam", data=data)
    assert exported.returncode == 0, exported.stderr
    found: dict[str, object] = json.loads(exported.stdout)
    return found


def test_a_restore_on_a_new_machine_brings_back_a_persons_memories_and_facts(
    sams_backup: tuple[Path, dict[str, object]], second: Path
) -> None:
    file, before = sams_backup
    assert before["memories"] and before["facts"] and before["messages"]

    restored = parley("db", "restore", str(file), data=second)

    assert restored.returncode == 0, restored.stderr
    assert _export(second) == before


def test_a_restore_over_a_database_with_data_is_refused_and_changes_nothing(
    sams_backup: tuple[Path, dict[str, object]], first: Path
) -> None:
    file, _ = sams_backup
    parley("memory", "forget", "--user", "sam", "--yes", data=first)

    refused = parley("db", "restore", str(file), data=first)

    assert refused.returncode == 1
    assert "--force" in refused.stderr and "already holds" in refused.stderr
    assert not _export(first)["facts"]


def test_a_forced_restore_replaces_the_database_with_the_backup(
    sams_backup: tuple[Path, dict[str, object]], second: Path
) -> None:
    file, before = sams_backup
    assert parley("db", "migrate", data=second).returncode == 0  # a database with tables, though no Sam

    restored = parley("db", "restore", str(file), "--force", data=second)

    assert restored.returncode == 0, restored.stderr
    assert _export(second) == before


def test_a_file_that_is_no_backup_is_refused_before_the_database_is_touched(second: Path) -> None:
    (second / "notes.txt").write_text("not a backup")

    refused = parley("db", "restore", str(second / "notes.txt"), data=second)

    assert refused.returncode == 1
    assert "is not a backup made by `parley db backup`" in " ".join(refused.stderr.split())
    assert not (second / "pg").exists()


def test_a_backup_that_fails_leaves_no_file_behind(tmp_path: Path) -> None:
    target = tmp_path / "parley.dump"

    with pytest.raises(BackupError, match="pg_dump"):
        backup(f"postgresql://postgres@/postgres?host={tmp_path}", target)

    assert list(tmp_path.iterdir()) == []
