"""Cross-tenant upkeep of the memories table: retention deletes and large-scope HNSW indexes.

These run as the connecting role over every workspace (the server's hourly task, `parley memory
cleanup`), so they take the pool, never a person's scope.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import asyncpg

from core.models import UserKey

HNSW_M = 16
"""Links per node of a scope's HNSW graph (pgvector's default)."""
HNSW_EF_CONSTRUCTION = 200
"""Candidates kept while building: pgvector's 64 leaves a 20k scope of clustered 384-d vectors at
recall@10 0.96 with ef_search 400, 200 reaches 0.99 (benchmarks/memory_scale.py); the build takes
about three times longer, once, in the background."""


async def delete_expired(pool: asyncpg.Pool, *, before: datetime, batch: int = 10_000) -> int:
    """Delete memories created before `before`, in batches so no transaction grows large."""
    total = 0
    while True:
        status: str = await pool.execute(
            "DELETE FROM memories WHERE id IN"
            " (SELECT id FROM memories WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
            before,
            batch,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total


async def ensure_scope_indexes(
    pool: asyncpg.Pool, *, model: str, dimensions: int, min_rows: int, ef_construction: int = HNSW_EF_CONSTRUCTION
) -> list[str]:
    """Give every scope with at least `min_rows` memories of `model` its own partial HNSW index.

    Built CONCURRENTLY (no write lock); returns the names of the indexes created.
    """
    scopes = await pool.fetch(
        """
        SELECT m.platform, m.workspace_id, m.user_id
        FROM memories m
        WHERE m.embedding_model = $1
        GROUP BY m.platform, m.workspace_id, m.user_id
        HAVING count(*) >= $2
        EXCEPT
        SELECT platform, workspace_id, user_id FROM memory_scope_indexes WHERE embedding_model = $1
        """,
        model,
        min_rows,
    )
    created: list[str] = []
    for s in scopes:
        digest = hashlib.sha256(
            "\x1f".join((s["platform"], s["workspace_id"], s["user_id"], model)).encode()
        ).hexdigest()[:20]
        name = f"memories_hnsw_{digest}"
        ddl: str = await pool.fetchval(
            "SELECT format('CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON memories USING hnsw"
            " ((embedding::vector(%s)) vector_cosine_ops) WITH (m = %s, ef_construction = %s)"
            " WHERE platform = %L AND workspace_id = %L AND user_id = %L AND embedding_model = %L',"
            " $1::text, $2::int, $3::int, $4::int, $5::text, $6::text, $7::text, $8::text)",
            name,
            dimensions,
            HNSW_M,
            ef_construction,
            s["platform"],
            s["workspace_id"],
            s["user_id"],
            model,
        )
        await pool.execute(ddl)
        await pool.execute(
            "INSERT INTO memory_scope_indexes (platform, workspace_id, user_id, embedding_model, dimensions,"
            " index_name) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            s["platform"],
            s["workspace_id"],
            s["user_id"],
            model,
            dimensions,
            name,
        )
        created.append(name)
    if created:
        await pool.execute("ANALYZE memories")
    return created


async def drop_scope_indexes(pool: asyncpg.Pool, user: UserKey) -> int:
    """Drop a person's partial indexes (after forgetting them)."""
    names = await pool.fetch(
        "DELETE FROM memory_scope_indexes WHERE platform = $1 AND workspace_id = $2 AND user_id = $3"
        " RETURNING index_name",
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    for n in names:
        ddl: str = await pool.fetchval("SELECT format('DROP INDEX IF EXISTS %I', $1::text)", n["index_name"])
        await pool.execute(ddl)
    return len(names)
