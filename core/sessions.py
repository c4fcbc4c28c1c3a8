"""API sessions: one conversation (thread) each, keyed by the workspace whose key opened it.

The REST adapter (adapters/api) holds no SQL: opening, reading and deleting a session's conversation
happen here, in the workspace's tenant scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.apikeys import Checked, checked_row, hash_key, key_id_of
from core.models import Platform, WorkspaceKey
from core.store.tenancy import scoped, self_scoped, tenant
from core.turns import INTERRUPTED

API_CHANNEL = "api"


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    session_id: str
    workspace_id: str
    user_id: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    id: int
    role: str
    content: str
    turn_id: int | None
    created_at: datetime
    interrupted: bool = False
    """A person's message whose turn's server stopped before answering (`core.turns.INTERRUPTED`)."""


def new_session_id() -> str:
    return uuid.uuid4().hex


async def find_session(pool: asyncpg.Pool, workspace_id: str, session_id: str) -> Session | None:
    """The workspace's session with this id; another workspace's is as missing as one never made."""
    row = await scoped(pool, _workspace(workspace_id)).fetchrow(
        """SELECT session_id, workspace_id, user_id, created_at FROM api_sessions
           WHERE platform = $1 AND workspace_id = $2 AND session_id = $3""",
        Platform.API.value,
        workspace_id,
        session_id,
    )
    return Session(**dict(row)) if row else None


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyedSession:
    """What an API turn's key check found: the key (as `core.apikeys.authenticate` finds and counts it) and
    the session it continues or opens; None for an invalid key, one over a limit, or a request naming a user
    its key may not act for."""

    checked: Checked
    session: Session | None


async def authenticate_session(
    pool: asyncpg.Pool, key: str, session_id: str, *, user_id: str | None, address: str, per_key: int,
    invalid_per_address: int,
) -> KeyedSession:
    """`core.apikeys.authenticate`, then the session opened or found (migration 0034's `parley_open_session`,
    the owner never changed) for the person the request acts for (`user_id`: the
    user the request names, None for none), in one statement and one transaction (migration 0039): its
    session is opened only for a live key within its limit that may act for that person, in the key's
    workspace. A malformed key is no key, looked up and counted nowhere, as `authenticate` has it."""
    key_id = key_id_of(key)
    if key_id is None:
        return KeyedSession(checked=Checked(key=None), session=None)
    async with self_scoped(pool) as conn:
        row = await conn.fetchrow(
            "SELECT * FROM parley_authenticate_session($1, $2, $3, $4, $5, $6, $7, $8)",
            key_id, hash_key(key), address, per_key, invalid_per_address, session_id, Platform.API.value, user_id,
        )
    if row is None:
        return KeyedSession(checked=Checked(key=None), session=None)
    values = dict(row)
    opened = {"session_id": values.pop("session_id"), "workspace_id": values["workspace_id"],
              "user_id": values.pop("session_user_id"), "created_at": values.pop("session_created_at")}
    session = Session(**opened) if opened["session_id"] is not None else None
    return KeyedSession(checked=checked_row(values), session=session)


async def session_messages(
    pool: asyncpg.Pool, session: Session, *, limit: int, before: int | None = None
) -> tuple[list[Message], bool]:
    """The newest `limit` messages older than message `before` (all of them without it), oldest first, and
    whether older ones remain: a long conversation is read a page at a time."""
    rows = await scoped(pool, _workspace(session.workspace_id)).fetch(
        f"""SELECT m.id, m.role, m.content, m.turn_id, m.created_at,
                  coalesce(m.role = 'user' AND {INTERRUPTED}, false) AS interrupted
           FROM messages m LEFT JOIN turns t ON t.id = m.turn_id
           WHERE m.platform = $1 AND m.workspace_id = $2 AND m.channel_id = $3 AND m.thread_id = $4
             AND ($5::bigint IS NULL OR m.id < $5)
           ORDER BY m.id DESC LIMIT $6""",
        Platform.API.value,
        session.workspace_id,
        API_CHANNEL,
        session.session_id,
        before,
        limit + 1,
    )
    return [Message(**dict(r)) for r in reversed(rows[:limit])], len(rows) > limit


async def delete_session(pool: asyncpg.Pool, session: Session) -> dict[str, int]:
    """Delete the conversation: its messages, its turns (with their usage, feedback and deliveries), the session."""
    scope = (Platform.API.value, session.workspace_id, API_CHANNEL, session.session_id)
    where = "platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4"
    async with tenant(pool, _workspace(session.workspace_id)) as conn:
        messages = await conn.execute(f"DELETE FROM messages WHERE {where}", *scope)
        turns = await conn.execute(f"DELETE FROM turns WHERE {where}", *scope)
        await conn.execute(
            "DELETE FROM api_sessions WHERE platform = $1 AND workspace_id = $2 AND session_id = $3",
            Platform.API.value,
            session.workspace_id,
            session.session_id,
        )
    return {"messages": _count(messages), "turns": _count(turns)}


def _workspace(workspace_id: str) -> WorkspaceKey:
    return WorkspaceKey(platform=Platform.API, workspace_id=workspace_id)


def _count(status: str) -> int:
    return int(status.split()[-1])
