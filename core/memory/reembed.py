"""Re-embedding after a model change: memories whose vectors came from another model get new ones.

Until a memory is re-embedded it is still found by full-text match and recency (search only compares
vectors of the current model), so a model change never breaks recall, it degrades it for a while.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from pydantic_ai import Embedder

from core.memory.embedding import embed_many, model_label


async def pending_reembed(pool: asyncpg.Pool, model: str) -> int:
    """Memories without a vector of `model`."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM memories WHERE embedding_model IS DISTINCT FROM $1", model
    )
    return count


async def reembed(
    pool: asyncpg.Pool,
    embedder: Embedder,
    *,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Give every memory a vector of the embedder's model, `batch` at a time; `progress` gets the
    number done after each batch. Returns the number re-embedded."""
    model = model_label(embedder)
    done = 0
    after = 0
    while True:
        rows = await pool.fetch(
            "SELECT id, content FROM memories WHERE embedding_model IS DISTINCT FROM $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            model,
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
