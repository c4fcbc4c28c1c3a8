"""Reactions and ratings -> stored feedback of the turn they rate (seed properties 38, 41)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core import deliveries
from core.models import Platform, Reaction, WorkspaceKey
from core.store.tenancy import scoped

EMOJI_SCORES: dict[str, int] = {
    "+1": 1,
    "thumbsup": 1,
    "👍": 1,
    "-1": -1,
    "thumbsdown": -1,
    "👎": -1,
}


def score_of(emoji: str) -> int | None:
    """+1, -1, or None for a reaction that is not a rating (skin tones count as the base emoji)."""
    base = emoji.split("::", 1)[0]
    if base and base[-1] in "\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff":
        base = base[:-1]
    return EMOJI_SCORES.get(base)


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackRow:
    platform: str
    workspace_id: str
    user_id: str
    turn_id: int
    score: int
    source: str
    created_at: datetime


async def record_feedback(
    pool: asyncpg.Pool, *, platform: str, workspace_id: str, user_id: str, turn_id: int, score: int, source: str
) -> None:
    """One rating per person per turn; a later rating replaces the earlier one."""
    if score not in (-1, 1):
        raise ValueError("score must be +1 or -1")
    await scoped(pool, WorkspaceKey(platform=platform, workspace_id=workspace_id)).execute(
        """INSERT INTO feedback (platform, workspace_id, user_id, turn_id, score, source)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (platform, workspace_id, user_id, turn_id)
           DO UPDATE SET score = EXCLUDED.score, source = EXCLUDED.source, created_at = now()""",
        platform,
        workspace_id,
        user_id,
        turn_id,
        score,
        source,
    )


async def rated_turn(pool: asyncpg.Pool, workspace: WorkspaceKey, message_id: str) -> int | None:
    """The finished turn a rated message carries; None when Parley did not send it. An API reply is no
    platform message: the caller rates it by its turn id, so recording a delivery would cost each API
    turn a transaction for a row that only repeats the id."""
    if workspace.platform != Platform.API:
        delivery = await deliveries.find(pool, workspace, message_id)
        return None if delivery is None else delivery.turn_id
    if not message_id.isdecimal() or len(message_id) > 18:
        return None
    found = await scoped(pool, workspace).fetchval(
        """SELECT id FROM turns WHERE platform = $1 AND workspace_id = $2 AND id = $3 AND status <> 'started'""",
        workspace.platform,
        workspace.workspace_id,
        int(message_id),
    )
    return None if found is None else int(found)


async def turn_owner(pool: asyncpg.Pool, workspace: WorkspaceKey, turn_id: int) -> str | None:
    """Whose message the workspace's turn answered; None when the workspace has no such turn."""
    owner = await scoped(pool, workspace).fetchval(
        "SELECT user_id FROM turns WHERE platform = $1 AND workspace_id = $2 AND id = $3",
        workspace.platform, workspace.workspace_id, turn_id,
    )
    return None if owner is None else str(owner)


async def record_reaction(pool: asyncpg.Pool, reaction: Reaction) -> int | None:
    """Store (or withdraw) a 👍/👎 on any message carrying one of Parley's replies; return the turn id,
    or None if ignored (not a rating, or not Parley's message)."""
    score = score_of(reaction.emoji)
    if score is None:
        return None
    workspace = WorkspaceKey(platform=reaction.platform, workspace_id=reaction.workspace_id)
    turn_id = await rated_turn(pool, workspace, reaction.platform_message_id)
    if turn_id is None:
        return None
    if reaction.removed:
        await scoped(pool, workspace).execute(
            """DELETE FROM feedback WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
               AND turn_id = $4 AND score = $5""",
            reaction.platform,
            reaction.workspace_id,
            reaction.user_id,
            turn_id,
            score,
        )
    else:
        await record_feedback(
            pool,
            platform=reaction.platform,
            workspace_id=reaction.workspace_id,
            user_id=reaction.user_id,
            turn_id=turn_id,
            score=score,
            source=reaction.source or reaction.emoji,
        )
    return int(turn_id)


async def list_feedback(pool: asyncpg.Pool, since: datetime) -> list[FeedbackRow]:
    rows = await pool.fetch(
        """SELECT platform, workspace_id, user_id, turn_id, score, source, created_at
           FROM feedback WHERE created_at >= $1 ORDER BY created_at""",
        since,
    )
    return [FeedbackRow(**dict(r)) for r in rows]
