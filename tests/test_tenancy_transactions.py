"""Fewer transactions per turn (issue #22): a scope opens in one round trip, scopes group into one
transaction, and a released connection costs no reset."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery
from hypothesis import given
from hypothesis import strategies as st

from core.memory.scope import fact_scope
from core.models import UserKey, WorkspaceKey
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from core.store.tenancy import begin_sql, one_transaction, scoped, tenant

XACT = "SELECT pg_current_xact_id()::text"
SETTINGS = "SELECT current_setting('parley.workspace_id') || '|' || current_setting('parley.user_id')"
CHANNEL = "SELECT current_setting('parley.channel_id', true)"


@pytest.fixture(scope="module")
async def app_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool that logs in as `parley_app`, the way `parley serve` does."""
    pool = await create_pool(await ensure_app_login(pg_uri), max_size=4)
    yield pool
    await pool.close()


def workspace() -> WorkspaceKey:
    return WorkspaceKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:8]}")


def person(ws: WorkspaceKey, user_id: str) -> UserKey:
    return UserKey(platform=ws.platform, workspace_id=ws.workspace_id, user_id=user_id)


TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
"""Anything Postgres can store as text (no NUL, no lone surrogates)."""


@given(TEXT, TEXT, TEXT)
async def test_a_tenant_named_in_the_begin_script_arrives_unchanged_whatever_it_holds(
    pool: asyncpg.Pool, workspace_id: str, user_id: str, channel_id: str
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(begin_sql(("slack", workspace_id, user_id, channel_id)))
        try:
            assert await conn.fetchval(SETTINGS) == f"{workspace_id}|{user_id}"
            assert await conn.fetchval(CHANNEL) == channel_id
            assert await conn.fetchval("SELECT current_user") == "parley_app"
        finally:
            await conn.execute("ROLLBACK")


async def test_scopes_inside_one_transaction_share_it_and_each_sees_its_own_tenant(app_pool: asyncpg.Pool) -> None:
    ws = workspace()
    keys = [ws, person(ws, "U1"), person(ws, "U2"), ws]
    async with one_transaction(app_pool, ws):
        seen = await asyncio.gather(*(scoped(app_pool, k).fetchrow(f"{XACT} AS x, ({SETTINGS}) AS s") for k in keys))
    assert len({row["x"] for row in seen if row}) == 1
    assert [row["s"] for row in seen if row] == [
        f"{ws.workspace_id}|", f"{ws.workspace_id}|U1", f"{ws.workspace_id}|U2", f"{ws.workspace_id}|"
    ]


async def test_a_channel_named_by_a_fact_scope_is_forgotten_by_the_next_scope_of_the_transaction(
    app_pool: asyncpg.Pool,
) -> None:
    ws = workspace()
    async with one_transaction(app_pool, ws):
        async with fact_scope(app_pool, person(ws, "U1"), "C1") as conn:
            assert await conn.fetchval(CHANNEL) == "C1"
        assert await scoped(app_pool, person(ws, "U1")).fetchval(CHANNEL) == ""


async def test_scopes_outside_a_group_take_a_transaction_each(app_pool: asyncpg.Pool) -> None:
    ws = workspace()
    first = await scoped(app_pool, ws).fetchval(XACT)
    assert await scoped(app_pool, ws).fetchval(XACT) != first


async def test_a_persons_rows_stay_hidden_from_the_next_person_in_the_same_transaction(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    ws = workspace()
    await pool.execute(
        "INSERT INTO profiles (platform, workspace_id, user_id, display_name) VALUES ($1, $2, 'U1', 'Ann')",
        ws.platform,
        ws.workspace_id,
    )
    count = "SELECT count(*) FROM profiles"
    async with one_transaction(app_pool, ws):
        assert await scoped(app_pool, person(ws, "U1")).fetchval(count) == 1
        assert await scoped(app_pool, person(ws, "U2")).fetchval(count) == 0


async def test_a_scope_nested_in_another_in_a_group_leaves_the_outer_scope_its_own_tenant(
    app_pool: asyncpg.Pool,
) -> None:
    ws = workspace()
    async with one_transaction(app_pool, ws), tenant(app_pool, person(ws, "U1")) as conn:
        assert await scoped(app_pool, ws).fetchval(SETTINGS) == f"{ws.workspace_id}|"
        assert await conn.fetchval(SETTINGS) == f"{ws.workspace_id}|U1"


async def test_a_failure_inside_a_group_rolls_back_every_statement_of_it(app_pool: asyncpg.Pool) -> None:
    ws = workspace()
    insert = "INSERT INTO workspace_settings (platform, workspace_id, key, value) VALUES ($1, $2, 'k', '1')"
    with pytest.raises(asyncpg.UniqueViolationError):
        async with one_transaction(app_pool, ws):
            await scoped(app_pool, ws).execute(insert, ws.platform, ws.workspace_id)
            await scoped(app_pool, ws).execute(insert, ws.platform, ws.workspace_id)
    assert await scoped(app_pool, ws).fetchval("SELECT count(*) FROM workspace_settings") == 0


async def test_a_task_still_running_after_its_group_takes_a_transaction_of_its_own(app_pool: asyncpg.Pool) -> None:
    ws = workspace()
    go = asyncio.Event()

    async def later() -> str:
        await go.wait()
        return str(await scoped(app_pool, ws).fetchval(XACT))

    async with one_transaction(app_pool, ws):
        inside = await scoped(app_pool, ws).fetchval(XACT)
        task = asyncio.create_task(later())
    go.set()
    assert await task != inside


async def test_a_group_cancelled_mid_read_leaves_the_pool_serving(app_pool: asyncpg.Pool) -> None:
    ws = workspace()

    async def read() -> None:
        async with one_transaction(app_pool, ws):
            await asyncio.gather(*(scoped(app_pool, ws).fetchval("SELECT pg_sleep(5)") for _ in range(2)))

    task = asyncio.create_task(read())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(scoped(app_pool, ws).fetchval("SELECT 1"), 5) == 1


async def test_a_released_connection_keeps_no_tenant_and_costs_no_reset(pg_uri: str) -> None:
    pool = await create_pool(pg_uri, max_size=1)
    sent: list[str] = []
    try:
        async with tenant(pool, workspace()):
            pass
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: sent.append(q.query))
            assert await conn.fetchval("SELECT current_setting('parley.workspace_id', true)") in ("", None)
            assert await conn.fetchval("SELECT current_user") != "parley_app"
        async with pool.acquire() as conn:
            assert len(sent) == 2  # nothing was sent on release
    finally:
        await pool.close()


async def test_a_fact_scope_in_a_group_names_its_channel_in_the_one_statement_that_switches_scope(
    app_pool: asyncpg.Pool,
) -> None:
    ws = workspace()
    sent: list[str] = []

    def count(query: LoggedQuery) -> None:
        sent.append(query.query)

    async with one_transaction(app_pool, ws):
        async with tenant(app_pool, ws) as conn:
            conn.add_query_logger(count)
        try:
            async with fact_scope(app_pool, person(ws, "U1"), "C1") as facts:
                assert await facts.fetchval(CHANNEL) == "C1"
            assert await scoped(app_pool, ws).fetchval(CHANNEL) == ""
        finally:
            conn.remove_query_logger(count)
    assert len(sent) == 4, sent  # switch, read; switch back, read
