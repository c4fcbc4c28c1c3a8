"""The edge a sentence must reach before its message's whole text counts, chosen on ordinary dev messages."""

from __future__ import annotations

import random

import numpy as np

from core.guard.training.data import Example
from core.guard.training.sentence_gate import FoldMessages, choose_gate, fold_harmful, fold_messages, refused

CUT = 0.8


def messages(rows: list[tuple[float, list[float]]]) -> tuple[np.ndarray, list[np.ndarray]]:
    return np.array([w for w, _ in rows]), [np.array(s) for _, s in rows]


def test_the_whole_counts_only_from_the_edge_a_sentence_reaches() -> None:
    wholes, sentences = messages([(0.95, [0.3, 0.1]), (0.95, [0.05, 0.1]), (0.5, [0.9, 0.1])])
    assert refused(wholes, sentences, suspect=0.2, cut=CUT).tolist() == [True, False, True]
    assert refused(wholes, sentences, suspect=0.4, cut=CUT).tolist() == [False, False, True]


def test_the_edge_stays_at_the_floor_where_raising_it_lets_harm_through() -> None:
    ordinary = messages([(0.5, [0.3, 0.1])] * 95 + [(0.95, [0.45, 0.1])] * 5)
    harmful = messages([(0.95, [0.4, 0.1])] * 10)
    assert choose_gate(ordinary, harmful, cut=CUT, floor=0.166) == 0.166


def test_the_edge_rises_above_ordinary_sentences_where_no_harm_relies_on_the_whole_there() -> None:
    ordinary = messages([(0.5, [0.1, 0.1])] * 90 + [(0.95, [0.35, 0.1])] * 10)
    harmful = messages([(0.95, [0.5, 0.1])] * 10 + [(0.5, [0.9, 0.1])] * 10)
    gate = choose_gate(ordinary, harmful, cut=CUT, floor=0.166)
    assert 0.35 < gate <= 0.5
    assert not refused(*ordinary, suspect=gate, cut=CUT).any()
    assert refused(*harmful, suspect=gate, cut=CUT).all()


def test_a_sentence_refused_alone_is_not_the_wholes_doing() -> None:
    ordinary = messages([(0.95, [0.9, 0.1])] * 5 + [(0.5, [0.1, 0.1])] * 95)
    harmful = messages([(0.95, [0.2, 0.1])] * 10)
    assert choose_gate(ordinary, harmful, cut=CUT, floor=0.166) == 0.166


def test_fold_harmful_takes_only_held_out_harmful_rows_of_several_sentences() -> None:
    rows = [
        Example(id=f"r-{i}", text=text, harmful=harmful, source="x", category="x", split="dev")
        for i, (text, harmful) in enumerate(
            [("First part. Second part.", True), ("One part only", True), ("Ordinary. Also ordinary.", False)]
        )
    ]
    collected = FoldMessages()
    fold_harmful(rows, lambda texts: np.zeros(len(texts)), str, collected)
    assert collected.sentences == [[0.0, 0.0]]


def test_fold_messages_score_each_message_whole_and_by_sentence_from_held_out_workplace_rows() -> None:
    rows = [
        Example(id=f"w-{i}", text=f"Request number {i}", harmful=False, source="workplace", category="x", split="dev")
        for i in range(6)
    ] + [Example(id="h-0", text="Harmful ask", harmful=True, source="advbench", category="x", split="dev")]
    seen: list[list[str]] = []

    def decide(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.array([float(len(t)) for t in texts])

    collected = FoldMessages()
    fold_messages(rows, decide, str.upper, collected, random.Random(1))
    assert len(collected.wholes) == len(collected.sentences) > 0
    assert all(2 <= len(s) <= 3 for s in collected.sentences)
    texts = [t for batch in seen for t in batch]
    assert "HARMFUL ASK." not in " ".join(texts)
    assert all(t == t.upper() for t in texts)  # through the prompt (masking) first
    for whole, pieces in zip(collected.wholes, collected.sentences, strict=True):
        assert whole > max(pieces)  # the whole text is longer than any of its sentences
