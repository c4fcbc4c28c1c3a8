"""Memory ranking: vector similarity, full-text score, recency and the named time fused into one order.

Pure functions of the candidates, the weights and the clock, so the fusion is tested without a
database. The store gathers the signals (cosine similarity, BM25 over the person's memories, the
creation time, and the same signals of the previous and next memory of the same thread); this
module decides the order.

Why neighbours: a remembered turn often answers the turn before it ("what did you research?" ->
"adoption agencies"), so a memory borrows part of the relevance of its thread neighbours.

Why the named time: a question that names when ("what did I say about the budget in March?") is
about what was said then; memories said inside that window (`core.memory.when`) get a bonus that
fades over a few days past its edges, since people mention an event some days after it happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.memory.when import TimeWindow


@dataclass(frozen=True, kw_only=True, slots=True)
class RankWeights:
    """How much each signal counts; relevance signals are normalised to [0, 1] first."""

    vector: float = 0.5
    """Cosine similarity of the query and the memory, min-max normalised over the scope."""
    text: float = 0.5
    """BM25 of the query over the memory's full-text vector, divided by the scope's best."""
    recency: float = 0.05
    """A tie-breaker toward newer memories: 1 for a memory made now, halving every half-life."""
    recency_half_life_days: float = 30.0
    previous: float = 0.3
    """Share of the previous memory's relevance in the same thread."""
    following: float = 0.1
    """Share of the next memory's relevance in the same thread."""
    when: float = 0.3
    """Bonus of a memory said inside the time the query names."""
    when_slack_days: float = 7.0
    """Days past the named window over which that bonus fades to nothing."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Signals:
    """The raw relevance of one memory to the query."""

    similarity: float | None
    """Cosine similarity; None when the memory has no vector of the current model yet."""
    text_score: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    id: int
    content: str
    created_at: datetime
    signals: Signals
    previous: Signals | None = None
    following: Signals | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScopeStats:
    """Bounds of the raw signals over the searched memories, for normalisation."""

    min_similarity: float
    max_similarity: float
    max_text_score: float

    @classmethod
    def of(cls, signals: Iterable[Signals]) -> ScopeStats:
        sims: list[float] = []
        best_text = 0.0
        for s in signals:
            if s.similarity is not None:
                sims.append(s.similarity)
            best_text = max(best_text, s.text_score)
        return cls(
            min_similarity=min(sims, default=0.0),
            max_similarity=max(sims, default=0.0),
            max_text_score=best_text,
        )


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
    stats: ScopeStats,
    now: datetime,
    window: TimeWindow | None = None,
) -> list[Ranked]:
    """The best `k` candidates, highest fused score first (ties: newer first, then higher id);
    `window` is the time the query names, if any."""
    if k <= 0:
        return []
    scored = [
        Ranked(
            id=c.id,
            content=c.content,
            created_at=c.created_at,
            score=fused_score(c, weights=weights, stats=stats, now=now, window=window),
        )
        for c in candidates
    ]
    scored.sort(key=lambda r: (r.score, r.created_at, r.id), reverse=True)
    return scored[:k]


def fused_score(
    candidate: Candidate,
    *,
    weights: RankWeights,
    stats: ScopeStats,
    now: datetime,
    window: TimeWindow | None = None,
) -> float:
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


def relevance(signals: Signals, *, weights: RankWeights, stats: ScopeStats) -> float:
    """Weighted sum of the normalised similarity and full-text score, in [0, vector + text]."""
    vector = 0.0
    if signals.similarity is not None:
        spread = stats.max_similarity - stats.min_similarity
        vector = 1.0 if spread <= 1e-12 else (signals.similarity - stats.min_similarity) / spread
        vector = min(max(vector, 0.0), 1.0)
    text = 0.0
    if stats.max_text_score > 0:
        text = min(max(signals.text_score / stats.max_text_score, 0.0), 1.0)
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
