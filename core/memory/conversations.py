"""A person's conversation history (property 50), read from the `messages` table.

This is the per-person view for `parley history` and export; the thread history that goes into a
prompt lives in `core.memory.history`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.memory.scope import person_scope
from core.models import UserKey


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryMessage:
    id: int
    channel_id: str
    thread_id: str
    role: str
    content: str
    created_at: datetime


async def user_history(
    pool: asyncpg.Pool, user: UserKey, *, thread_id: str | None = None, limit: int | None = None
) -> list[HistoryMessage]:
    """Every message of `user` (or of one of their threads), oldest first; `limit` keeps the newest."""
    async with person_scope(pool, user) as conn:
        rows = await conn.fetch(
            """
            SELECT id, channel_id, thread_id, role, content, created_at FROM (
                SELECT id, channel_id, thread_id, role, content, created_at FROM messages
                WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
                  AND ($4::text IS NULL OR thread_id = $4)
                ORDER BY created_at DESC, id DESC
                LIMIT $5
            ) newest
            ORDER BY created_at, id
            """,
            user.platform,
            user.workspace_id,
            user.user_id,
            thread_id,
            limit,
        )
    return [HistoryMessage(**dict(r)) for r in rows]


async def user_platforms(pool: asyncpg.Pool, workspace_id: str, user_id: str) -> list[str]:
    """The platforms on which a workspace id has messages of this user (ids rarely collide)."""
    rows = await pool.fetch(
        "SELECT DISTINCT platform FROM messages WHERE workspace_id = $1 AND user_id = $2 ORDER BY 1",
        workspace_id,
        user_id,
    )
    return [r["platform"] for r in rows]
