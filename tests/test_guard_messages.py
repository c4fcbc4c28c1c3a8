"""Multi-request messages built from labelled prompts, for the input rail's validation figures."""

from __future__ import annotations

import random

from benchmarks.guard_eval import multi_request_messages
from core.guard.sentences import split_sentences
from core.guard.training.data import Example
from core.guard.training.messages import benign_messages, join, padded_harmful


def _row(i: int, *, harmful: bool = False, source: str = "workplace") -> Example:
    text = f"How do I do harmful thing {i}?" if harmful else f"How do I do ordinary thing {i}"
    return Example(id=f"{source}-{i}", text=text, harmful=harmful, source=source, category="", split="dev")


ORDINARY = [_row(i) for i in range(20)]
HARMFUL = [_row(i, harmful=True, source="harmbench") for i in range(20, 30)]


def test_the_input_rail_splits_a_joined_message_where_its_prompts_meet() -> None:
    parts = ["How do I purge the CDN cache?", "Write a regex for card numbers", "Thanks!"]
    for seed in range(5):
        assert split_sentences(join(parts, random.Random(seed))) == [
            "How do I purge the CDN cache?",
            "Write a regex for card numbers.",
            "Thanks!",
        ]


def test_a_benign_message_joins_two_or_three_distinct_ordinary_prompts() -> None:
    messages = benign_messages(ORDINARY, 50, random.Random(1))
    assert {len(m.members) for m in messages} == {2, 3}
    assert all(len(set(m.members)) == len(m.members) and not m.harmful for m in messages)


def test_a_padded_message_holds_exactly_one_harmful_prompt_among_ordinary_ones() -> None:
    messages = padded_harmful(HARMFUL, ORDINARY, 50, random.Random(1))
    harmful_ids = {e.id for e in HARMFUL}
    assert all(m.harmful and sum(i in harmful_ids for i in m.members) == 1 for m in messages)
    assert {len(m.members) for m in messages} == {2, 3}
    assert {m.members.index(next(i for i in m.members if i in harmful_ids)) for m in messages} == {0, 1, 2}


def test_every_harmful_prompt_is_padded_once_before_any_is_reused() -> None:
    messages = padded_harmful(HARMFUL, ORDINARY, len(HARMFUL), random.Random(1))
    asks = [next(i for i in m.members if i.startswith("harmbench")) for m in messages]
    assert sorted(asks) == sorted(e.id for e in HARMFUL)


def test_the_validation_messages_are_fixed_and_drawn_from_the_rows_given() -> None:
    rows = [*ORDINARY, *HARMFUL, _row(40, source="xstest")]
    first, again = multi_request_messages(rows), multi_request_messages(rows)
    assert first == again
    ids = {e.id for e in rows}
    assert all(set(m.members) <= ids for messages in first.values() for m in messages)
    assert all("xstest-40" not in m.members for m in first["benign_workplace"])
    assert all(m.harmful for m in first["padded_harmful"])
