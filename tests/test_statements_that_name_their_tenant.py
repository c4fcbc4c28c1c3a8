"""The functions that name their tenant themselves (memory_recall, parley_claim_turn, parley_open_session,
parley_record_delivery_messages; 0038's parley_turn_context, parley_start_turn and parley_finish_turn; 0039's
parley_authenticate_session, here with an unknown key: tests/test_api_key_session.py opens a session inside a
caller's transaction) put the caller's tenant back as they return, in their bodies since migration 0037: a caller
inside a transaction keeps the scope it had, and one whose call fails too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.store.roles import ensure_app_login

CALLS = {
    "memory_recall": "SELECT count(*) FROM memory_recall('console', $1, 'U1', 'm', NULL, 'kite', 'kite', 10, 0, 40,"
                     " 1.2, 0.75, 0.5)",
    "parley_claim_turn": "SELECT count(*) FROM parley_claim_turn('console', $1, gen_random_uuid()::text, NULL,"
                         " ARRAY[]::text[], ARRAY[]::integer[], 60, 'C1', 'U1', 'T1', 5)",
    "parley_open_session": "SELECT count(*) FROM parley_open_session(gen_random_uuid()::text, 'console', $1, 'U1')",
    "parley_authenticate_session": "SELECT count(*) FROM parley_authenticate_session('0123456789ab', '\\x00', $1,"
                                   " 10, 10, gen_random_uuid()::text, 'api', NULL)",
    "parley_record_delivery_messages": "SELECT count(*) FROM parley_record_delivery_messages('console', $1, 'U1', 'C1',"
                                       " 'T1', 0, ARRAY[]::text[])",
    "parley_turn_context": "SELECT count(*) FROM parley_turn_context('console', $1, 'U1', 'C1', now(), 'm', NULL,"
                           " 'kite', 'kite', 10, 0, 40, 1.2, 0.75, 0.5)",
    "parley_start_turn": "SELECT count(*) FROM parley_start_turn('console', $1, 'C1', 'T1', 'U1', 'e1', 'm', 'hi',"
                         " NULL)",
    "parley_finish_turn": "SELECT count(*) FROM parley_finish_turn(0, 'console', $1, 'U1', 'answered', false, NULL,"
                          " NULL, 1, 0, 0, NULL, NULL, 'C1', 'T1', 'hello', false, ARRAY[]::text[],"
                          " ARRAY[]::integer[], ARRAY[]::integer[], ARRAY[]::float8[], '[]', 'e1', NULL, NULL, NULL,"
                          " NULL, NULL, NULL, 30)",
}
TENANT = (
    "SELECT ARRAY[current_setting('parley.platform'), current_setting('parley.workspace_id'),"
    " current_setting('parley.user_id'), current_setting('parley.channel_id')]"
)
CALLERS = ["slack", "T_caller", "U_caller", "C_caller"]


@pytest.fixture(scope="module")
async def app(pg_uri: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of `parley_app`, as a serving process has."""
    conn = await asyncpg.connect(await ensure_app_login(pg_uri))
    yield conn
    await conn.close()


async def name_the_callers_tenant(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "SELECT set_config('parley.platform', $1, true), set_config('parley.workspace_id', $2, true),"
        " set_config('parley.user_id', $3, true), set_config('parley.channel_id', $4, true)", *CALLERS
    )


@pytest.mark.parametrize("function", CALLS)
async def test_a_call_inside_a_transaction_leaves_the_callers_tenant(app: asyncpg.Connection, function: str) -> None:
    async with app.transaction():
        await name_the_callers_tenant(app)
        await app.fetchval(CALLS[function], f"W{uuid.uuid4().hex[:10]}")
        assert await app.fetchval(TENANT) == CALLERS


async def test_a_call_that_fails_leaves_the_callers_tenant(app: asyncpg.Connection) -> None:
    """Nothing puts it back on an error but Postgres: the failed savepoint undoes the function's set_config."""
    async with app.transaction():
        await name_the_callers_tenant(app)
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # no turn 0 to deliver
            async with app.transaction():
                delivery = CALLS["parley_record_delivery_messages"].replace("ARRAY[]::text[]", "ARRAY['m1']")
                await app.fetchval(delivery, "W1")
        assert await app.fetchval(TENANT) == CALLERS
