"""API sessions: one conversation (thread) each, owned by the workspace whose key opened it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.models import Platform

API_CHANNEL = "api"


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    session_id: str
    workspace_id: str
    user_id: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    role: str
    content: str
    turn_id: int | None
    created_at: datetime


def new_session_id() -> str:
    return uuid.uuid4().hex


async def find_session(pool: asyncpg.Pool, session_id: str) -> Session | None:
    row = await pool.fetchrow(
        """SELECT session_id, workspace_id, user_id, created_at FROM api_sessions
           WHERE session_id = $1 AND platform = $2""",
        session_id,
        Platform.API.value,
    )
    return Session(**dict(row)) if row else None


async def open_session(pool: asyncpg.Pool, session_id: str, *, workspace_id: str, user_id: str) -> Session:
    """The session with this id, created for `workspace_id` if new; the owner is never changed."""
    row = await pool.fetchrow(
        """WITH added AS (
               INSERT INTO api_sessions (session_id, platform, workspace_id, user_id) VALUES ($1, $2, $3, $4)
               ON CONFLICT (session_id) DO NOTHING
               RETURNING session_id, workspace_id, user_id, created_at)
           SELECT * FROM added
           UNION ALL
           SELECT session_id, workspace_id, user_id, created_at FROM api_sessions WHERE session_id = $1
           LIMIT 1""",
        session_id,
        Platform.API.value,
        workspace_id,
        user_id,
    )
    assert row is not None
    return Session(**dict(row))


async def session_messages(pool: asyncpg.Pool, session: Session) -> list[Message]:
    rows = await pool.fetch(
        """SELECT role, content, turn_id, created_at FROM messages
           WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4 ORDER BY id""",
        Platform.API.value,
        session.workspace_id,
        API_CHANNEL,
        session.session_id,
    )
    return [Message(**dict(r)) for r in rows]


async def delete_session(pool: asyncpg.Pool, session: Session) -> dict[str, int]:
    """Delete the conversation: its messages, its turns (with their usage and feedback), the session."""
    scope = (Platform.API.value, session.workspace_id, API_CHANNEL, session.session_id)
    where = "platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4"
    async with pool.acquire() as conn, conn.transaction():
        messages = await conn.execute(f"DELETE FROM messages WHERE {where}", *scope)
        turns = await conn.execute(f"DELETE FROM turns WHERE {where}", *scope)
        await conn.execute("DELETE FROM api_sessions WHERE session_id = $1", session.session_id)
    return {"messages": _count(messages), "turns": _count(turns)}


async def turn_in_workspace(pool: asyncpg.Pool, turn_id: int, workspace_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT 1 FROM turns WHERE id = $1 AND platform = $2 AND workspace_id = $3",
        turn_id,
        Platform.API.value,
        workspace_id,
    )
    return found is not None


def _count(status: str) -> int:
    return int(status.split()[-1])
