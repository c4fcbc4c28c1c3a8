"""An API turn's key check and its session in one statement (migration 0039, `core.sessions.authenticate_session`):
the key counted and refused as `core.apikeys.authenticate` has it, the session opened only for a live key within its
limit acting for someone it may, in the key's own workspace, and nothing about other keys or workspaces given away."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from adapters.api.deps import acting_for
from adapters.api.errors import ApiError
from core.apikeys import create_api_key, hash_key, key_id_of
from core.sessions import KeyedSession, authenticate_session, find_session

pytestmark = pytest.mark.timeout(60)


def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


def address() -> str:
    """An address of the test's own, whose invalid keys no other test counts."""
    return f"test-{uuid.uuid4().hex[:10]}"


def wrong_secret(key: str) -> str:
    """The key with its last characters changed: its id, another secret."""
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


async def gate(pool: asyncpg.Pool, key: str, session_id: str | None = None, *, user_id: str | None = None,
               at: str = "test", per_key: int = 10_000, invalid_per_address: int = 10_000) -> KeyedSession:
    return await authenticate_session(
        pool, key, session_id or uuid.uuid4().hex, user_id=user_id, address=at, per_key=per_key,
        invalid_per_address=invalid_per_address,
    )


async def test_a_live_key_opens_its_session_for_the_user_it_names_and_finds_it_again(pool: asyncpg.Pool) -> None:
    team = workspace()
    info, key = await create_api_key(pool, workspace_id=team)
    first = await gate(pool, key, "s1", user_id="U1")
    again = await gate(pool, key, "s1", user_id="U2")
    assert first.checked.key is not None and first.checked.key.key_id == info.key_id and first.checked.wait_s == 0
    assert first.session is not None and again.session == first.session
    assert (first.session.workspace_id, first.session.user_id) == (team, "U1")
    assert await find_session(pool, team, "s1") == first.session


async def test_a_session_id_another_workspace_uses_opens_a_new_session_in_the_keys_own(pool: asyncpg.Pool) -> None:
    theirs, ours = workspace(), workspace()
    _, their_key = await create_api_key(pool, workspace_id=theirs)
    other = (await gate(pool, their_key, "shared-id", user_id="them")).session
    _, key = await create_api_key(pool, workspace_id=ours)
    opened = (await gate(pool, key, "shared-id", user_id="us")).session
    assert opened is not None and (opened.workspace_id, opened.user_id) == (ours, "us")
    assert await find_session(pool, theirs, "shared-id") == other


async def test_the_session_is_written_as_the_app_role_in_the_keys_workspace_scope(pool: asyncpg.Pool) -> None:
    """A trigger (rolled back with the test's transaction) stamps the row with the role and the tenant settings
    its insert ran under, inside a caller's transaction that names another tenant, which it finds as it was."""
    team = workspace()
    _, key = await create_api_key(pool, workspace_id=team)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(STAMP)
            row = await conn.fetchrow(
                "SELECT * FROM parley_authenticate_session($1, $2, 'test', 10000, 10000, 's1', 'api', 'U1')",
                key_id_of(key), hash_key(key),
            )
            callers = await conn.fetchval("SELECT current_setting('parley.workspace_id')")
        finally:
            await transaction.rollback()
    assert row is not None and row["session_user_id"] == f"parley_app|api|{team}|"
    assert callers == "T_caller"


STAMP = """
CREATE FUNCTION pg_temp.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.user_id := concat_ws('|', current_user, current_setting('parley.platform'),
                             current_setting('parley.workspace_id'), current_setting('parley.user_id'));
    RETURN NEW;
END $$;
CREATE TRIGGER stamp BEFORE INSERT ON api_sessions FOR EACH ROW EXECUTE FUNCTION pg_temp.stamp();
SELECT set_config('parley.platform', 'slack', true), set_config('parley.workspace_id', 'T_caller', true),
       set_config('parley.user_id', 'U_caller', true);
"""


async def test_an_unknown_key_id_and_a_wrong_secret_answer_alike_and_count_alike(pool: asyncpg.Pool) -> None:
    _, key = await create_api_key(pool, workspace_id=workspace())
    unknown_id = key.replace(key_id_of(key) or "", uuid.uuid4().hex[:12])
    at = address()
    answers = [await gate(pool, k, "s1", at=at, invalid_per_address=2) for k in (wrong_secret(key), unknown_id)]
    refused = [await gate(pool, k, "s1", at=at, invalid_per_address=2) for k in (wrong_secret(key), unknown_id)]
    assert answers == [KeyedSession(checked=answers[0].checked, session=None)] * 2
    assert answers[0].checked.key is None and answers[0].checked.wait_s == 0
    assert all(r.checked.key is None and r.checked.wait_s > 0 and r.session is None for r in refused)


async def test_an_invalid_key_opens_no_session(pool: asyncpg.Pool) -> None:
    team = workspace()
    _, key = await create_api_key(pool, workspace_id=team)
    await gate(pool, wrong_secret(key), "never")
    assert await find_session(pool, team, "never") is None


async def test_a_key_over_its_limit_is_told_to_wait_and_opens_no_session(pool: asyncpg.Pool) -> None:
    team = workspace()
    _, key = await create_api_key(pool, workspace_id=team)
    await gate(pool, key, "first", per_key=1)
    over = await gate(pool, key, "second", per_key=1)
    assert over.checked.key is not None and over.checked.wait_s > 0 and over.session is None
    assert await find_session(pool, team, "second") is None


async def test_no_column_of_the_answer_can_carry_a_key_hash(pool: asyncpg.Pool) -> None:
    types = await pool.fetchval(
        """SELECT array_agg(format_type(t, NULL)) FROM pg_proc p, unnest(p.proallargtypes) WITH ORDINALITY AS a(t, i)
           WHERE p.proname = 'parley_authenticate_session' AND p.proargmodes[a.i] = 't'"""
    )
    assert types and "bytea" not in types
    _, key = await create_api_key(pool, workspace_id=workspace())
    row = await pool.fetchrow(
        "SELECT * FROM parley_authenticate_session($1, $2, 'test', 10000, 10000, 's1', 'api', NULL)",
        key_id_of(key), hash_key(key),
    )
    assert row is not None and hash_key(key) not in row.values() and not any("hash" in c for c in dict(row))


@pytest.mark.parametrize(
    ("bound_to", "named"),
    [(None, None), (None, "bob"), ("alice", None), ("alice", "alice"), ("alice", "bob")],
)
async def test_the_session_opens_for_the_person_acting_for_names_and_for_no_one_it_refuses(
    pool: asyncpg.Pool, bound_to: str | None, named: str | None
) -> None:
    _, key = await create_api_key(pool, workspace_id=workspace(), user_id=bound_to)
    opened = await gate(pool, key, user_id=named)
    assert opened.checked.key is not None
    try:
        person = acting_for(opened.checked.key, named)
    except ApiError:
        assert opened.session is None
    else:
        assert opened.session is not None and opened.session.user_id == person


async def test_a_malformed_key_is_looked_up_and_counted_nowhere(pool: asyncpg.Pool) -> None:
    at = address()
    answers = [await gate(pool, "not-a-key", at=at, invalid_per_address=1) for _ in range(3)]
    assert all(a == KeyedSession(checked=answers[0].checked, session=None) for a in answers)
    assert answers[0].checked.key is None and answers[0].checked.wait_s == 0
