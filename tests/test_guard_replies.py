"""The reply set the output rail's cut is chosen on: whole families, tasks and steps in one split."""

from __future__ import annotations

import json

import pytest

from core.guard.training import replies
from core.guard.training.data import SAFETY_DATA, Example, load_replies


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return replies.generate()


def test_every_family_answers_both_harmful_and_ordinary_tasks(rows: list[dict[str, str]]) -> None:
    for family in replies.FAMILIES:
        labels = {r["label"] for r in rows if r["family"] == family.name}
        assert labels == {"safe", "unsafe"}


def test_validation_families_are_disjoint_from_dev_families(rows: list[dict[str, str]]) -> None:
    families = {split: {r["family"] for r in rows if r["split"] == split} for split in ("dev", "validation")}
    assert families["validation"] == set(replies.VALIDATION_FAMILIES)
    assert not families["dev"] & families["validation"]


def test_validation_replies_answer_tasks_and_use_steps_never_seen_in_dev(rows: list[dict[str, str]]) -> None:
    dev_text = " ".join(r["text"] for r in rows if r["split"] == "dev").lower()
    for pieces in (replies.HARMFUL_TASKS, replies.BENIGN_TASKS, replies.HARMFUL_STEPS, replies.BENIGN_STEPS):
        held_out = [p for p in pieces if replies.split_of(p) == "validation"]
        assert held_out
        assert not [p for p in held_out if p.lower() in dev_text]


def test_ids_are_unique_and_group_a_family_for_cross_validation(rows: list[dict[str, str]]) -> None:
    assert len(rows) == len({r["id"] for r in rows})
    assert all(r["id"].rsplit("-", 1)[0] == f"reply-{r['family']}" for r in rows)


def test_the_shipped_reply_set_is_what_the_generator_writes(rows: list[dict[str, str]]) -> None:
    shipped = [json.loads(line) for line in (SAFETY_DATA / "parley_reply_set.jsonl").read_text().splitlines()]
    assert shipped == rows


def test_replies_written_by_hand_are_validation_only() -> None:
    loaded: list[Example] = load_replies()
    written = [e for e in loaded if e.source == "written_replies"]
    assert len(written) == 50
    assert {e.split for e in written} == {"validation"}
    assert {e.harmful for e in written} == {True, False}
