"""Re-embedding after a model change: memories whose vectors came from another model get new ones.

Until a memory is re-embedded it is still found by full-text match and recency (search only compares
vectors of the current model), so a model change never breaks recall, it degrades it for a while.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from pydantic_ai import Embedder

from core.memory.embedding_backend import embed_many, model_label
from core.models import WorkspaceKey

_STALE = "embedding_model IS DISTINCT FROM $1 AND ($2::text IS NULL OR (platform = $2 AND workspace_id = $3))"


async def pending_reembed(pool: asyncpg.Pool, model: str, *, workspace: WorkspaceKey | None = None) -> int:
    """Memories without a vector of `model` (in one workspace, or all)."""
    count: int = await pool.fetchval(
        f"SELECT count(*) FROM memories WHERE {_STALE}",
        model,
        workspace.platform if workspace else None,
        workspace.workspace_id if workspace else None,
    )
    return count


async def reembed(
    pool: asyncpg.Pool,
    embedder: Embedder,
    *,
    batch: int = 64,
    workspace: WorkspaceKey | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Give every memory (of one workspace, or all) a vector of the embedder's model, `batch` at a
    time; `progress` gets the number done after each batch. Returns the number re-embedded."""
    model = model_label(embedder)
    done = 0
    after = 0
    while True:
        rows = await pool.fetch(
            f"SELECT id, content FROM memories WHERE {_STALE} AND id > $4 ORDER BY id LIMIT $5",
            model,
            workspace.platform if workspace else None,
            workspace.workspace_id if workspace else None,
            after,
            batch,
        )
        if not rows:
            return done
        vectors = await embed_many(embedder, [r["content"] for r in rows], input_type="document")
        await pool.executemany(
            "UPDATE memories SET embedding = $2, embedding_model = $3 WHERE id = $1",
            [(r["id"], v, model) for r, v in zip(rows, vectors, strict=True)],
        )
        done += len(rows)
        after = rows[-1]["id"]
        if progress is not None:
            progress(done)
