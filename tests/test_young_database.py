"""A young database is served on plans made with statistics (issue #22, migration 0025): before its
tables were first analyzed, the history read of one thread filtered every other thread's rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery

from core.memory.history import thread_messages
from core.models import ConversationKey
from core.store.instance import Instance
from core.store.migrations import migrate_sync
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from core.store.tenancy import begin_sql

pytestmark = pytest.mark.timeout(120)
THREADS = 300
MESSAGES_PER_THREAD = 2


@pytest.fixture
async def fresh_uri(pg_uri: str, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A database of its own, just migrated: no table has ever been analyzed."""
    name = f"young_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE DATABASE {name}")
    base, _, query = pg_uri.partition("?")
    uri = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        await asyncio.to_thread(migrate_sync, uri)
        yield uri
    finally:
        await pool.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def app_pool(fresh_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """One connection as `parley_app`, so every statement of a test runs on it."""
    pool = await create_pool(await ensure_app_login(fresh_uri), max_size=1)
    yield pool
    await pool.close()


CONVERSATION = ConversationKey(platform="api", workspace_id="W", channel_id="C", thread_id="t7")


async def _fill(pool: asyncpg.Pool) -> None:
    """Many short threads in one channel of one workspace, by one person (the API door's shape)."""
    async with pool.acquire() as conn:
        await conn.execute(begin_sql(("api", "W", "", "")))
        await conn.executemany(
            """INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content)
               VALUES ('api', 'W', 'C', $1, 'U', $2, 'hello there')""",
            [(f"t{i}", role) for i in range(THREADS) for role in ("user", "assistant")[:MESSAGES_PER_THREAD]],
        )
        await conn.execute("COMMIT")
        # The counters autovacuum and migration 0025 read are flushed when a session goes idle.
        await conn.execute("SELECT pg_stat_force_next_flush()")


async def _history_plan(pool: asyncpg.Pool) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the statement `thread_messages` sends, as the app runs it."""
    sent: list[LoggedQuery] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(sent.append)
    rows = await thread_messages(pool, CONVERSATION, limit=7)
    assert len(rows) == MESSAGES_PER_THREAD
    [query] = [q for q in sent if "FROM messages" in q.query]
    async with pool.acquire() as conn:
        conn.remove_query_logger(sent.append)
        await conn.execute(begin_sql(("api", "W", "", "")))
        try:
            for _ in range(6):  # past the plan cache's custom plans, as a pooled connection would be
                plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query.query}", *query.args)
        finally:
            await conn.execute("ROLLBACK")
    found: dict[str, Any] = json.loads(plan)[0]["Plan"]
    return found


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def test_a_young_table_is_analyzed_once_it_has_rows_and_again_only_when_it_has_doubled(
    fresh_uri: str, app_pool: asyncpg.Pool
) -> None:
    await _fill(app_pool)
    async with app_pool.acquire() as conn:
        assert await conn.fetchval("SELECT parley_analyze_grown()") >= 1
        assert await conn.fetchval("SELECT parley_analyze_grown()") == 0
    assert await _messages_analyzed(fresh_uri)


async def test_a_young_databases_history_read_uses_the_thread_index_and_reads_only_its_threads_rows(
    app_pool: asyncpg.Pool,
) -> None:
    await _fill(app_pool)
    async with app_pool.acquire() as conn:
        await conn.fetchval("SELECT parley_analyze_grown()")
    nodes = _nodes(await _history_plan(app_pool))
    assert [n["Index Name"] for n in nodes if "Index Name" in n] == ["messages_thread"]
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) == 0


async def test_a_serving_instance_analyzes_a_young_table_within_seconds(
    fresh_uri: str, app_pool: asyncpg.Pool
) -> None:
    instance = await Instance(await ensure_app_login(fresh_uri), analyze_every_s=0.2).start()
    try:
        await _fill(app_pool)
        for _ in range(100):
            if await _messages_analyzed(fresh_uri):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the instance never analyzed the young messages table")
    finally:
        await instance.close()


async def _messages_analyzed(uri: str) -> bool:
    owner = await asyncpg.connect(uri)
    try:
        return bool(
            await owner.fetchval("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'messages'")
        )
    finally:
        await owner.close()
