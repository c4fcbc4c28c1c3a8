"""The messages Parley posted in Slack (table slack_messages, migration 0004).

They answer two questions the events alone cannot: is Parley part of this thread (so a follow-up
without a mention is for it), and which reply does a reaction on any chunk of a long reply rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from core.models import Platform, WorkspaceKey
from core.store.tenancy import scoped


async def record_reply(
    pool: asyncpg.Pool,
    *,
    workspace_id: str,
    channel_id: str,
    thread_ts: str | None,
    ts: Sequence[str],
    reply_message_id: str,
) -> None:
    await scoped(pool, _workspace(workspace_id)).executemany(
        """INSERT INTO slack_messages (workspace_id, channel_id, ts, thread_ts, reply_message_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [(workspace_id, channel_id, t, thread_ts, reply_message_id) for t in ts],
    )


async def in_thread(pool: asyncpg.Pool, *, workspace_id: str, channel_id: str, thread_ts: str) -> bool:
    """Parley has posted in this thread (or the thread hangs off one of its messages)."""
    found = await scoped(pool, _workspace(workspace_id)).fetchval(
        """SELECT 1 FROM slack_messages
           WHERE workspace_id = $1 AND channel_id = $2 AND (thread_ts = $3 OR ts = $3) LIMIT 1""",
        workspace_id,
        channel_id,
        thread_ts,
    )
    return found is not None


async def reply_message_id(pool: asyncpg.Pool, *, workspace_id: str, channel_id: str, ts: str) -> str | None:
    """The platform message id of the reply a Slack message belongs to; None if Parley did not post it."""
    found: str | None = await scoped(pool, _workspace(workspace_id)).fetchval(
        "SELECT reply_message_id FROM slack_messages WHERE workspace_id = $1 AND channel_id = $2 AND ts = $3",
        workspace_id,
        channel_id,
        ts,
    )
    return found


def _workspace(workspace_id: str) -> WorkspaceKey:
    return WorkspaceKey(platform=Platform.SLACK, workspace_id=workspace_id)
