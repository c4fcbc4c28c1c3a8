"""Memory ranking as a pure function: normalisation, fusion, neighbours, recency, k."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.memory.ranking import (
    Candidate,
    RankWeights,
    ScopeStats,
    Signals,
    in_window,
    rank,
    recency,
    relevance,
)
from core.memory.when import TimeWindow

NOW = datetime(2025, 6, 1, tzinfo=UTC)
W = RankWeights()


def cand(i: int, sim: float | None, text: float = 0.0, *, age_days: float = 0.0, **kw: Signals) -> Candidate:
    return Candidate(
        id=i,
        content=f"m{i}",
        created_at=NOW - timedelta(days=age_days),
        signals=Signals(similarity=sim, text_score=text),
        **kw,
    )


def stats(lo: float, hi: float, text: float) -> ScopeStats:
    return ScopeStats(min_similarity=lo, max_similarity=hi, max_text_score=text)


@pytest.mark.parametrize(
    ("similarity", "text", "scope", "expected"),
    [
        (0.9, 0.0, stats(0.1, 0.9, 0), 0.5),
        (0.1, 0.0, stats(0.1, 0.9, 0), 0.0),
        (0.5, 2.0, stats(0.1, 0.9, 4), 0.5),
        (None, 4.0, stats(0.0, 0.0, 4), 0.5),
        (0.3, 0.0, stats(0.3, 0.3, 0), 0.5),
    ],
)
def test_relevance_normalises_each_signal_over_the_scope(
    similarity: float | None, text: float, scope: ScopeStats, expected: float
) -> None:
    signals = Signals(similarity=similarity, text_score=text)
    assert relevance(signals, weights=W, stats=scope) == pytest.approx(expected)


def test_text_match_lifts_a_memory_above_a_slightly_closer_vector() -> None:
    stats = ScopeStats(min_similarity=0.0, max_similarity=0.6, max_text_score=5.0)
    ranked = rank([cand(1, 0.6), cand(2, 0.55, 5.0)], k=2, weights=W, stats=stats, now=NOW)
    assert [r.id for r in ranked] == [2, 1]


def test_previous_turn_relevance_carries_over_to_the_answer() -> None:
    stats = ScopeStats(min_similarity=0.0, max_similarity=1.0, max_text_score=1.0)
    question = Signals(similarity=1.0, text_score=1.0)
    answer = cand(2, 0.4, previous=question)
    unrelated = cand(3, 0.5)
    assert [r.id for r in rank([unrelated, answer], k=2, weights=W, stats=stats, now=NOW)] == [2, 3]


def test_recency_breaks_ties_toward_newer_memories() -> None:
    stats = ScopeStats(min_similarity=0.0, max_similarity=1.0, max_text_score=0.0)
    ranked = rank([cand(1, 0.5, age_days=90), cand(2, 0.5, age_days=1)], k=2, weights=W, stats=stats, now=NOW)
    assert [r.id for r in ranked] == [2, 1]


@pytest.mark.parametrize(("age_days", "expected"), [(0, 1.0), (30, 0.5), (60, 0.25), (-5, 1.0)])
def test_recency_halves_every_half_life(age_days: float, expected: float) -> None:
    assert recency(NOW - timedelta(days=age_days), now=NOW, half_life_days=30) == pytest.approx(expected)


def test_a_memory_said_in_the_named_time_outranks_a_closer_one_said_long_before() -> None:
    stats = ScopeStats(min_similarity=0.0, max_similarity=1.0, max_text_score=0.0)
    window = TimeWindow(start=NOW - timedelta(days=40), end=NOW - timedelta(days=30))
    then, before = cand(1, 0.6, age_days=35), cand(2, 0.7, age_days=200)
    assert [r.id for r in rank([before, then], k=2, weights=W, stats=stats, now=NOW, window=window)] == [1, 2]
    assert [r.id for r in rank([before, then], k=2, weights=W, stats=stats, now=NOW)] == [2, 1]


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
    ranked = rank(candidates, k=k, weights=W, stats=ScopeStats.of(c.signals for c in candidates), now=NOW)
    assert len(ranked) == min(k, len(candidates))
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert len({r.id for r in ranked}) == len(ranked)
