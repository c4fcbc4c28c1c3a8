"""An ordinary person's recall is planned once per connection (migration 0035): its exact scan is static SQL
with a generic plan, so the partial HNSW indexes on `memories` (one per large scope) no longer cost every
recall a planning that opens each of them; and it returns what main's dynamic exact scan (0033) returned."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
from pgvector.asyncpg import register_vector

from benchmarks import memory_scale
from core.memory import maintenance, search, store
from core.models import UserKey
from core.store.pool import create_pool

MODEL = "test:recall-plan"


def person(workspace: str | None = None, user_id: str = "U1") -> UserKey:
    return UserKey(platform="slack", workspace_id=workspace or f"T{uuid.uuid4().hex[:10]}", user_id=user_id)


async def fill(pool: asyncpg.Pool, user: UserKey, n: int, *, seed: int) -> np.ndarray:
    """`n` memories in four threads, a few without an embedding, said a minute apart."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 16)).astype(np.float32)
    said = datetime(2026, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn:
        for i, v in enumerate(vectors):
            await store.insert_memory(
                conn,
                user,
                content=f"kite flight number {i}" if i % 3 else f"river walk number {i}",
                embedding=None if i % 7 == 0 else v,
                model=None if i % 7 == 0 else MODEL,
                thread_id=f"thread-{i % 4}",
                said_at=said + timedelta(minutes=i),
            )
    return vectors


class Plannings:
    """The statements over `memories` that the connection's backend plans while it is watched: with
    `debug_print_plan`, each planned statement's tree comes to the client as a LOG message, naming the
    tables it reads by their oids."""

    def __init__(self, memories_oid: int) -> None:
        self.needle = f":relid {memories_oid} "
        self.count = 0

    def __call__(self, conn: asyncpg.Connection, message: asyncpg.PostgresLogMessage) -> None:
        self.count += self.needle in (message.detail or "")


@pytest.fixture
async def watched(pg_uri: str) -> AsyncIterator[tuple[asyncpg.Connection, Plannings]]:
    """A new backend, none of the recall's statements planned yet, that reports every plan it makes."""
    conn = await asyncpg.connect(pg_uri)
    await register_vector(conn)
    plannings = Plannings(await conn.fetchval("SELECT 'memories'::regclass::oid"))
    conn.add_log_listener(plannings)
    await conn.execute("SET debug_print_plan = on; SET client_min_messages = log")
    yield conn, plannings
    await conn.close()


async def test_ordinary_recalls_after_the_first_plan_nothing_whatever_the_tables_partial_indexes(
    pool: asyncpg.Pool, watched: tuple[asyncpg.Connection, Plannings]
) -> None:
    """Planning the exact scan opened every index of `memories` and tested each partial one's predicate, on
    every call (ninth round: about 23 us of CPU per scope index per recall). Planned once per connection, the
    number of scope indexes no longer touches an ordinary recall."""
    conn, plannings = watched
    heavy, ordinary = person(), [person(), person()]
    vectors = await fill(pool, heavy, 60, seed=1)
    for i, user in enumerate(ordinary):
        await fill(pool, user, 20, seed=2 + i)
    assert await maintenance.ensure_scope_indexes(pool, model=MODEL, dimensions=16, min_rows=50)
    try:
        for round_ in range(3):
            before = plannings.count
            for user in ordinary:
                found = await search.search(
                    conn, user, query="kite walk", vector=vectors[round_], model=MODEL, pool_size=10, recent=2
                )
                assert found.path == "exact" and found.candidates
            assert (round_, plannings.count - before) == (round_, 1 if round_ == 0 else 0)
    finally:
        await maintenance.drop_scope_indexes(pool, heavy)


@pytest.mark.parametrize(
    ("words", "with_vector", "pool_size", "recent"),
    [("kite walk", True, 10, 0), ("", True, 5, 3), ("river", False, 10, 4), ("", False, 4, 0)],
)
async def test_the_exact_scan_returns_what_mains_dynamic_exact_scan_returned(
    pg_uri: str, pool: asyncpg.Pool, words: str, with_vector: bool, pool_size: int, recent: int
) -> None:
    """Same candidates, thread neighbours and signals as migration 0033's recall, installed beside this
    tree's as the benchmark installs it: with and without words or a vector, and with the newest."""
    user = person()
    vectors = await fill(pool, user, 80, seed=4)
    await memory_scale._install_baseline(pg_uri)
    main_pool = await create_pool(
        memory_scale._with_search_path(pg_uri, f"{memory_scale.BASELINE_SCHEMA}, public"), max_size=1
    )
    found: dict[str, search.SearchResult] = {}
    try:
        for label, p in (("this_tree", pool), ("main", main_pool)):
            async with p.acquire() as conn:
                for _ in range(2):  # the second call runs the plan the first one kept
                    found[label] = await search.search(
                        conn,
                        user,
                        query=words,
                        vector=vectors[5] if with_vector else None,
                        model=MODEL,
                        pool_size=pool_size,
                        recent=recent,
                    )
    finally:
        await main_pool.close()
        await pool.execute(f"DROP SCHEMA {memory_scale.BASELINE_SCHEMA} CASCADE")
    assert found["this_tree"].path == found["main"].path == "exact"
    assert sorted(found["this_tree"].candidates, key=lambda c: c.id) == sorted(
        found["main"].candidates, key=lambda c: c.id
    )
