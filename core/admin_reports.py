"""Read-only reports for the operator's page (/admin): usage and cost per day, workspace, channel, person
and model; feedback per day and the worst-rated turns; refusals per category; evaluation runs.

They read across workspaces, so they run on an operator's pool (the owner's), never in a tenant scope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

MAX_ROWS = 5000


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageDay:
    day: date
    platform: str
    workspace_id: str
    channel_id: str
    user_id: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    """None where no call of the group had a known price."""
    unpriced_calls: int
    """Calls whose cost the provider did not give: in token totals, not in cost."""


async def usage_by_day(pool: asyncpg.Pool, since: datetime) -> list[UsageDay]:
    """Model calls grouped by day (UTC), workspace, channel, person and model; newest days first."""
    rows = await pool.fetch(
        """SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.platform, u.workspace_id,
                  coalesce(t.channel_id, '') AS channel_id, u.user_id, u.model, count(*) AS calls,
                  sum(u.input_tokens) AS input_tokens, sum(u.output_tokens) AS output_tokens,
                  sum(u.cost_usd)::float8 AS cost_usd, count(*) FILTER (WHERE u.cost_usd IS NULL) AS unpriced_calls
           FROM usage u LEFT JOIN turns t ON t.id = u.turn_id
           WHERE u.created_at >= $1
           GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1 DESC, 2, 3, 4, 5, 6 LIMIT $2""",
        since,
        MAX_ROWS,
    )
    return [UsageDay(**dict(r)) for r in rows]


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackDay:
    day: date
    up: int
    down: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RatedTurn:
    turn_id: int
    platform: str
    workspace_id: str
    channel_id: str
    created_at: datetime
    score: int
    """Sum of the ratings (each +1 or -1)."""
    ratings: int
    reply: str
    """The start of the stored reply (masked before it was stored)."""


async def feedback_by_day(pool: asyncpg.Pool, since: datetime) -> list[FeedbackDay]:
    rows = await pool.fetch(
        """SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) FILTER (WHERE score > 0) AS up,
                  count(*) FILTER (WHERE score < 0) AS down
           FROM feedback WHERE created_at >= $1 GROUP BY 1 ORDER BY 1""",
        since,
    )
    return [FeedbackDay(**dict(r)) for r in rows]


async def worst_turns(pool: asyncpg.Pool, since: datetime, *, limit: int = 20) -> list[RatedTurn]:
    """The turns rated lowest (by the sum of their ratings), only those with a negative sum."""
    rows = await pool.fetch(
        """SELECT t.id AS turn_id, t.platform, t.workspace_id, t.channel_id, t.created_at,
                  sum(f.score)::int AS score, count(*)::int AS ratings,
                  left(coalesce((SELECT m.content FROM messages m
                                 WHERE m.platform = t.platform AND m.workspace_id = t.workspace_id
                                   AND m.turn_id = t.id AND m.role = 'assistant'
                                 ORDER BY m.id LIMIT 1), ''), 300) AS reply
           FROM feedback f
           JOIN turns t ON t.platform = f.platform AND t.workspace_id = f.workspace_id AND t.id = f.turn_id
           WHERE f.created_at >= $1
           GROUP BY t.platform, t.workspace_id, t.id HAVING sum(f.score) < 0
           ORDER BY sum(f.score), t.created_at DESC LIMIT $2""",
        since,
        limit,
    )
    return [RatedTurn(**dict(r)) for r in rows]


@dataclass(frozen=True, kw_only=True, slots=True)
class RefusalCategory:
    rail: str
    stage: str
    refusals: int
    false_positives: int


async def refusals_by_category(pool: asyncpg.Pool, since: datetime) -> list[RefusalCategory]:
    """Blocked messages per rail (the guard's category) and stage, with how many an operator marked as
    mistaken refusals."""
    rows = await pool.fetch(
        """SELECT rail, stage, count(*) AS refusals, count(false_positive_at) AS false_positives
           FROM guard_events WHERE created_at >= $1 AND action = 'blocked'
           GROUP BY rail, stage ORDER BY count(*) DESC, rail, stage""",
        since,
    )
    return [RefusalCategory(**dict(r)) for r in rows]


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalRunSummary:
    id: int
    suite: str
    model: str | None
    release: str | None
    passed: bool
    failing: list[str]
    finished_at: datetime
    scores: dict[str, float | None]


async def eval_runs(pool: asyncpg.Pool, *, limit: int = 50) -> list[EvalRunSummary]:
    """The latest evaluation runs with each metric's score, newest first."""
    rows = await pool.fetch(
        """SELECT r.id, r.suite, r.model, r.release, r.passed, r.failing, r.finished_at,
                  coalesce(jsonb_object_agg(m.metric, m.score) FILTER (WHERE m.metric IS NOT NULL), '{}')::text
                  AS scores
           FROM (SELECT * FROM eval_runs ORDER BY finished_at DESC, id DESC LIMIT $1) r
           LEFT JOIN eval_metric_results m ON m.run_id = r.id
           GROUP BY r.id, r.suite, r.model, r.release, r.passed, r.failing, r.finished_at
           ORDER BY r.finished_at DESC, r.id DESC""",
        limit,
    )
    return [EvalRunSummary(**{**dict(r), "failing": list(r["failing"]), "scores": json.loads(r["scores"])})
            for r in rows]
