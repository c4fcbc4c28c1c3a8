"""benchmarks/memory_scale.py: its baseline is main's recall (migration 0037's, with its settings), installed
beside this tree's from the migration files, and reached through the same `core.memory.search.search`."""

from __future__ import annotations

import argparse
import random
import uuid

import asyncpg
import numpy as np

from benchmarks import memory_scale
from core.memory import maintenance, search, store
from core.models import UserKey
from core.store.pool import create_pool

MODEL = "test:memory-scale"
CALLS = """
SELECT n.nspname, coalesce(sum(f.calls), 0)::bigint
FROM pg_stat_xact_user_functions f JOIN pg_namespace n ON n.nspname = f.schemaname
WHERE f.funcname = 'memory_recall' GROUP BY n.nspname
"""
"""The calls of each schema's memory_recall in this transaction so far."""


async def test_the_baseline_pool_recalls_through_mains_function_and_ranks_as_this_tree(
    pg_uri: str, pool: asyncpg.Pool
) -> None:
    user = UserKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:10]}", user_id="U1")
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    texts = [f"kite flight number {i}" if i % 3 else f"river walk number {i}" for i in range(300)]
    async with pool.acquire() as conn:
        await store.copy_memories(
            conn, [store.copy_record(user, t, v, MODEL) for t, v in zip(texts, vectors, strict=True)]
        )
    await memory_scale._install_baseline(pg_uri)
    main_pool = await create_pool(
        memory_scale._with_search_path(pg_uri, f"{memory_scale.BASELINE_SCHEMA}, public"), max_size=1
    )
    assert await maintenance.ensure_scope_indexes(pool, model=MODEL, dimensions=16, min_rows=300)
    found: dict[str, search.SearchResult] = {}
    try:
        for label, p in (("this_tree", pool), ("main", main_pool)):
            async with p.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL track_functions = 'all'")
                found[label] = await search.search(
                    conn, user, query="kite walk", vector=vectors[0], model=MODEL, pool_size=20, recent=0
                )
                calls = dict(await conn.fetch(CALLS))
            want = memory_scale.BASELINE_SCHEMA if label == "main" else "public"
            assert calls == {want: 1}, (label, calls)
    finally:
        await maintenance.drop_scope_indexes(pool, user)
        await main_pool.close()
        await pool.execute(f"DROP SCHEMA {memory_scale.BASELINE_SCHEMA} CASCADE")  # main's recall: the benchmark's only
    assert found["this_tree"].path == found["main"].path == "hnsw"
    assert memory_scale._same_top10(found["this_tree"], found["main"])


async def test_the_medium_scope_is_recalled_by_the_exact_scan_and_by_its_own_index_query_by_query(
    pool: asyncpg.Pool,
) -> None:
    args = argparse.Namespace(medium_scope=300, dims=16, queries=2)
    rng = np.random.default_rng(3)
    result = await memory_scale._medium_scope(pool, rng, ["kite", "river"], random.Random(3), args)
    person = UserKey(platform="bench", workspace_id="W-medium", user_id="U-medium")
    try:
        for kind in ("related", "new_topic", "related_with_words_turn_pool", "new_topic_with_words_turn_pool"):
            assert set(result[kind]) == {"exact_scan", "own_index"}
            assert result[kind]["exact_scan"]["recall_at_10"] == 1.0  # the exact scan is the truth
        assert (
            await pool.fetchval("SELECT count(*) FROM memory_scope_indexes WHERE workspace_id = 'W-medium'") == 1
        )  # left as maintenance leaves it
    finally:
        await maintenance.drop_scope_indexes(pool, person)
        await pool.execute("DELETE FROM memories WHERE workspace_id = 'W-medium'")
