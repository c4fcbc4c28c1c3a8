"""SQL for long-term memories: write, search, bulk load, large-scope indexes, retention.

Search strategy (pgvector 0.6.2 has no iterative index scans, so a filtered HNSW scan over a shared
index can return fewer than k rows): a person's memories are found through the B-tree on
(platform, workspace_id, user_id, ...) and scanned exactly, which is correct and fast for the
thousands of memories a person has. A scope that grows past a threshold gets its own partial HNSW
index whose predicate is that scope, so the approximate scan only ever walks that person's rows; if
it still comes back short, the exact scan answers.

Per-person functions take a connection from `core.memory.scope.person_scope`; the cross-tenant
maintenance functions (retention, indexes) take the pool and run as the connecting role.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import numpy as np

from core.memory.ranking import Candidate, ScopeStats, Signals
from core.models import UserKey

MemoryKind = Literal["turn", "fact"]
TEXT_SEARCH_CONFIG = "english"
_WORD = re.compile(r"[^\W_]+")
HNSW_EF_SEARCH = 400
"""Candidates an HNSW scan of a large scope keeps: pgvector's default 40 gives recall@10 near 0.4 on
384-dimensional vectors of a 20k scope, 400 near 0.96 (benchmarks/memory_scale.py)."""


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
class SearchResult:
    candidates: list[Candidate]
    stats: ScopeStats
    path: Literal["exact", "hnsw"]


def content_hash(content: str) -> bytes:
    """Identity of a memory's content: case and whitespace do not make a new memory."""
    return hashlib.sha256(" ".join(content.split()).casefold().encode()).digest()


def or_query(text: str) -> str:
    """The words of `text` joined as an OR full-text query (stop words drop out in Postgres)."""
    return " | ".join(dict.fromkeys(w.lower() for w in _WORD.findall(text)))


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
) -> tuple[int, bool]:
    """Store a memory once; return its id and whether it is new. The thread defaults to the source's."""
    new_id: int | None = await conn.fetchval(
        """
        INSERT INTO memories (platform, workspace_id, user_id, content, content_hash, kind, thread_id,
                              source_message_id, embedding, embedding_model)
        VALUES ($1, $2, $3, $4, $5, $6,
                coalesce($7, (SELECT thread_id FROM messages
                              WHERE id = $8 AND platform = $1 AND workspace_id = $2)),
                (SELECT id FROM messages WHERE id = $8 AND platform = $1 AND workspace_id = $2),
                $9, $10)
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
    )
    if new_id is not None:
        return new_id, True
    existing = await find_by_content(conn, user, content)
    assert existing is not None
    return existing, False


async def update_memory(
    conn: asyncpg.Connection, user: UserKey, memory_id: int, *, content: str, embedding: np.ndarray, model: str
) -> bool:
    """Replace a memory's content (a corrected fact); False when it is gone or would duplicate another."""
    try:
        status: str = await conn.execute(
            """
            UPDATE memories SET content = $5, content_hash = $6, embedding = $7, embedding_model = $8,
                                updated_at = now()
            WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND id = $4
            """,
            user.platform,
            user.workspace_id,
            user.user_id,
            memory_id,
            content,
            content_hash(content),
            embedding,
            model,
        )
    except asyncpg.UniqueViolationError:
        return False
    return status.endswith(" 1")


async def delete_memory(conn: asyncpg.Connection, user: UserKey, memory_id: int) -> bool:
    status: str = await conn.execute(
        "DELETE FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND id = $4",
        user.platform,
        user.workspace_id,
        user.user_id,
        memory_id,
    )
    return status.endswith(" 1")


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


async def nearest(
    conn: asyncpg.Connection,
    user: UserKey,
    vector: np.ndarray,
    *,
    model: str,
    limit: int,
    kind: MemoryKind | None = None,
) -> list[tuple[int, str, float]]:
    """(id, content, cosine similarity) of the closest memories by exact scan, for fact upkeep."""
    rows = await conn.fetch(
        """
        SELECT id, content, 1 - (embedding <=> $5) AS similarity
        FROM memories
        WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
          AND ($7::text IS NULL OR kind = $7)
        ORDER BY embedding <=> $5, id
        LIMIT $6
        """,
        user.platform,
        user.workspace_id,
        user.user_id,
        model,
        vector,
        limit,
        kind,
    )
    return [(r["id"], r["content"], float(r["similarity"])) for r in rows]


async def search(
    conn: asyncpg.Connection,
    user: UserKey,
    *,
    query: str,
    vector: np.ndarray | None,
    model: str,
    pool_size: int,
    recent: int,
) -> SearchResult:
    """Candidates for ranking: the best `pool_size` by vector and by text, the `recent` newest, and
    the thread neighbours of the best; with the signals `core.memory.ranking` fuses."""
    dims: int | None = await conn.fetchval(
        "SELECT dimensions FROM memory_scope_indexes"
        " WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4",
        user.platform,
        user.workspace_id,
        user.user_id,
        model,
    )
    if dims is not None and vector is not None and len(vector) == dims:
        found = await _search_indexed(conn, user, query=query, vector=vector, model=model, dims=dims, limit=pool_size)
        if len(found.candidates) >= pool_size:
            return found
    return await _search_exact(conn, user, query=query, vector=vector, model=model, limit=pool_size, recent=recent)


_QUERY_CTE = f"""
query AS MATERIALIZED (
    SELECT CASE WHEN $7 <> '' THEN to_tsquery('{TEXT_SEARCH_CONFIG}', $7) END AS tsq,
           tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', $6)) AS words
)"""
"""The query's tsquery and lexemes, computed once: inline, a generic plan (asyncpg prepares every
statement, Postgres switches to generic plans after five runs) would parse them again for every row."""


def _query_terms(tsv: str) -> str:
    """The query's lexemes of a full-text vector with their positions (D is `to_tsvector`'s weight,
    so marking the query's lexemes A and keeping only A filters without unnesting every lexeme)."""
    return f"ts_filter(setweight({tsv}, 'A', (SELECT words FROM query)), '{{a}}')"


_BM25_TERM = "i.idf * h.tf * 2.2 / (h.tf + 1.2 * (0.25 + 0.75 * h.dl / i.avgdl))"
"""One query term's BM25 (k1 1.2, b 0.75) in a document: `h` has tf and the document's length dl,
`i` the term's idf and the scope's average length."""


def _text_score(alias: str) -> str:
    """BM25 of one memory row `alias`, from the scope's `idf`: equal to its row of `bm25`, without a
    join the planner could turn into a scan of `bm25` per row."""
    return f"""CASE WHEN {alias}.tsv @@ (SELECT tsq FROM query) THEN (
            SELECT sum({_BM25_TERM})
            FROM (SELECT lexeme, greatest(cardinality(positions), 1)::float8 AS tf,
                         length({alias}.tsv)::float8 AS dl
                  FROM unnest({_query_terms(f"{alias}.tsv")})) h
            JOIN idf i USING (lexeme)) END"""


def _neighbour(alias: str, direction: Literal["<", ">"]) -> str:
    """The previous (<) or next (>) memory of `alias` in its thread, through the index
    memories_thread (migration 0008), with its signals."""
    order = "DESC" if direction == "<" else "ASC"
    return f"""(
    SELECT q.id, CASE WHEN q.embedding_model = $4 THEN 1 - (q.embedding <=> $5) END AS similarity,
           {_text_score("q")} AS text_score
    FROM memories q
    WHERE q.platform = $1 AND q.workspace_id = $2 AND q.user_id = $3
      AND q.thread_id = {alias}.thread_id AND q.id {direction} {alias}.id
    ORDER BY q.id {order} LIMIT 1
)"""


_BM25_CTES = f"""
idf AS MATERIALIZED (
    SELECT d.lexeme, ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf, st.avgdl
    FROM (SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme) d CROSS JOIN stats st
),
bm25 AS MATERIALIZED (
    SELECT h.id, sum({_BM25_TERM}) AS text_score FROM hits h JOIN idf i USING (lexeme) GROUP BY h.id
)"""
"""Each query term's idf and each matching memory's BM25, from `hits` (memory, lexeme, tf, length)
and `stats` (the scope's size n and average length avgdl)."""


_EXACT_SQL = f"""
WITH {_QUERY_CTE},
scope AS MATERIALIZED (
    SELECT id, created_at, length(tsv) AS dl,
           CASE WHEN embedding_model = $4 THEN 1 - (embedding <=> $5) END AS similarity,
           CASE WHEN tsv @@ (SELECT tsq FROM query) THEN {_query_terms("tsv")} END AS terms
    FROM memories
    WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
),
stats AS MATERIALIZED (
    SELECT count(*)::float8 AS n, greatest(avg(dl), 1)::float8 AS avgdl,
           min(similarity) AS min_similarity, max(similarity) AS max_similarity
    FROM scope
),
hits AS MATERIALIZED (
    SELECT s.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, s.dl::float8 AS dl
    FROM scope s CROSS JOIN LATERAL unnest(s.terms) AS t(lexeme, positions, weights)
    WHERE s.terms IS NOT NULL
),
{_BM25_CTES},
best AS (
    (SELECT id FROM scope WHERE similarity IS NOT NULL ORDER BY similarity DESC, id DESC LIMIT $8)
    UNION
    (SELECT id FROM bm25 ORDER BY text_score DESC, id DESC LIMIT $8)
),
newest AS (
    SELECT id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS by_time,
           similarity IS NULL AND id NOT IN (SELECT id FROM bm25) AS silent
    FROM (SELECT id, created_at, similarity FROM scope ORDER BY created_at DESC, id DESC
          LIMIT greatest($8, $9)) s
),
around AS (
    SELECT n.id
    FROM best JOIN memories m USING (id)
    CROSS JOIN LATERAL (
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id < m.id ORDER BY p.id DESC LIMIT 1)
        UNION ALL
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id > m.id ORDER BY p.id LIMIT 1)
    ) n
    WHERE m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3 AND m.thread_id IS NOT NULL
),
picked AS (
    SELECT id FROM best
    UNION SELECT id FROM newest
          WHERE by_time <= $9 OR (silent AND by_time <= $8)  -- no signal (no query, other model): newest fill up to k
    UNION SELECT id FROM around
)
SELECT m.id, m.content, m.created_at,
       CASE WHEN m.embedding_model = $4 THEN 1 - (m.embedding <=> $5) END AS similarity,
       {_text_score("m")} AS text_score,
       p.id AS prev_id, p.similarity AS prev_similarity, p.text_score AS prev_text,
       n.id AS next_id, n.similarity AS next_similarity, n.text_score AS next_text,
       st.min_similarity, st.max_similarity, (SELECT max(text_score) FROM bm25) AS max_text
FROM picked JOIN memories m USING (id)
CROSS JOIN stats st
LEFT JOIN LATERAL {_neighbour("m", "<")} p ON true
LEFT JOIN LATERAL {_neighbour("m", ">")} n ON true
WHERE m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3
"""
"""Exact search of one person's scope. The scope is read once (similarity, length, the query's
terms of each memory); everything after works on bounded sets: the `$8` best by vector and by
BM25, the newest, the thread neighbours of the best (index probes), so no sort or window runs over
the whole scope. The candidates, their signals and the scope's min/max match a window over all
rows: ranks by similarity, then by text; the newest `$9`; the rows before and after each best
row in its thread; with no signal at all, the newest fill up to `$8`."""


async def _search_exact(
    conn: asyncpg.Connection,
    user: UserKey,
    *,
    query: str,
    vector: np.ndarray | None,
    model: str,
    limit: int,
    recent: int,
) -> SearchResult:
    rows = await conn.fetch(
        _EXACT_SQL,
        user.platform,
        user.workspace_id,
        user.user_id,
        model,
        vector,
        query,
        or_query(query),
        limit,
        recent,
    )
    candidates = [_candidate(r) for r in rows]
    if rows:
        first = rows[0]
        stats = ScopeStats(
            min_similarity=float(first["min_similarity"] or 0.0),
            max_similarity=float(first["max_similarity"] or 0.0),
            max_text_score=float(first["max_text"] or 0.0),
        )
    else:
        stats = ScopeStats.of(())
    return SearchResult(candidates=candidates, stats=stats, path="exact")


async def _search_indexed(
    conn: asyncpg.Connection,
    user: UserKey,
    *,
    query: str,
    vector: np.ndarray,
    model: str,
    dims: int,
    limit: int,
) -> SearchResult:
    """Approximate search through the scope's own partial HNSW index (custom plans, so the planner
    can prove the index predicate from the parameter values)."""
    await conn.execute(
        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('hnsw.ef_search', $1, true)",
        str(max(HNSW_EF_SEARCH, 2 * limit)),
    )
    sql = f"""
    WITH {_QUERY_CTE},
    near AS (
        SELECT id FROM memories
        WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
        ORDER BY embedding::vector({int(dims)}) <=> $5::vector({int(dims)})
        LIMIT $8
    ),
    stats AS (
        SELECT (SELECT count(*) FROM memories
                WHERE platform = $1 AND workspace_id = $2 AND user_id = $3)::float8 AS n,
               greatest((SELECT avg(length(tsv)) FROM memories WHERE id IN (SELECT id FROM near)), 1)::float8
                   AS avgdl
    ),
    hits AS MATERIALIZED (
        SELECT m.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, length(m.tsv)::float8 AS dl
        FROM memories m CROSS JOIN LATERAL unnest({_query_terms("m.tsv")}) AS t(lexeme, positions, weights)
        WHERE m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3 AND m.tsv @@ (SELECT tsq FROM query)
    ),
    {_BM25_CTES},
    top_text AS (SELECT id, text_score FROM bm25 ORDER BY text_score DESC, id DESC LIMIT $8)
    SELECT m.id, m.content, m.created_at,
           CASE WHEN m.embedding_model = $4 THEN 1 - (m.embedding <=> $5) END AS similarity,
           coalesce(t.text_score, 0)::float8 AS text_score,
           NULL::bigint AS prev_id, NULL::float8 AS prev_similarity, NULL::float8 AS prev_text,
           NULL::bigint AS next_id, NULL::float8 AS next_similarity, NULL::float8 AS next_text
    FROM (SELECT id FROM near UNION SELECT id FROM top_text) pick
    JOIN memories m ON m.id = pick.id
    LEFT JOIN top_text t ON t.id = m.id
    """
    rows = await conn.fetch(
        sql, user.platform, user.workspace_id, user.user_id, model, vector, query, or_query(query), limit
    )
    candidates = [_candidate(r) for r in rows]
    return SearchResult(candidates=candidates, stats=ScopeStats.of(c.signals for c in candidates), path="hnsw")


def _candidate(r: asyncpg.Record) -> Candidate:
    def signals(similarity: float | None, text: float | None) -> Signals:
        return Signals(similarity=None if similarity is None else float(similarity), text_score=float(text or 0.0))

    return Candidate(
        id=r["id"],
        content=r["content"],
        created_at=r["created_at"],
        signals=signals(r["similarity"], r["text_score"]),
        previous=signals(r["prev_similarity"], r["prev_text"]) if r["prev_id"] is not None else None,
        following=signals(r["next_similarity"], r["next_text"]) if r["next_id"] is not None else None,
    )


# --- bulk load and maintenance (cross-tenant, as the connecting role) ----------------------------

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


async def ensure_scope_indexes(pool: asyncpg.Pool, *, model: str, dimensions: int, min_rows: int) -> list[str]:
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
            " ((embedding::vector(%s)) vector_cosine_ops) WHERE platform = %L AND workspace_id = %L"
            " AND user_id = %L AND embedding_model = %L', $1::text, $2::int, $3::text, $4::text, $5::text, $6::text)",
            name,
            dimensions,
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
