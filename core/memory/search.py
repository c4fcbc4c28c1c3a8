"""Recall of one person's memories: the candidates and signals `core.memory.ranking` fuses.

The search is one SQL function, `memory_recall` (migration 0030; 0031 plans its indexed search once per
connection after the walk, 0035 its exact scan, so a table's many scope indexes no longer cost each recall a
planning), so a recall costs one round trip.
pgvector 0.6.2 has no iterative index scans, so a filtered HNSW scan over a shared index can return
fewer than k rows: a person's memories are found through the B-tree on (platform, workspace_id,
user_id, ...) and scanned exactly, which is correct and fast for the thousands of memories a person
has. A scope that grows past a threshold gets its own partial HNSW index (`core.memory.maintenance`)
whose predicate is that scope, so the approximate scan only ever walks that person's rows; if it still
comes back short, the exact scan answers. The numbers the ranking was tuned with are here and travel
with each call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import asyncpg
import numpy as np

from core.memory.ranking import Candidate, Signals
from core.models import UserKey

_WORD = re.compile(r"[^\W_]+")
HNSW_EF_SEARCH = 400
"""Candidates an HNSW scan of a large scope keeps: pgvector's default 40 gives recall@10 near 0.4 on
384-dimensional vectors of a 20k scope, 400 near 0.99 with the scope indexes' ef_construction 200
(`core.memory.maintenance`, benchmarks/memory_scale.py). A larger pool raises it to twice the pool."""
BM25_K1 = 0.9
"""Term-frequency saturation. With `BM25_B`, Anserini's defaults for short passages: chat turns are
short and a repeated word says little more than one use (LoCoMo development conversations: recall@10
0.782 with Robertson's k1 1.2 / b 0.75, 0.794 with these; docs/memory.md)."""
BM25_B = 0.4
"""Length normalisation: a long turn is penalised less than with the textbook 0.75, since a long turn
in a chat is usually one that says more, not one that repeats itself."""
AT_MEAN = 0.01
"""Similarity is the cosine of query and memory taken relative to the candidates' mean vector (sentence
embeddings share a large common direction, so the raw cosines of one person's memories crowd together;
measured from their mean, what sets a memory apart counts: LoCoMo unseen recall@5/25/50
+0.010/+0.013/+0.010, docs/memory.md). A vector this close to the mean (relative to its length) has no
direction of its own and scores 0; well above the rounding of pgvector's single-precision products."""


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
    the thread neighbours of the best; with the signals `core.memory.ranking` fuses.

    One statement, one round trip (migration 0030's `memory_recall`): it names the person's tenant
    itself, so `conn` needs no transaction (`core.store.tenancy.self_scoped`), picks the scope's own
    HNSW index or the exact scan, and runs the search."""
    arguments = recall_arguments(user, query=query, vector=vector, model=model, pool_size=pool_size, recent=recent)
    rows = await conn.fetch(_RECALL_SQL, *arguments)
    path: Literal["exact", "hnsw"] = "hnsw" if rows and rows[0]["path"] == "hnsw" else "exact"
    return SearchResult(candidates=[candidate_of(r) for r in rows], path=path)


_RECALL_SQL = "SELECT * FROM memory_recall($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"


def recall_arguments(
    user: UserKey, *, query: str, vector: np.ndarray | None, model: str, pool_size: int, recent: int
) -> tuple[object, ...]:
    """`memory_recall`'s thirteen arguments, in order: a turn's context read (core/memory/turn_context.py)
    passes the same ones."""
    return (
        user.platform,
        user.workspace_id,
        user.user_id,
        model,
        vector,
        query,
        or_query(query),
        pool_size,
        recent,
        HNSW_EF_SEARCH,
        BM25_K1,
        BM25_B,
        AT_MEAN,
    )


def candidate_of(r: asyncpg.Record) -> Candidate:
    """One row of `memory_recall` (its columns) as a ranking candidate."""

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
