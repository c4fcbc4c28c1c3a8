"""Safety events (seed property 34): every rail activation is counted and stored, masked.

`record_event` and `list_events` are the storage edge (asyncpg); `pool_sink` turns a pool into the
event sink a `Guard` takes. The counter `parley_guard_blocks_total{rail}` counts every block.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
from prometheus_client import Counter

from core import audit
from core.guard.masking import scrub
from core.models import UserKey, WorkspaceKey
from core.store.tenancy import enter_scope, scoped

Stage = Literal["input", "output"]
Action = Literal["blocked", "masked", "error"]
EXCERPT_CHARS = 200

GUARD_BLOCKS = Counter("parley_guard_blocks_total", "Messages and replies blocked by a guard rail", ["rail"])
GUARD_EVENTS = Counter("parley_guard_events_total", "Guard rail activations", ["rail", "action"])


@dataclass(frozen=True, kw_only=True, slots=True)
class SafetyEvent:
    """One rail activation; `excerpt` is masked and short by construction (see `make_event`)."""

    user: UserKey
    stage: Stage
    rail: str
    action: Action
    reason: str
    excerpt: str
    score: float = 0.0
    created_at: datetime | None = None
    id: int | None = None
    false_positive: bool = False
    """An operator marked this refusal a mistake."""


EventSink = Callable[[SafetyEvent], Awaitable[None]]


def make_event(
    *, user: UserKey, stage: Stage, rail: str, action: Action, reason: str, text: str, score: float
) -> SafetyEvent:
    """An event whose excerpt is the masked text, cut to EXCERPT_CHARS; the reason is masked too."""
    excerpt = scrub(text)
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return SafetyEvent(
        user=user, stage=stage, rail=rail, action=action, reason=scrub(reason), excerpt=excerpt, score=float(score)
    )


def count(event: SafetyEvent) -> None:
    """Update the Prometheus counters for one event."""
    GUARD_EVENTS.labels(event.rail, event.action).inc()
    if event.action == "blocked":
        GUARD_BLOCKS.labels(event.rail).inc()


async def record_event(pool: asyncpg.Pool, event: SafetyEvent) -> int:
    """Store one event; returns its id."""
    row_id = await scoped(pool, event.user).fetchval(
        """INSERT INTO guard_events (platform, workspace_id, user_id, stage, rail, action, reason, excerpt, score)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
        event.user.platform,
        event.user.workspace_id,
        event.user.user_id,
        event.stage,
        event.rail,
        event.action,
        event.reason,
        event.excerpt,
        event.score,
    )
    return int(row_id)


async def list_events(
    pool: asyncpg.Pool,
    since: datetime,
    *,
    workspace: WorkspaceKey | None = None,
    limit: int = 1000,
) -> list[SafetyEvent]:
    """Events from `since` on, newest first; optionally for one workspace only."""
    rows = await pool.fetch(
        """SELECT id, platform, workspace_id, user_id, stage, rail, action, reason, excerpt, score, created_at,
                  false_positive_at IS NOT NULL AS false_positive
           FROM guard_events
           WHERE created_at >= $1
             AND ($2::text IS NULL OR (platform = $2 AND workspace_id = $3))
           ORDER BY created_at DESC, id DESC
           LIMIT $4""",
        since,
        workspace.platform if workspace else None,
        workspace.workspace_id if workspace else None,
        limit,
    )
    return [
        SafetyEvent(
            id=r["id"],
            user=UserKey(platform=r["platform"], workspace_id=r["workspace_id"], user_id=r["user_id"]),
            stage=r["stage"],
            rail=r["rail"],
            action=r["action"],
            reason=r["reason"],
            excerpt=r["excerpt"],
            score=float(r["score"]),
            created_at=r["created_at"],
            false_positive=r["false_positive"],
        )
        for r in rows
    ]


async def mark_false_positive(pool: asyncpg.Pool, event_id: int, *, by: audit.Actor) -> bool:
    """Mark a blocked event as a mistaken refusal, with its audit entry in the same transaction; False
    when no blocked event has that id."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """WITH old AS (SELECT false_positive_at IS NOT NULL AS marked FROM guard_events WHERE id = $1)
               UPDATE guard_events SET false_positive_at = coalesce(false_positive_at, now())
               WHERE id = $1 AND action = 'blocked'
               RETURNING platform, workspace_id, rail, (SELECT marked FROM old)""",
            event_id,
        )
        if row is None:
            return False
        workspace = WorkspaceKey(platform=row["platform"], workspace_id=row["workspace_id"])
        await enter_scope(conn, workspace)
        await audit.record(conn, workspace, by=by, action="refusal.false_positive",
                           target=f"refusal {event_id} ({row['rail']})", old=row["marked"], new=True)
    return True


async def false_positive_excerpts(pool: asyncpg.Pool) -> list[tuple[int, str, str]]:
    """(id, rail, masked excerpt) of every marked refusal, oldest first: benign rows for the dev set."""
    rows = await pool.fetch(
        "SELECT id, rail, excerpt FROM guard_events WHERE false_positive_at IS NOT NULL ORDER BY id"
    )
    return [(int(r["id"]), r["rail"], r["excerpt"]) for r in rows]


def pool_sink(pool: asyncpg.Pool) -> EventSink:
    """The event sink that stores events in `guard_events` through `pool`."""

    async def sink(event: SafetyEvent) -> None:
        await record_event(pool, event)

    return sink
