"""Workspace policy files: validation, merging the shared and the workspace file, re-reading on change."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from core.guard.policy import PolicyFile, PolicyStore, Topic, best_match


def _embed(texts: list[str]) -> np.ndarray:
    """A stand-in embedding: one axis per first word, so similarity is 1 or 0."""
    axes = ["acme", "salary", "lunch"]
    out = np.zeros((len(texts), len(axes)), dtype=np.float32)
    for i, t in enumerate(texts):
        word = t.split()[0].lower()
        out[i, axes.index(word) if word in axes else 2] = 1.0
    return out


def test_unknown_keys_in_a_policy_file_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PolicyFile.model_validate({"blocked_topic": []})
    with pytest.raises(ValidationError):
        PolicyFile.model_validate({"blocked_topics": [{"name": "x", "examples": []}]})


def test_best_match_needs_the_threshold() -> None:
    topic = Topic(name="acme", message=None, vectors=np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    assert best_match(np.array([0.9, 0.1, 0.0], dtype=np.float32), (topic,), 0.8) is not None
    assert best_match(np.array([0.5, 0.5, 0.0], dtype=np.float32), (topic,), 0.8) is None


def test_shared_and_workspace_files_merge_and_the_workspace_threshold_wins(tmp_path: Path) -> None:
    (tmp_path / "policy.yml").write_text("blocked_topics:\n  - name: acme\n    examples: [acme prices]\n")
    (tmp_path / "T1").mkdir()
    (tmp_path / "T1" / "policy.yml").write_text(
        "threshold: 0.9\nblocked_topics:\n  - name: salaries\n    examples: [salary of Bob]\n"
    )
    store = PolicyStore(tmp_path, _embed)
    t1 = store.for_workspace("T1")
    assert [t.name for t in t1.blocked] == ["acme", "salaries"]
    assert t1.threshold == 0.9
    other = store.for_workspace("T2")
    assert [t.name for t in other.blocked] == ["acme"]
    assert other.threshold == 0.6


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("blocked_topics:\n  - name: acme\n    examples: [acme prices]\n")
    store = PolicyStore(tmp_path, _embed)
    assert [t.name for t in store.for_workspace("T1").blocked] == ["acme"]
    path.write_text("allowed_topics:\n  - name: lunch\n    examples: [lunch plans]\n")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    policy = store.for_workspace("T1")
    assert policy.blocked == () and [t.name for t in policy.allowed] == ["lunch"]


def test_a_policy_checked_within_a_second_is_answered_without_looking_at_its_files(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("blocked_topics:\n  - name: acme\n    examples: [acme prices]\n")
    now = [100.0]
    store = PolicyStore(tmp_path, _embed, clock=lambda: now[0])
    assert store.recent("T1") is None, "never checked: the files must be read"
    checked = store.for_workspace("T1")
    path.unlink()
    now[0] += 0.5
    assert store.recent("T1") is checked
    now[0] += 0.6
    assert store.recent("T1") is None, "a second later the files are looked at again"
    assert store.for_workspace("T1").empty


def test_without_a_policy_folder_every_workspace_has_the_empty_policy_at_once() -> None:
    recent = PolicyStore(None, _embed).recent("T1")
    assert recent is not None and recent.empty


def test_a_workspace_id_cannot_escape_the_policy_folder(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "policy.yml").write_text("blocked_topics:\n  - name: outside\n    examples: [acme]\n")
    store = PolicyStore(tmp_path / "inner", _embed)
    assert store.for_workspace("..").empty


def test_no_policy_folder_means_an_empty_policy() -> None:
    assert PolicyStore(None, _embed).for_workspace("T1").empty


def test_a_workspace_can_set_its_own_harm_threshold(tmp_path: Path) -> None:
    (tmp_path / "policy.yml").write_text("harm_threshold: 0.7\n")
    (tmp_path / "T1").mkdir()
    (tmp_path / "T1" / "policy.yml").write_text("harm_threshold: 0.95\n")
    store = PolicyStore(tmp_path, _embed)
    assert store.for_workspace("T1").harm_threshold == 0.95
    assert store.for_workspace("T2").harm_threshold == 0.7
    with pytest.raises(ValidationError):
        PolicyFile.model_validate({"harm_threshold": 1.5})
