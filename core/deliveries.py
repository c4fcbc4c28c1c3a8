"""Which platform message carried which turn's reply, and in which conversation (table `deliveries`).

The turn records its own delivery (core/pipeline.py), so a 👍/👎 on any chunk of a reply, a click on
a feedback button, a reply to one of Parley's messages and "is Parley in this thread" are all
questions about this one table, asked the same way for every platform. Every statement runs in the
tenant scope of core/store/tenancy.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from core.models import ConversationKey, Inbound, WorkspaceKey
from core.store.tenancy import scoped, self_scoped


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One of Parley's messages: the turn it answered and the conversation it belongs to."""

    turn_id: int
    channel_id: str
    thread_id: str


async def record(pool: asyncpg.Pool, inbound: Inbound, *, turn_id: int, message_ids: Sequence[str]) -> None:
    """Remember the messages that carry `turn_id`'s reply, in order; one already recorded is kept as it is.
    One statement that names the person's scope itself (migration 0034): no BEGIN or COMMIT."""
    if not message_ids:
        return
    async with self_scoped(pool) as conn:
        await conn.execute(
            "SELECT parley_record_delivery_messages($1, $2, $3, $4, $5, $6, $7)",
            inbound.platform,
            inbound.workspace_id,
            inbound.user_id,
            inbound.channel_id,
            inbound.thread_id,
            turn_id,
            list(message_ids),
        )


async def find(pool: asyncpg.Pool, workspace: WorkspaceKey, message_id: str) -> Delivery | None:
    """The delivery a platform message is part of; None when Parley did not send it."""
    row = await scoped(pool, workspace).fetchrow(
        """SELECT turn_id, channel_id, thread_id FROM deliveries
           WHERE platform = $1 AND workspace_id = $2 AND message_id = $3""",
        workspace.platform,
        workspace.workspace_id,
        message_id,
    )
    return None if row is None else Delivery(**dict(row))


async def in_conversation(pool: asyncpg.Pool, conversation: ConversationKey) -> bool:
    """Parley has answered in this conversation (a thread it takes part in)."""
    workspace = WorkspaceKey(platform=conversation.platform, workspace_id=conversation.workspace_id)
    found = await scoped(pool, workspace).fetchval(
        """SELECT 1 FROM deliveries
           WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4 LIMIT 1""",
        conversation.platform,
        conversation.workspace_id,
        conversation.channel_id,
        conversation.thread_id,
    )
    return found is not None
