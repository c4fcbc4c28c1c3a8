"""Memory ranking: vector similarity, full-text score, recency and the named time fused into one order.

Pure functions of the candidates, the weights and the clock, so the fusion is tested without a
database. The store gathers the candidates and their signals (cosine similarity, BM25 over the
person's memories, the creation time, the thread, and the same signals of the previous and next
memory of the same thread); this module decides the order.

Each relevance signal is standardised over the candidates (z-score): the spread of cosine
similarities and of BM25 scores differs from query to query, and a fixed min-max scale lets one
outlier squeeze every other score together.

Why neighbours: a remembered turn often answers the turn before it ("what did you research?" ->
"adoption agencies"), so a memory borrows part of the relevance of its thread neighbours.

Why threads: the turns of one conversation share a topic, and the answer to a question is often a
short turn ("yes, last Friday") beside the one that matches it; every memory gains a share of the
best score in its thread, so a thread that matches lifts all of its turns a little.

Why the named time: a question that names when ("what did I say about the budget in March?") is
about what was said then; memories said inside that window (`core.memory.when`) get a bonus that
fades over a few days past its edges, since people mention an event some days after it happened.

The weights were tuned on two LoCoMo conversations and checked on eight others
(benchmarks/locomo_retrieval.py, docs/memory.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.memory.when import TimeWindow


@dataclass(frozen=True, kw_only=True, slots=True)
class RankWeights:
    """How much each signal counts; relevance signals are standardised over the candidates first."""

    vector: float = 0.65
    """Cosine similarity of the query and the memory, in standard deviations from the candidates' mean."""
    text: float = 0.35
    """BM25 of the query over the memory's full-text vector, standardised the same way."""
    recency: float = 0.05
    """A tie-breaker toward newer memories: 1 for a memory made now, halving every half-life."""
    recency_half_life_days: float = 30.0
    previous: float = 0.3
    """Share of the previous memory's relevance in the same thread."""
    following: float = 0.1
    """Share of the next memory's relevance in the same thread."""
    thread: float = 0.5
    """Share of the best fused score among the candidates of the same thread."""
    when: float = 1.0
    """Bonus of a memory said inside the time the query names."""
    when_slack_days: float = 7.0
    """Days past the named window over which that bonus fades to nothing."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Signals:
    """The raw relevance of one memory to the query."""

    similarity: float | None
    """Cosine similarity of query and memory measured from the candidates' mean vector
    (`core.memory.search`); None when the memory has no vector of the current model yet."""
    text_score: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    id: int
    content: str
    created_at: datetime
    signals: Signals
    thread_id: str | None = None
    previous: Signals | None = None
    following: Signals | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalStats:
    """Mean and spread of the raw signals over the candidates, for standardisation."""

    similarity_mean: float
    similarity_spread: float
    similarity_floor: float
    """The lowest similarity: a memory without a vector of the current model counts as this."""
    text_mean: float
    text_spread: float

    @classmethod
    def of(cls, signals: Iterable[Signals]) -> SignalStats:
        listed = list(signals)
        sims = [s.similarity for s in listed if s.similarity is not None]
        texts = [s.text_score for s in listed]
        similarity_mean, similarity_spread = _mean_and_spread(sims)
        text_mean, text_spread = _mean_and_spread(texts)
        return cls(
            similarity_mean=similarity_mean,
            similarity_spread=similarity_spread,
            similarity_floor=min(sims, default=0.0),
            text_mean=text_mean,
            text_spread=text_spread,
        )


def _mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The mean and population standard deviation, the spread 1 where it is (nearly) zero: equal
    scores stay equal. Plain floats: `statistics.pstdev` computes exactly in fractions, ~50x slower."""
    if not values:
        return 0.0, 1.0
    mean = math.fsum(values) / len(values)
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    return mean, spread if spread > 1e-12 else 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Ranked:
    id: int
    content: str
    created_at: datetime
    score: float


def rank(
    candidates: Sequence[Candidate],
    *,
    k: int,
    weights: RankWeights,
    now: datetime,
    window: TimeWindow | None = None,
) -> list[Ranked]:
    """The best `k` candidates, highest fused score first (ties: newer first, then higher id);
    `window` is the time the query names, if any."""
    if k <= 0:
        return []
    stats = SignalStats.of(c.signals for c in candidates)
    own = {c.id: fused_score(c, weights=weights, stats=stats, now=now, window=window) for c in candidates}
    best_in_thread: dict[str, float] = {}
    for c in candidates:
        if c.thread_id is not None:
            best_in_thread[c.thread_id] = max(best_in_thread.get(c.thread_id, -math.inf), own[c.id])
    scored = [
        Ranked(
            id=c.id,
            content=c.content,
            created_at=c.created_at,
            score=own[c.id] + weights.thread * best_in_thread.get(c.thread_id or "", own[c.id]),
        )
        for c in candidates
    ]
    scored.sort(key=lambda r: (r.score, r.created_at, r.id), reverse=True)
    return scored[:k]


def fused_score(
    candidate: Candidate,
    *,
    weights: RankWeights,
    stats: SignalStats,
    now: datetime,
    window: TimeWindow | None = None,
) -> float:
    """One memory's own score: its relevance, shares of its neighbours', recency and the named time."""
    score = relevance(candidate.signals, weights=weights, stats=stats)
    if candidate.previous is not None:
        score += weights.previous * relevance(candidate.previous, weights=weights, stats=stats)
    if candidate.following is not None:
        score += weights.following * relevance(candidate.following, weights=weights, stats=stats)
    fresh = recency(candidate.created_at, now=now, half_life_days=weights.recency_half_life_days)
    score += weights.recency * fresh
    if window is not None:
        score += weights.when * in_window(candidate.created_at, window, slack_days=weights.when_slack_days)
    return score


def relevance(signals: Signals, *, weights: RankWeights, stats: SignalStats) -> float:
    """Weighted sum of the standardised similarity and full-text score."""
    similarity = stats.similarity_floor if signals.similarity is None else signals.similarity
    vector = (similarity - stats.similarity_mean) / stats.similarity_spread
    text = (signals.text_score - stats.text_mean) / stats.text_spread
    return weights.vector * vector + weights.text * text


def recency(created_at: datetime, *, now: datetime, half_life_days: float) -> float:
    """1 for a memory made now, 0.5 one half-life ago; never above 1 (clock skew)."""
    age_days = max((now - created_at).total_seconds(), 0.0) / 86_400
    return math.exp(-math.log(2) * age_days / half_life_days) if half_life_days > 0 else 0.0


def in_window(created_at: datetime, window: TimeWindow, *, slack_days: float) -> float:
    """1 inside the window, falling linearly to 0 at `slack_days` past either edge."""
    distance = window.distance_days(created_at)
    if distance <= 0:
        return 1.0
    return max(0.0, 1.0 - distance / slack_days) if slack_days > 0 else 0.0
