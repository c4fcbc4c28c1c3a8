"""Parley's records of Discord conversations (tables of migration 0007): ids only, never text.

The messages people sent, so a reply to one continues its conversation, and the threads Parley
started. Parley's own messages are its turns' deliveries (core/deliveries.py). The Discord adapter
(adapters/discord/bot.py) asks these questions and holds no SQL of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from core.models import Platform, WorkspaceKey
from core.store.tenancy import scoped


@dataclass(frozen=True, kw_only=True, slots=True)
class KnownMessage:
    """A message a person sent in a conversation Parley took part in."""

    thread_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMessage:
    message_id: str
    channel_id: str


async def known_message(pool: asyncpg.Pool, workspace_id: str, message_id: str) -> KnownMessage | None:
    row = await scoped(pool, _workspace(workspace_id)).fetchrow(
        "SELECT thread_id FROM discord_messages"
        " WHERE workspace_id = $1 AND message_id = $2",
        workspace_id,
        message_id,
    )
    return None if row is None else KnownMessage(**dict(row))


async def remember_messages(
    pool: asyncpg.Pool, *, workspace_id: str, user_id: str, thread_id: str, messages: Sequence[NewMessage]
) -> None:
    await scoped(pool, _workspace(workspace_id)).executemany(
        """INSERT INTO discord_messages (workspace_id, user_id, channel_id, message_id, thread_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [(workspace_id, user_id, m.channel_id, m.message_id, thread_id) for m in messages],
    )


async def people_messages(pool: asyncpg.Pool, workspace_id: str, thread_id: str) -> int:
    """How many messages people have sent in this conversation so far."""
    count = await scoped(pool, _workspace(workspace_id)).fetchval(
        "SELECT count(*) FROM discord_messages WHERE workspace_id = $1 AND thread_id = $2",
        workspace_id,
        thread_id,
    )
    return int(count)


@dataclass(frozen=True, kw_only=True, slots=True)
class ParleyThread:
    conversation_id: str
    parent_channel_id: str


async def parley_thread(pool: asyncpg.Pool, workspace_id: str, thread_id: str) -> ParleyThread | None:
    """A thread Parley started, or None when Parley did not start it."""
    row = await scoped(pool, _workspace(workspace_id)).fetchrow(
        "SELECT conversation_id, parent_channel_id FROM discord_threads WHERE workspace_id = $1 AND thread_id = $2",
        workspace_id,
        thread_id,
    )
    return None if row is None else ParleyThread(**dict(row))


async def remember_thread(
    pool: asyncpg.Pool,
    *,
    workspace_id: str,
    user_id: str,
    thread_id: str,
    parent_channel_id: str,
    conversation_id: str,
) -> None:
    await scoped(pool, _workspace(workspace_id)).execute(
        """INSERT INTO discord_threads (workspace_id, user_id, thread_id, parent_channel_id, conversation_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        workspace_id,
        user_id,
        thread_id,
        parent_channel_id,
        conversation_id,
    )


def _workspace(workspace_id: str) -> WorkspaceKey:
    return WorkspaceKey(platform=Platform.DISCORD, workspace_id=workspace_id)
