"""Memory ranking as a pure function: standardisation, fusion, neighbours, threads, recency, time, k."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.memory.ranking import (
    Candidate,
    RankWeights,
    Signals,
    SignalStats,
    in_window,
    rank,
    recency,
    relevance,
)
from core.memory.when import TimeWindow

NOW = datetime(2025, 6, 1, tzinfo=UTC)
W = RankWeights()


def cand(
    i: int, sim: float | None, text: float = 0.0, *, age_days: float = 0.0, thread_id: str | None = None, **kw: Signals
) -> Candidate:
    return Candidate(
        id=i,
        content=f"m{i}",
        created_at=NOW - timedelta(days=age_days),
        signals=Signals(similarity=sim, text_score=text),
        thread_id=thread_id,
        **kw,
    )


def test_relevance_is_the_weighted_standard_score_of_each_signal() -> None:
    scope = [Signals(similarity=0.2, text_score=0.0), Signals(similarity=0.6, text_score=4.0)]
    stats = SignalStats.of(scope)
    assert relevance(scope[1], weights=W, stats=stats) == pytest.approx(W.vector + W.text)
    assert relevance(scope[0], weights=W, stats=stats) == pytest.approx(-(W.vector + W.text))


def test_a_memory_without_a_vector_counts_as_the_least_similar() -> None:
    scope = [Signals(similarity=0.2, text_score=1.0), Signals(similarity=0.6, text_score=1.0)]
    stats = SignalStats.of(scope)
    missing = Signals(similarity=None, text_score=1.0)
    assert relevance(missing, weights=W, stats=stats) == relevance(scope[0], weights=W, stats=stats)


def test_equal_signals_standardise_to_zero_not_to_a_division_by_zero() -> None:
    same = [Signals(similarity=0.3, text_score=2.0)] * 3
    assert relevance(same[0], weights=W, stats=SignalStats.of(same)) == 0.0


def test_text_match_lifts_a_memory_above_a_slightly_closer_vector() -> None:
    ranked = rank([cand(1, 0.6), cand(2, 0.55, 5.0), cand(3, 0.1)], k=3, weights=W, now=NOW)
    assert [r.id for r in ranked] == [2, 1, 3]


def test_previous_turn_relevance_carries_over_to_the_answer() -> None:
    question = Signals(similarity=1.0, text_score=1.0)
    answer = cand(2, 0.4, previous=question)
    unrelated = cand(3, 0.5)
    assert [r.id for r in rank([unrelated, answer, cand(4, 0.0)], k=3, weights=W, now=NOW)][:2] == [2, 3]


def test_a_memory_in_the_thread_of_the_best_match_outranks_an_equal_one_elsewhere() -> None:
    best = cand(1, 0.9, thread_id="a")
    beside, elsewhere = cand(2, 0.5, thread_id="a"), cand(3, 0.5, thread_id="b")
    ranked = rank([elsewhere, beside, best, cand(4, 0.1, thread_id="c")], k=4, weights=W, now=NOW)
    assert [r.id for r in ranked][:3] == [1, 2, 3]


def test_recency_breaks_ties_toward_newer_memories() -> None:
    ranked = rank([cand(1, 0.5, age_days=90), cand(2, 0.5, age_days=1)], k=2, weights=W, now=NOW)
    assert [r.id for r in ranked] == [2, 1]


@pytest.mark.parametrize(("age_days", "expected"), [(0, 1.0), (30, 0.5), (60, 0.25), (-5, 1.0)])
def test_recency_halves_every_half_life(age_days: float, expected: float) -> None:
    assert recency(NOW - timedelta(days=age_days), now=NOW, half_life_days=30) == pytest.approx(expected)


def test_a_memory_said_in_the_named_time_outranks_a_closer_one_said_long_before() -> None:
    window = TimeWindow(start=NOW - timedelta(days=40), end=NOW - timedelta(days=30))
    then, before = cand(1, 0.6, age_days=35), cand(2, 0.62, age_days=200)
    others = [cand(i, 0.1 + i / 100, age_days=300) for i in range(3, 8)]
    assert [r.id for r in rank([before, then, *others], k=2, weights=W, now=NOW, window=window)] == [1, 2]
    assert [r.id for r in rank([before, then, *others], k=2, weights=W, now=NOW)] == [2, 1]


@pytest.mark.parametrize(("days_after_end", "expected"), [(-3, 1.0), (0, 1.0), (3, 0.5), (6, 0.0), (60, 0.0)])
def test_the_time_bonus_fades_linearly_past_the_window(days_after_end: float, expected: float) -> None:
    window = TimeWindow(start=NOW - timedelta(days=10), end=NOW)
    said = NOW + timedelta(days=days_after_end)
    assert in_window(said, window, slack_days=6) == pytest.approx(expected)


signals = st.builds(
    Signals,
    similarity=st.one_of(st.none(), st.floats(-1, 1)),
    text_score=st.floats(0, 50),
)


@given(
    st.lists(st.tuples(signals, st.floats(0, 400)), max_size=30),
    st.integers(0, 40),
)
def test_rank_returns_min_k_n_in_descending_score(items: list[tuple[Signals, float]], k: int) -> None:
    candidates = [
        Candidate(id=i, content="x", created_at=NOW - timedelta(days=age), signals=s)
        for i, (s, age) in enumerate(items)
    ]
    ranked = rank(candidates, k=k, weights=W, now=NOW)
    assert len(ranked) == min(k, len(candidates))
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert len({r.id for r in ranked}) == len(ranked)
