"""SQL recall of one person's memories: the candidates and signals `core.memory.ranking` fuses.

Search strategy (pgvector 0.6.2 has no iterative index scans, so a filtered HNSW scan over a shared
index can return fewer than k rows): a person's memories are found through the B-tree on
(platform, workspace_id, user_id, ...) and scanned exactly, which is correct and fast for the
thousands of memories a person has. A scope that grows past a threshold gets its own partial HNSW
index (`core.memory.maintenance`) whose predicate is that scope, so the approximate scan only ever
walks that person's rows; if it still comes back short, the exact scan answers.

Every function takes a connection from `core.memory.scope.person_scope`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import asyncpg
import numpy as np

from core.memory.ranking import Candidate, Signals
from core.models import UserKey

TEXT_SEARCH_CONFIG = "english"
_WORD = re.compile(r"[^\W_]+")
HNSW_EF_SEARCH = 400
"""Candidates an HNSW scan of a large scope keeps: pgvector's default 40 gives recall@10 near 0.4 on
384-dimensional vectors of a 20k scope, 400 near 0.99 with the scope indexes' ef_construction 200
(`core.memory.maintenance`, benchmarks/memory_scale.py)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchResult:
    candidates: list[Candidate]
    path: Literal["exact", "hnsw"]


def or_query(text: str) -> str:
    """The words of `text` joined as an OR full-text query (stop words drop out in Postgres)."""
    return " | ".join(dict.fromkeys(w.lower() for w in _WORD.findall(text)))


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
        _INDEXED_SCOPE_SQL,
        user.platform,
        user.workspace_id,
        user.user_id,
        model,
        str(max(HNSW_EF_SEARCH, 2 * pool_size)),
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


BM25_K1 = 0.9
"""Term-frequency saturation. With `BM25_B`, Anserini's defaults for short passages: chat turns are
short and a repeated word says little more than one use (LoCoMo development conversations: recall@10
0.782 with Robertson's k1 1.2 / b 0.75, 0.794 with these; docs/memory.md)."""
BM25_B = 0.4
"""Length normalisation: a long turn is penalised less than with the textbook 0.75, since a long turn
in a chat is usually one that says more, not one that repeats itself."""
_BM25_TERM = f"i.idf * h.tf * {BM25_K1 + 1:g} / (h.tf + {BM25_K1:g} * ({1 - BM25_B:g} + {BM25_B:g} * h.dl / i.avgdl))"
"""One query term's BM25 in a document: `h` has tf and the document's length dl, `i` the term's idf
and the scope's average length."""


def _text_score(alias: str) -> str:
    """BM25 of one memory row `alias`, from the scope's `idf`: equal to its row of `bm25`, without a
    join the planner could turn into a scan of `bm25` per row."""
    return f"""CASE WHEN {alias}.tsv @@ (SELECT tsq FROM query) THEN (
            SELECT sum({_BM25_TERM})
            FROM (SELECT lexeme, greatest(cardinality(positions), 1)::float8 AS tf,
                         length({alias}.tsv)::float8 AS dl
                  FROM unnest({_query_terms(f"{alias}.tsv")})) h
            JOIN idf i USING (lexeme)) END"""


def _similarity(alias: str) -> str:
    """Cosine similarity of the query and memory `alias`, both taken relative to the candidates' mean
    vector (`centre`, joined as `c`); NULL for a memory of another model or without a query vector, 0
    for a vector (of the memory or the query) at the mean. Sentence embeddings share a large common
    direction, so the raw cosines of one person's memories crowd together; measured from their mean,
    what sets a memory apart from the others counts (LoCoMo unseen recall@5/25/50 +0.010/+0.013/
    +0.010, docs/memory.md). From inner products alone: |d - mu|^2 = d.d - 2 d.mu + mu.mu."""
    e = f"{alias}.embedding"
    apart = f"(({e} <#> c.mu) * 2 - ({e} <#> {e}) + c.mm)"
    return f"""CASE WHEN {alias}.embedding_model = $4 AND $5 IS NOT NULL THEN
            CASE WHEN {apart} > -{AT_MEAN**2:g} * ({e} <#> {e}) AND c.qq_c > {AT_MEAN**2:g} * c.qq
                 THEN (({e} <#> c.mu) - ({e} <#> $5) - c.qm + c.mm) / sqrt({apart} * c.qq_c) ELSE 0 END END"""


AT_MEAN = 0.01
"""A vector this close to the candidates' mean (relative to its length) has no direction of its own;
well above the rounding of pgvector's single-precision inner products."""


_BY_ID = "= ANY (ARRAY(SELECT id FROM picked))"
"""Candidates fetched by id through the primary key's index whatever the planner believes of the scope:
as a join, a heavy person's 200 candidates made it hash all 20,000 rows of the scope (the estimate of
a scope assumes its keys are independent: 334 rows), 200 ms instead of 2."""

_CENTRE_CTE = f"""
centre AS MATERIALIZED (
    SELECT mu, -(mu <#> $5) AS qm, -(mu <#> mu) AS mm, -($5 <#> $5) AS qq,
           -($5 <#> $5) + 2 * (mu <#> $5) - (mu <#> mu) AS qq_c
    FROM (SELECT avg(c.embedding) FILTER (WHERE c.embedding_model = $4) AS mu
          FROM memories c
          WHERE c.id {_BY_ID}
            AND c.platform = $1 AND c.workspace_id = $2 AND c.user_id = $3) a
)"""
"""The mean vector `mu` of the candidates (`picked`) of the query's model and its inner products with
itself and the query, for `_similarity`: |q - mu|^2 = q.q - 2 q.mu + mu.mu."""


def _neighbour(alias: str, direction: Literal["<", ">"]) -> str:
    """The previous (<) or next (>) memory of `alias` in its thread, through the index
    memories_thread (migration 0008), with its signals."""
    order = "DESC" if direction == "<" else "ASC"
    return f"""(
    SELECT q.id, {_similarity("q")} AS similarity, {_text_score("q")} AS text_score
    FROM memories q CROSS JOIN centre c
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
    SELECT count(*)::float8 AS n, greatest(avg(dl), 1)::float8 AS avgdl
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
    FROM memories m
    CROSS JOIN LATERAL (
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id < m.id ORDER BY p.id DESC LIMIT 1)
        UNION ALL
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id > m.id ORDER BY p.id LIMIT 1)
    ) n
    WHERE m.id = ANY (ARRAY(SELECT id FROM best))
      AND m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3 AND m.thread_id IS NOT NULL
),
picked AS (
    SELECT id FROM best
    UNION SELECT id FROM newest
          WHERE by_time <= $9 OR (silent AND by_time <= $8)  -- no signal (no query, other model): newest fill up to k
    UNION SELECT id FROM around
),
{_CENTRE_CTE}
SELECT m.id, m.content, m.created_at, m.thread_id,
       {_similarity("m")} AS similarity,
       {_text_score("m")} AS text_score,
       p.id AS prev_id, p.similarity AS prev_similarity, p.text_score AS prev_text,
       n.id AS next_id, n.similarity AS next_similarity, n.text_score AS next_text
FROM memories m CROSS JOIN centre c
LEFT JOIN LATERAL {_neighbour("m", "<")} p ON true
LEFT JOIN LATERAL {_neighbour("m", ">")} n ON true
WHERE m.id {_BY_ID} AND m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3
"""
"""Exact search of one person's scope. The scope is read once (similarity, length, the query's
terms of each memory); everything after works on bounded sets: the `$8` best by vector and by
BM25, the newest, the thread neighbours of the best (index probes), so no sort or window runs over
the whole scope. The candidates and their signals match a window over all
rows: ranks by similarity, then by text; the newest `$9`; the rows before and after each best
row in its thread; with no signal at all, the newest fill up to `$8`."""


_INDEXED_SCOPE_SQL = """
SELECT dimensions,
       set_config('plan_cache_mode', 'force_custom_plan', true), set_config('hnsw.ef_search', $5, true)
FROM memory_scope_indexes
WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
"""
"""The dimensions of the scope's own HNSW index, if it has one; and then, in the same round trip, the
settings its search needs: custom plans, so the planner can prove the partial index's predicate from
the parameter values (and skips the full-text part outright when the query has no words), and
`hnsw.ef_search` for the pool asked for. A scope without an index sets nothing."""


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
    return SearchResult(candidates=[_candidate(r) for r in rows], path="exact")


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
    """Approximate search through the scope's own partial HNSW index (`_INDEXED_SCOPE_SQL` set up
    the plan and the walk). The text route asks `memory_text_hits` (migration 0024): the GIN index
    of lexemes prefixed with their scope finds the person's matching rows, where under row-level
    security the non-leakproof `@@` made Postgres read every row of the scope; BM25's n and average
    length come from `memory_scope_stats` instead of a count of the scope."""
    sql = f"""
    WITH {_QUERY_CTE},
    near AS (
        SELECT id FROM memories
        WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
        ORDER BY embedding::vector({int(dims)}) <=> $5::vector({int(dims)})
        LIMIT $8
    ),
    stats AS (
        SELECT memories::float8 AS n, greatest(text_length::float8 / memories, 1) AS avgdl
        FROM memory_scope_stats WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
    ),
    hits AS MATERIALIZED (
        SELECT m.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, length(m.tsv)::float8 AS dl
        FROM memory_text_hits((SELECT words FROM query)) m
        CROSS JOIN LATERAL unnest({_query_terms("m.tsv")}) AS t(lexeme, positions, weights)
        WHERE $7 <> ''
    ),
    {_BM25_CTES},
    top_text AS (SELECT id, text_score FROM bm25 ORDER BY text_score DESC, id DESC LIMIT $8),
    picked AS (SELECT id FROM near UNION SELECT id FROM top_text),
    {_CENTRE_CTE}
    SELECT m.id, m.content, m.created_at, m.thread_id,
           {_similarity("m")} AS similarity,
           coalesce(t.text_score, 0)::float8 AS text_score,
           NULL::bigint AS prev_id, NULL::float8 AS prev_similarity, NULL::float8 AS prev_text,
           NULL::bigint AS next_id, NULL::float8 AS next_similarity, NULL::float8 AS next_text
    FROM memories m CROSS JOIN centre c
    LEFT JOIN top_text t ON t.id = m.id
    WHERE m.id {_BY_ID} AND m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3
    """
    rows = await conn.fetch(
        sql, user.platform, user.workspace_id, user.user_id, model, vector, query, or_query(query), limit
    )
    return SearchResult(candidates=[_candidate(r) for r in rows], path="hnsw")


def _candidate(r: asyncpg.Record) -> Candidate:
    def signals(similarity: float | None, text: float | None) -> Signals:
        return Signals(similarity=None if similarity is None else float(similarity), text_score=float(text or 0.0))

    return Candidate(
        id=r["id"],
        content=r["content"],
        created_at=r["created_at"],
        signals=signals(r["similarity"], r["text_score"]),
        thread_id=r["thread_id"],
        previous=signals(r["prev_similarity"], r["prev_text"]) if r["prev_id"] is not None else None,
        following=signals(r["next_similarity"], r["next_text"]) if r["next_id"] is not None else None,
    )
