"""Row-level security everywhere (issue #14): the app role sees a tenant's rows only inside its scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic_ai.messages import ModelResponse, TextPart
from slack_sdk.oauth.installation_store.models.installation import Installation

from adapters.slack.installation import PostgresInstallationStore, PostgresOAuthStateStore
from adapters.slack.replays import first_delivery
from core import deliveries, turns
from core.apikeys import create_api_key
from core.audit import Actor
from core.cache import PostgresCacheStore
from core.discord_conversations import NewMessage, remember_messages
from core.feedback import record_feedback
from core.guard.events import SafetyEvent, record_event
from core.limits import SpendLimit, set_limit
from core.memory.profiles import ProfileChanges, update_profile
from core.models import Inbound, Reply, UserKey, WorkspaceKey
from core.ratelimit import take, turn_budgets
from core.sessions import authenticate_session
from core.store.pool import create_pool
from core.store.roles import app_password, app_uri, ensure_app_login
from core.store.tenancy import scoped, tenant
from core.workspace import set_override
from tests.api_helpers import key_of

FORBIDDEN = (asyncpg.InsufficientPrivilegeError,)


@pytest.fixture(scope="module")
async def app_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool that logs in as `parley_app`, the way `parley serve` does."""
    pool = await create_pool(await ensure_app_login(pg_uri), max_size=2)
    yield pool
    await pool.close()


async def seed_workspace(pool: asyncpg.Pool, team: str) -> Inbound:
    """Rows of one workspace in every kind of table a serving process writes."""
    inbound = Inbound(
        platform="slack", workspace_id=team, channel_id="C1", thread_id="1.0", user_id="U1", text="hello",
        event_id=f"Ev{uuid.uuid4().hex[:8]}",
    )
    assert (await turns.claim_turn(pool, inbound.user.workspace, inbound.event_id, owner=None, budgets=())).claimed
    turn_id, _ = await turns.start_turn(pool, inbound, text="hello", model="m")
    reply = Reply(text="hi", thread_id="1.0", turn_id=turn_id)
    call = turns.ModelCall(model="m", input_tokens=1, output_tokens=1, cost_usd=None)
    await turns.finish_turn(pool, inbound, turn_id=turn_id, reply=reply, calls=[call], trace_id=None)
    await record_feedback(
        pool, platform="slack", workspace_id=team, user_id="U1", turn_id=turn_id, score=1, source="+1"
    )
    event = SafetyEvent(user=inbound.user, stage="input", rail="pii", action="masked", reason="r", excerpt="x")
    await record_event(pool, event)
    await set_override(pool, inbound.user.workspace, "temperature", 0.1, by=Actor(who="test", door="cli"))
    await PostgresCacheStore(pool, inbound.user.workspace, 60).put("k", ModelResponse(parts=[TextPart("x")]))
    await update_profile(pool, inbound.user, ProfileChanges(language="en"))
    await PostgresInstallationStore(pool, client_id="c").async_save(
        Installation(user_id="U1", team_id=team, bot_token="xoxb-1", bot_id="B1", bot_user_id="UB1",
                     installed_at=datetime.now(UTC).timestamp())
    )
    await PostgresOAuthStateStore(pool).async_issue()
    await first_delivery(pool, f"v0={uuid.uuid4().hex}")
    _, key = await create_api_key(pool, workspace_id=team)
    await authenticate_session(pool, key, uuid.uuid4().hex, user_id="U1", address="test", per_key=100,
                               invalid_per_address=100)
    await remember_messages(pool, workspace_id=team, user_id="U1", thread_id="t", messages=[
        NewMessage(channel_id="C1", message_id=uuid.uuid4().hex)])
    await deliveries.record(pool, inbound, turn_id=turn_id, message_ids=["C1:2.0"])
    await take(pool, turn_budgets(platform="slack", workspace_id=team, user_id="U1", per_user=5, per_workspace=5))
    await set_limit(pool, inbound.user.workspace, SpendLimit(
        platform="slack", workspace_id=team, scope="person", subject="U1", metric="tokens", period="day", amount=9,
    ), by=Actor(who="test", door="cli"))
    await pool.execute(
        "INSERT INTO spend_warnings (platform, workspace_id, user_id, limit_id, period_start)"
        " SELECT platform, workspace_id, subject, id, now() FROM spend_limits WHERE workspace_id = $1", team
    )
    await pool.execute(
        """WITH r AS (INSERT INTO spend_reservations (platform, workspace_id, event_id, user_id, channel_id)
                      VALUES ('slack', $1, 'e-reserved', 'U1', 'C1'))
           INSERT INTO spend_totals (platform, workspace_id, scope, subject, day, tokens)
           VALUES ('slack', $1, 'person', 'U1', current_date, 7) ON CONFLICT DO NOTHING""",
        team,
    )
    await seed_as_owner(pool, inbound, turn_id)
    return inbound


async def seed_as_owner(pool: asyncpg.Pool, inbound: Inbound, turn_id: int) -> None:
    """The tables only maintenance, operators or other adapters write: a row each, written as the owner."""
    keys = (inbound.platform, inbound.workspace_id, inbound.user_id)
    await pool.execute(
        """WITH memory AS (INSERT INTO memories (platform, workspace_id, user_id, content, content_hash)
                           VALUES ($1, $2, $3, 'likes tea', '\\x01'::bytea)),
                fact AS (INSERT INTO facts (platform, workspace_id, scope, user_id, content)
                         VALUES ($1, $2, 'person', $3, 'is called Ada')),
                scope AS (INSERT INTO memory_scope_indexes
                              (platform, workspace_id, user_id, embedding_model, dimensions, index_name)
                          VALUES ($1, $2, $3, 'm', 3, 'idx_' || md5($2))),
                score AS (INSERT INTO turn_scores (turn_id, platform, workspace_id, user_id, metric, judge)
                          VALUES ($4, $1, $2, $3, 'relevancy', 'j')),
                thread AS (INSERT INTO discord_threads
                               (workspace_id, user_id, thread_id, parent_channel_id, conversation_id)
                           VALUES ($2, $3, 't', 'C1', 't')),
                run AS (INSERT INTO eval_runs (suite, passed, started_at) VALUES ('s', true, now()) RETURNING id)
           INSERT INTO eval_metric_results (run_id, metric, status, threshold, direction)
           SELECT id, 'm', 'passed', 0.5, 'min' FROM run""",
        *keys,
        turn_id,
    )


async def tables(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
    )
    return sorted(r["relname"] for r in rows)


async def test_every_table_has_row_level_security_or_no_grant_to_the_app_role(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        """SELECT c.relname,
                  has_table_privilege('parley_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS granted,
                  c.relrowsecurity AND EXISTS (
                      SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND 'parley_app'::regrole = ANY (p.polroles)
                  ) AS guarded
           FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"""
    )
    assert len(rows) >= 20
    assert [r["relname"] for r in rows if r["granted"] and not r["guarded"]] == []


async def test_the_app_role_without_a_tenant_reads_nothing_and_deletes_nothing(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    await seed_workspace(pool, f"T{uuid.uuid4().hex[:8]}")
    seen: dict[str, int] = {}
    for table in await tables(pool):
        owned = await pool.fetchval(f'SELECT count(*) FROM "{table}"')
        async with app_pool.acquire() as conn:
            try:
                async with conn.transaction():
                    seen[table] = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
                    deleted = await conn.execute(f'DELETE FROM "{table}"')
                    assert deleted == "DELETE 0", table
            except FORBIDDEN:
                seen[table] = 0
        assert owned > 0 or table == "yoyo_lock", f"seed a row in {table}: the check would prove nothing"
    assert seen == dict.fromkeys(seen, 0)


async def test_one_workspaces_scope_cannot_read_another_workspaces_rows(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    mine = await seed_workspace(pool, f"T{uuid.uuid4().hex[:8]}")
    theirs = await seed_workspace(pool, f"T{uuid.uuid4().hex[:8]}")
    async with tenant(app_pool, mine.user.workspace) as conn:
        for table in ("turns", "messages", "usage", "feedback", "guard_events", "workspace_settings",
                      "response_cache", "processed_events", "slack_installations", "slack_bots"):
            workspaces = await conn.fetch(f"SELECT * FROM {table}")
            assert workspaces, table
            assert {r.get("workspace_id", r.get("team_id")) for r in workspaces} == {mine.workspace_id}, table
        assert await conn.fetchval("SELECT count(*) FROM turns WHERE workspace_id = $1", theirs.workspace_id) == 0


async def test_a_persons_scope_sees_only_that_persons_rows(pool: asyncpg.Pool, app_pool: asyncpg.Pool) -> None:
    inbound = await seed_workspace(pool, f"T{uuid.uuid4().hex[:8]}")
    stranger = UserKey(platform="slack", workspace_id=inbound.workspace_id, user_id="U2")
    assert await scoped(app_pool, inbound.user).fetchval("SELECT count(*) FROM turns") == 1
    assert await scoped(app_pool, stranger).fetchval("SELECT count(*) FROM turns") == 0
    assert await scoped(app_pool, inbound.user.workspace).fetchval("SELECT count(*) FROM profiles") == 0


async def test_an_api_key_is_found_before_its_workspace_is_known_and_only_with_its_secret(
    app_pool: asyncpg.Pool,
) -> None:
    info, key = await create_api_key(app_pool, workspace_id=f"ws-{uuid.uuid4().hex[:8]}")
    found = await key_of(app_pool, key)
    assert found is not None and found.key_id == info.key_id
    assert await key_of(app_pool, key[:-4] + "AAAA") is None


async def test_a_row_for_another_workspace_cannot_be_written_from_a_scope(app_pool: asyncpg.Pool) -> None:
    mine = WorkspaceKey(platform="slack", workspace_id="TMINE")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await scoped(app_pool, mine).execute(
            "INSERT INTO workspace_settings (platform, workspace_id, key, value) VALUES ('slack', 'TOTHER', 'k', '1')"
        )


def test_the_app_password_is_derived_from_the_owners_and_needs_it() -> None:
    owner = "postgresql://owner:s3cret@db.internal:5432/parley"
    assert app_password(owner) == app_password("postgresql://owner:s3cret@other-host/parley")
    assert app_password(owner) != app_password("postgresql://owner:rotated@db.internal:5432/parley")
    assert app_password("postgresql://postgres:@/postgres?host=/tmp/x") is None
    uri = app_uri(owner)
    assert uri.startswith("postgresql://parley_app:") and "s3cret" not in uri
    assert uri.endswith("@db.internal:5432/parley")
