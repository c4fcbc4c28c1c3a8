"""A recall is one statement (migration 0030's `memory_recall`): it names the person's tenant itself,
walks the scope's own index when there is one, and leaves its connection as it found it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import numpy as np
import pytest
from asyncpg.connection import LoggedQuery
from pgvector.asyncpg import register_vector
from pydantic_ai.embeddings import Embedder

from core.memory import maintenance, search, store
from core.memory.embedding_backend import BatchingEmbeddingModel
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from core.store.tenancy import one_transaction, tenant
from tests.strategies import HashingEmbeddingModel

TENANT = (
    "SELECT current_user || '|' || current_setting('parley.workspace_id', true) || '|'"
    " || current_setting('parley.user_id', true)"
)


COUNTERS = """
SELECT pg_stat_get_xact_numscans($1::regclass),
       (SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions WHERE funcname = 'memory_text_hits')
"""
"""The walks of an index and the calls of the text route so far (this backend's counts not yet reported)."""

WORKER_BUFFER_HITS = "SELECT coalesce(sum(hits), 0)::bigint FROM pg_stat_io WHERE backend_type = 'background worker'"
"""Buffers read by background workers, parallel query's included: each reports its reads as it exits, and a
statement that launched workers ends only after they have."""


@pytest.fixture(scope="module")
async def app_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """One connection, logged in as `parley_app` as `parley serve` is: every recall takes the same one."""
    pool = await create_pool(await ensure_app_login(pg_uri), max_size=1)
    yield pool
    await pool.close()


@pytest.fixture
async def service(app_pool: asyncpg.Pool) -> AsyncIterator[MemoryService]:
    svc = MemoryService(app_pool, Embedder(BatchingEmbeddingModel(HashingEmbeddingModel(dims=16))), MemoryConfig())
    await svc.start(reembed_in_background=False)
    yield svc
    await svc.aclose()


def person(workspace: str | None = None) -> UserKey:
    return UserKey(platform="slack", workspace_id=workspace or f"T{uuid.uuid4().hex[:10]}", user_id="U1")


async def fill(pool: asyncpg.Pool, user: UserKey, model: str, n: int) -> np.ndarray:
    vectors = np.random.default_rng(len(user.workspace_id) + n).standard_normal((n, 16)).astype(np.float32)
    async with pool.acquire() as conn:
        await store.copy_memories(
            conn, [store.copy_record(user, f"kite flight number {i}", v, model) for i, v in enumerate(vectors)]
        )
    return vectors


class Sent:
    """The statements a connection sends while it is watched."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, query: LoggedQuery) -> None:
        self.queries.append(query.query)


async def statements_of_a_recall(pool: asyncpg.Pool, service: MemoryService, user: UserKey) -> list[str]:
    """What a recall outside any transaction sends (the pool has one connection: the recall takes it)."""
    sent = Sent()
    async with pool.acquire() as conn:
        conn.add_query_logger(sent)
    try:
        assert await service.recall(user, "where did the kite fly", k=5)
    finally:
        async with pool.acquire() as conn:
            conn.remove_query_logger(sent)
    return sent.queries


async def test_an_ordinary_persons_recall_is_one_statement_without_a_transaction(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person()
    await fill(pool, user, service.model, 30)
    sent = await statements_of_a_recall(app_pool, service, user)
    assert len(sent) == 1 and "memory_recall" in sent[0], sent


async def test_a_heavy_persons_recall_through_its_own_index_is_one_statement(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person()
    await fill(pool, user, service.model, 300)
    assert await maintenance.ensure_scope_indexes(pool, model=service.model, dimensions=16, min_rows=300)
    try:
        sent = await statements_of_a_recall(app_pool, service, user)
    finally:
        await maintenance.drop_scope_indexes(pool, user)
    assert len(sent) == 1 and "memory_recall" in sent[0], sent


async def test_a_recall_leaves_its_connection_without_a_tenant(app_pool: asyncpg.Pool, service: MemoryService) -> None:
    await service.recall(person(), "kite", k=5)
    async with app_pool.acquire() as conn:
        assert await conn.fetchval(TENANT) == "parley_app||"
        assert await conn.fetchval("SELECT current_setting('hnsw.ef_search', true)") in (None, "", "40")


async def test_a_recall_inside_a_turns_transaction_shares_it_and_leaves_the_scope_it_found(
    app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person()
    colleague = UserKey(platform=user.platform, workspace_id=user.workspace_id, user_id="U2")
    sent = Sent()
    async with one_transaction(app_pool, user.workspace):
        async with tenant(app_pool, colleague) as conn:
            xact = await conn.fetchval("SELECT pg_current_xact_id()::text")
            conn.add_query_logger(sent)
        try:
            await service.recall(user, "kite", k=5)
        finally:
            conn.remove_query_logger(sent)
        async with tenant(app_pool, colleague) as conn:  # no switch is due: the recall kept the colleague's scope
            assert await conn.fetchval("SELECT pg_current_xact_id()::text") == xact
            assert await conn.fetchval(TENANT) == f"parley_app|{user.workspace_id}|U2"
    sent = sent.queries
    assert len(sent) == 1, sent


async def test_a_recall_that_walks_its_index_inside_a_transaction_leaves_the_scope_it_found(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    """The walk returns early, without the exact scan: it too puts the caller's tenant back (migration 0037)."""
    user = person()
    colleague = UserKey(platform=user.platform, workspace_id=user.workspace_id, user_id="U2")
    vectors = await fill(pool, user, service.model, 300)
    assert await maintenance.ensure_scope_indexes(pool, model=service.model, dimensions=16, min_rows=300)
    try:
        async with tenant(app_pool, colleague) as conn:
            found = await search.search(
                conn, user, query="kite flight", vector=vectors[0], model=service.model, pool_size=10, recent=0
            )
            assert found.path == "hnsw"
            assert await conn.fetchval(TENANT) == f"parley_app|{user.workspace_id}|U2"
    finally:
        await maintenance.drop_scope_indexes(pool, user)


async def test_the_recall_walks_the_scopes_own_index_and_skips_the_text_route_without_words(
    pool: asyncpg.Pool,
) -> None:
    """The plan inside the function, read from the statistics of the transaction that ran it: the walk is
    planned for the person's keys (which prove the partial index's predicate), and the rest's one-time
    gate skips the full-text route for a query without words."""
    user, model = person(), "test:recall-plan"
    vectors = await fill(pool, user, model, 300)
    [index] = await maintenance.ensure_scope_indexes(pool, model=model, dimensions=16, min_rows=300)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL track_functions = 'all'")
            for words, text_route_calls in (("", 0), ("kite", 1)):
                before = await conn.fetchrow(COUNTERS, index)
                found = await search.search(
                    conn, user, query=words, vector=vectors[0], model=model, pool_size=10, recent=0
                )
                after = await conn.fetchrow(COUNTERS, index)
                assert (found.path, after[0] - before[0], after[1] - before[1]) == ("hnsw", 1, text_route_calls)
                assert "kite flight number 0" in {c.content for c in found.candidates}  # the query is its vector
    finally:
        await maintenance.drop_scope_indexes(pool, user)


async def test_an_indexed_scope_is_walked_even_when_the_pool_asked_is_above_its_estimated_size(
    pool: asyncpg.Pool,
) -> None:
    """Alone in its workspace, a scope is estimated at a few rows; a LIMIT above that estimate made the
    planner sort the whole scope by the B-tree instead of walking its index (migration 0033)."""
    user, model = person(), "test:recall-walk-not-sort"
    vectors = await fill(pool, user, model, 300)
    [index] = await maintenance.ensure_scope_indexes(pool, model=model, dimensions=16, min_rows=300)
    try:
        async with pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval("SELECT pg_stat_get_xact_numscans($1::regclass)", index)
            found = await search.search(conn, user, query="", vector=vectors[0], model=model, pool_size=250, recent=0)
            after = await conn.fetchval("SELECT pg_stat_get_xact_numscans($1::regclass)", index)
        assert (found.path, len(found.candidates), after - before) == ("hnsw", 250, 1)
    finally:
        await maintenance.drop_scope_indexes(pool, user)


async def test_heavy_people_recalled_on_one_connection_each_get_only_their_own(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    """The statement after the walk is planned once per connection (migration 0031) and then serves
    everyone: a plan kept from one person's recall must not answer another's."""
    workspace = f"T{uuid.uuid4().hex[:10]}"
    people = [person(workspace), UserKey(platform="slack", workspace_id=workspace, user_id="U2")]
    vectors = [await fill(pool, user, service.model, 300) for user in people]
    assert len(await maintenance.ensure_scope_indexes(pool, model=service.model, dimensions=16, min_rows=300)) >= 2
    try:
        for _ in range(3):  # beyond the first calls, whatever a plan cache does with them
            for user, theirs in zip(people, vectors, strict=True):
                async with app_pool.acquire() as conn:
                    found = await search.search(
                        conn, user, query="kite flight", vector=theirs[0], model=service.model, pool_size=10, recent=0
                    )
                assert found.path == "hnsw" and len(found.candidates) >= 10
                assert {c.id for c in found.candidates} <= await ids_of(pool, user)
    finally:
        for user in people:
            await maintenance.drop_scope_indexes(pool, user)


async def ids_of(pool: asyncpg.Pool, user: UserKey) -> set[int]:
    rows = await pool.fetch(
        "SELECT id FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3",
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    return {r["id"] for r in rows}


async def test_a_recall_runs_with_its_callers_rights(pool: asyncpg.Pool) -> None:
    """Row-level security holds inside it: a SECURITY DEFINER function would read as the table's owner."""
    assert await pool.fetchval("SELECT prosecdef FROM pg_proc WHERE proname = 'memory_recall'") is False


async def test_a_heavy_persons_recall_with_words_launches_no_parallel_workers(pg_uri: str, pool: asyncpg.Pool) -> None:
    """Launching workers and waiting for them cost a recall 6-8 ms of wall time on two cores, more than any of
    its small scans can gain (migration 0032). The caller's session here makes parallel plans free, as the
    text route's generic estimate (1 % of the table) did on a large table: the recall still plans serial."""
    user, model = person(), "test:recall-serial"
    vectors = await fill(pool, user, model, 300)
    assert await maintenance.ensure_scope_indexes(pool, model=model, dimensions=16, min_rows=300)
    conn = await asyncpg.connect(pg_uri)  # a new backend: none of the recall's statements planned yet
    try:
        await register_vector(conn)
        for cost in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
            "min_parallel_index_scan_size",
        ):
            await conn.execute(f"SET {cost} = 0")
        before = await pool.fetchval(WORKER_BUFFER_HITS)
        for vector in vectors[:3]:
            found = await search.search(
                conn, user, query="kite flight", vector=vector, model=model, pool_size=10, recent=0
            )
            assert found.path == "hnsw" and len(found.candidates) >= 10
        assert await pool.fetchval(WORKER_BUFFER_HITS) == before
    finally:
        await conn.close()
        await maintenance.drop_scope_indexes(pool, user)
