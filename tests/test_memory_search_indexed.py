"""Recall of a large scope (migration 0024): the per-person statistics BM25 reads, the text hits served
through the scoped GIN index, and the indexed search agreeing with the exact one on what it scores."""

from __future__ import annotations

import uuid

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.memory import maintenance, search, store
from core.memory.scope import person_scope
from core.models import UserKey
from tests.strategies import memory_texts, tenant_sets
from tests.test_memory_store import centred_similarity

DB = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODEL = "test:indexed"


def person(user_id: str = "U1", workspace: str | None = None) -> UserKey:
    return UserKey(platform="slack", workspace_id=workspace or f"T{uuid.uuid4().hex[:10]}", user_id=user_id)


async def stats(pool: asyncpg.Pool, user: UserKey) -> tuple[int, int] | None:
    row = await pool.fetchrow(
        "SELECT memories, text_length FROM memory_scope_stats WHERE platform = $1 AND workspace_id = $2"
        " AND user_id = $3",
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    return None if row is None else (row["memories"], row["text_length"])


async def counted(pool: asyncpg.Pool, user: UserKey) -> tuple[int, int] | None:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, sum(length(tsv)) AS len FROM memories WHERE platform = $1 AND workspace_id = $2"
        " AND user_id = $3",
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    return (row["n"], row["len"]) if row["n"] else None


async def insert(pool: asyncpg.Pool, user: UserKey, texts: list[str]) -> None:
    await pool.executemany(
        "INSERT INTO memories (platform, workspace_id, user_id, content, content_hash) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT DO NOTHING",
        [(user.platform, user.workspace_id, user.user_id, t, store.content_hash(t)) for t in texts],
    )


async def test_scope_statistics_follow_every_insert_copy_update_and_delete(pool: asyncpg.Pool) -> None:
    user, colleague = person(), person("U2")
    await insert(pool, user, ["the red kite flew", "kites again", "nothing"])
    async with pool.acquire() as conn:
        await store.copy_memories(
            conn,
            [
                store.copy_record(u, f"copied words {i} for {u.user_id}", np.ones(3, np.float32), MODEL)
                for i in range(4)
                for u in (user, colleague)
            ],
        )
    assert await stats(pool, user) == await counted(pool, user)
    assert await stats(pool, colleague) == await counted(pool, colleague)

    await pool.execute(
        "UPDATE memories SET content = content || ' with many more words added here' WHERE workspace_id = $1"
        " AND user_id = $2 AND content LIKE 'copied%'",
        user.workspace_id,
        user.user_id,
    )
    await pool.execute("UPDATE memories SET embedding_model = 'other' WHERE workspace_id = $1", user.workspace_id)
    await pool.execute(
        "DELETE FROM memories WHERE workspace_id = $1 AND user_id = $2 AND content LIKE 'kites%'",
        user.workspace_id,
        user.user_id,
    )
    assert await stats(pool, user) == await counted(pool, user)
    assert await stats(pool, colleague) == await counted(pool, colleague)


async def test_a_scope_without_memories_keeps_no_statistics(pool: asyncpg.Pool) -> None:
    user = person()
    await insert(pool, user, ["one thing", "another thing"])
    await pool.execute("DELETE FROM memories WHERE workspace_id = $1", user.workspace_id)
    assert await stats(pool, user) is None


async def text_hits(pool: asyncpg.Pool, user: UserKey, words: str) -> set[int]:
    async with person_scope(pool, user) as conn:
        rows = await conn.fetch("SELECT id FROM memory_text_hits(tsvector_to_array(to_tsvector('english', $1)))", words)
    return {r["id"] for r in rows}


async def owners_matches(pool: asyncpg.Pool, user: UserKey, words: str) -> set[int]:
    rows = await pool.fetch(
        "SELECT id FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3"
        " AND tsvector_to_array(tsv) && tsvector_to_array(to_tsvector('english', $4))",
        user.platform,
        user.workspace_id,
        user.user_id,
        words,
    )
    return {r["id"] for r in rows}


@DB
@given(
    tenants=tenant_sets(min_size=2, max_size=5),
    texts=st.lists(memory_texts, min_size=1, max_size=4),
    query=memory_texts,
)
async def test_text_hits_are_exactly_the_callers_matching_rows(
    pool: asyncpg.Pool, tenants: list[UserKey], texts: list[str], query: str
) -> None:
    run = uuid.uuid4().hex[:8]
    tenants = [UserKey(platform=t.platform, workspace_id=f"{run}:{t.workspace_id}", user_id=t.user_id) for t in tenants]
    for t in tenants:
        await insert(pool, t, [*texts, query])  # every tenant holds the same words
    for t in tenants:
        assert await text_hits(pool, t, query) == await owners_matches(pool, t, query)


async def test_text_hits_without_a_tenant_are_empty(pool: asyncpg.Pool) -> None:
    user = person()
    await insert(pool, user, ["shared secret words"])
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE parley_app")
        assert await conn.fetch("SELECT id FROM memory_text_hits(ARRAY['secret'])") == []


async def test_only_the_app_role_may_call_text_hits(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE parley_maintenance")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT id FROM memory_text_hits(ARRAY['secret'])")


async def test_the_lexeme_index_takes_new_words_into_its_tree_without_a_pending_list(pool: asyncpg.Pool) -> None:
    """Text hits would read GIN's whole pending list on every search (migration 0029)."""
    options = await pool.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'memories_scoped_lexemes'")
    assert "fastupdate=off" in options


async def test_the_indexed_search_scores_words_as_the_exact_search_does(pool: asyncpg.Pool) -> None:
    user, colleague = person(), person("U2")
    rng = np.random.default_rng(3)
    words = ["kite", "river", "bread", "violin", "garden", "marathon", "coffee", "berlin"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 6)))) + f" number {i}" for i in range(300)]
    async with pool.acquire() as conn:
        for owner, theirs in ((user, texts), (colleague, texts[:200])):  # the colleague's words: never counted
            vectors = rng.standard_normal((len(theirs), 16)).astype(np.float32)
            await store.copy_memories(
                conn, [store.copy_record(owner, t, v, MODEL) for t, v in zip(theirs, vectors, strict=True)]
            )
    query, vector = "kite in the garden", rng.standard_normal(16).astype(np.float32)
    async with person_scope(pool, user) as conn:
        exact = await search.search(conn, user, query=query, vector=vector, model=MODEL, pool_size=400, recent=0)
    assert await maintenance.ensure_scope_indexes(pool, model=MODEL, dimensions=16, min_rows=300)
    try:
        async with person_scope(pool, user) as conn:
            indexed = await search.search(conn, user, query=query, vector=vector, model=MODEL, pool_size=20, recent=0)
    finally:
        await maintenance.drop_scope_indexes(pool, user)
    assert (exact.path, indexed.path) == ("exact", "hnsw")
    text_scores = {c.id: c.signals.text_score for c in exact.candidates}
    best_by_text = sorted(text_scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:20]
    scored = {c.id: c.signals.text_score for c in indexed.candidates if c.signals.text_score > 0}
    assert scored == pytest.approx(dict(best_by_text))


async def test_the_indexed_search_measures_similarity_from_its_candidates_mean(pool: asyncpg.Pool) -> None:
    """The centred cosine (docs/memory.md, Recall), with the mean over the candidates it returns; a text hit
    whose vector is of another model has no similarity and stays out of the mean."""
    user = person()
    rng = np.random.default_rng(5)
    model = "test:centred"
    models = [model if i % 5 else "test:other" for i in range(300)]
    texts = [f"kite number {i}" if i % 7 == 0 else f"river number {i}" for i in range(300)]
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    async with pool.acquire() as conn:
        await store.copy_memories(
            conn, [store.copy_record(user, t, v, m) for t, v, m in zip(texts, vectors, models, strict=True)]
        )
    assert await maintenance.ensure_scope_indexes(pool, model=model, dimensions=16, min_rows=240)
    query = rng.standard_normal(16).astype(np.float32)
    try:
        async with person_scope(pool, user) as conn:
            found = await search.search(conn, user, query="kite", vector=query, model=model, pool_size=20, recent=0)
    finally:
        await maintenance.drop_scope_indexes(pool, user)
    by_content = {t: (v, m) for t, v, m in zip(texts, vectors, models, strict=True)}
    theirs = {c.id: by_content[c.content] for c in found.candidates}
    mean = np.mean([v.astype(np.float64) for v, m in theirs.values() if m == model], axis=0)
    assert found.path == "hnsw" and any(m != model for _, m in theirs.values())
    for c in found.candidates:
        vector, kind = theirs[c.id]
        if kind != model:
            assert c.signals.similarity is None
        else:
            want = centred_similarity(vector, query, mean.astype(np.float32).astype(np.float64))
            assert c.signals.similarity == pytest.approx(want, abs=1e-5)  # float4 vectors in Postgres
