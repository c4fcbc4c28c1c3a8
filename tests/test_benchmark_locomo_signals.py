"""benchmarks/locomo_signals.py: one more similarity fused into the replayed ranking, judged offline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from benchmarks.locomo_replay import SavedQuestion
from benchmarks.locomo_signals import Threads, Vectors, centred_cosines, rank_with_signal
from core.memory.ranking import Candidate, RankWeights, Signals, rank
from core.memory.when import mentioned_window

ASKED = datetime(2024, 1, 2, tzinfo=UTC)
QUESTION = "what did I say about the trip?"


def saved(signals: list[tuple[float, float]]) -> tuple[SavedQuestion, Threads]:
    """Memories 1..n with these (similarity, BM25) signals, in two threads of consecutive ids; each memory's
    thread neighbours carry their own signals, as the store returns them."""
    threads = ["a" if i < len(signals) // 2 else "b" for i in range(len(signals))]
    content = {i + 1: f"memory {i + 1}" for i in range(len(signals))}
    previous = {i + 1: i for i in range(1, len(signals)) if threads[i] == threads[i - 1]}
    following = {before: after for after, before in previous.items()}

    def signal(memory: int | None) -> Signals | None:
        if memory is None:
            return None
        similarity, text = signals[memory - 1]
        return Signals(similarity=similarity, text_score=text)

    candidates = tuple(
        Candidate(
            id=i + 1,
            content=content[i + 1],
            created_at=datetime(2024, 1, 1, tzinfo=UTC),
            signals=Signals(similarity=similarity, text_score=text),
            thread_id=threads[i],
            previous=signal(previous.get(i + 1)),
            following=signal(following.get(i + 1)),
        )
        for i, (similarity, text) in enumerate(signals)
    )
    question = SavedQuestion(
        conversation="conv-a",
        category="4",
        text=QUESTION,
        evidence=("D1:1",),
        asked_at=ASKED,
        candidates=candidates,
        turns={},
    )
    return question, Threads(content=content, previous=previous, following=following)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_weight_zero_orders_the_pool_as_the_shipped_ranking_does() -> None:
    question, threads = saved([(0.9, 0.0), (0.2, 3.0), (0.5, 1.0), (0.1, 0.5), (0.7, 2.0), (0.3, 0.0)])
    random = np.random.default_rng(7)
    vectors = Vectors(
        questions={QUESTION: unit(random.normal(size=8))},
        memories={text: unit(random.normal(size=8)) for text in threads.content.values()},
    )
    shipped = rank(
        question.candidates,
        k=len(question.candidates),
        weights=RankWeights(),
        now=ASKED,
        window=mentioned_window(QUESTION, now=ASKED),
    )
    assert rank_with_signal(question, threads, vectors, 0.0, RankWeights()) == [r.id for r in shipped]


def test_a_heavy_signal_puts_first_the_memory_its_vectors_find_closest() -> None:
    question, threads = saved([(0.5, 1.0)] * 6)
    axes = np.eye(6)
    vectors = Vectors(
        questions={QUESTION: axes[4]},
        memories={f"memory {i + 1}": axes[i] for i in range(6)},
    )
    assert rank_with_signal(question, threads, vectors, 10.0, RankWeights())[0] == 5


def test_centred_cosines_ignore_the_direction_every_memory_shares() -> None:
    shared = np.array([1.0, 0.0, 0.0])
    rows = unit(np.array([shared * 5 + [0, 1, 0], shared * 5 + [0, 0, 1]]))
    query = unit(shared * 5 + [0, 0, 1])
    assert np.round(centred_cosines(query, rows, rows.mean(axis=0)), 6).tolist() == [-1.0, 1.0]
