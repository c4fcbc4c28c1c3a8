"""Thread history (short-term memory, seed properties 15 and 24): earlier turns of this conversation."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from core.models import ConversationKey
from core.store.tenancy import scoped


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredMessage:
    id: int
    role: str
    content: str


async def thread_messages(pool: asyncpg.Pool, conversation: ConversationKey, *, limit: int) -> list[StoredMessage]:
    """The last `limit` messages of the conversation, oldest first, scoped to its workspace."""
    rows = await scoped(pool, conversation).fetch(
        """
        SELECT id, role, content FROM (
            SELECT id, role, content FROM messages
            WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4
            ORDER BY id DESC LIMIT $5
        ) recent ORDER BY id
        """,
        conversation.platform,
        conversation.workspace_id,
        conversation.channel_id,
        conversation.thread_id,
        limit,
    )
    return [StoredMessage(id=r["id"], role=r["role"], content=r["content"]) for r in rows]


def to_model_messages(history: list[StoredMessage]) -> list[ModelMessage]:
    """Stored messages as pydantic-ai history; a leading assistant message is dropped."""
    out: list[ModelMessage] = []
    for message in history:
        if message.role == "user":
            out.append(ModelRequest(parts=[UserPromptPart(content=message.content)]))
        elif out:
            out.append(ModelResponse(parts=[TextPart(content=message.content)]))
    return out
