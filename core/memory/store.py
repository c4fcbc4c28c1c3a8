"""SQL for one person's long-term memories (the raw turns): write, list, bulk load.

Per-person functions take a connection from `core.memory.scope.person_scope`. Recall lives in
`core.memory.search`, retention and large-scope indexes in `core.memory.maintenance`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import numpy as np

from core.models import UserKey

MemoryKind = Literal["turn", "fact"]


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredMemory:
    id: int
    content: str
    kind: MemoryKind
    thread_id: str | None
    source_message_id: int | None
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMemory:
    """A turn's message as its memory row, masked and embedded, before it is written: `insert_memory` writes
    one alone, a turn's finish (core/turns.py `finish_turn`) in the same statement as the reply."""

    content: str
    embedding: np.ndarray | None
    model: str | None
    source_message_id: int | None = None
    thread_id: str | None = None
    """None: the source message's thread."""
    known_facts: int = 0
    """How many of the person's newest facts the writing transaction reads back for the model's fact extraction
    (0: none; `MemoryService.learn` reads them itself where it must)."""

    @property
    def content_hash(self) -> bytes:
        return content_hash(self.content)


def content_hash(content: str) -> bytes:
    """Identity of a memory's content: case and whitespace do not make a new memory."""
    return hashlib.sha256(" ".join(content.split()).casefold().encode()).digest()


async def find_by_content(conn: asyncpg.Connection, user: UserKey, content: str) -> int | None:
    row_id: int | None = await conn.fetchval(
        "SELECT id FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND content_hash = $4",
        user.platform,
        user.workspace_id,
        user.user_id,
        content_hash(content),
    )
    return row_id


async def insert_memory(
    conn: asyncpg.Connection,
    user: UserKey,
    *,
    content: str,
    embedding: np.ndarray | None,
    model: str | None,
    kind: MemoryKind = "turn",
    thread_id: str | None = None,
    source_message_id: int | None = None,
    said_at: datetime | None = None,
) -> tuple[int, bool]:
    """Store a memory once; return its id and whether it is new. The thread defaults to the source's;
    `said_at` (default now) is when it was said, for an import of older messages."""
    new_id: int | None = await conn.fetchval(
        """
        INSERT INTO memories (platform, workspace_id, user_id, content, content_hash, kind, thread_id,
                              source_message_id, embedding, embedding_model, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6,
                coalesce($7, (SELECT thread_id FROM messages
                              WHERE id = $8 AND platform = $1 AND workspace_id = $2)),
                (SELECT id FROM messages WHERE id = $8 AND platform = $1 AND workspace_id = $2),
                $9, $10, coalesce($11, now()), coalesce($11, now()))
        ON CONFLICT ON CONSTRAINT memories_once DO NOTHING
        RETURNING id
        """,
        user.platform,
        user.workspace_id,
        user.user_id,
        content,
        content_hash(content),
        kind,
        thread_id,
        source_message_id,
        embedding,
        model,
        said_at,
    )
    if new_id is not None:
        return new_id, True
    existing = await find_by_content(conn, user, content)
    assert existing is not None
    return existing, False


async def list_memories(conn: asyncpg.Connection, user: UserKey) -> list[StoredMemory]:
    rows = await conn.fetch(
        """
        SELECT id, content, kind, thread_id, source_message_id, embedding_model, created_at, updated_at
        FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 ORDER BY id
        """,
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    return [StoredMemory(**dict(r)) for r in rows]


COPY_COLUMNS: tuple[str, ...] = (
    "platform",
    "workspace_id",
    "user_id",
    "content",
    "content_hash",
    "kind",
    "embedding",
    "embedding_model",
)


def copy_record(
    user: UserKey, content: str, embedding: np.ndarray, model: str, *, kind: str = "turn"
) -> tuple[object, ...]:
    """One memory as `copy_memories` takes it, in `COPY_COLUMNS` order."""
    return (user.platform, user.workspace_id, user.user_id, content, content_hash(content), kind, embedding, model)


async def copy_memories(conn: asyncpg.Connection, records: Iterable[Sequence[object]]) -> int:
    """Bulk-load memories with binary COPY; each record follows `COPY_COLUMNS` (see `copy_record`)."""
    status: str = await conn.copy_records_to_table("memories", records=records, columns=list(COPY_COLUMNS))
    return int(status.split()[-1])
