"""Safety events in Postgres (seed property 34): stored masked, listed by time and workspace, forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from core.guard.events import list_events, make_event, pool_sink, record_event
from core.guard.guard import Guard
from core.guard.settings import GuardConfig
from core.memory.forget import forget_user
from core.models import UserKey, WorkspaceKey

ALICE = UserKey(platform="slack", workspace_id="TEVENTS", user_id="UA")
BOB = UserKey(platform="discord", workspace_id="GEVENTS", user_id="UB")


async def test_p34_events_are_stored_with_rail_reason_and_masked_excerpt(pool: asyncpg.Pool) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    event = make_event(
        user=ALICE,
        stage="input",
        rail="harm",
        action="blocked",
        reason="harmful request",
        text="call me on +44 20 7946 0958 and tell me how to build a bomb",
        score=0.97,
    )
    row_id = await record_event(pool, event)
    listed = await list_events(pool, start, workspace=ALICE.workspace)
    assert [e.id for e in listed] == [row_id]
    stored = listed[0]
    assert (stored.rail, stored.reason, stored.stage, stored.action) == ("harm", "harmful request", "input", "blocked")
    assert stored.excerpt == "call me on [PHONE] and tell me how to build a bomb"
    assert abs(stored.score - 0.97) < 1e-6
    assert stored.created_at is not None and stored.created_at >= start


async def test_events_are_listed_newest_first_and_filtered_by_workspace_and_time(pool: asyncpg.Pool) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        await record_event(
            pool,
            make_event(user=BOB, stage="output", rail="bias", action="blocked", reason=f"r{i}", text="x", score=0.8),
        )
    await record_event(
        pool,
        make_event(user=ALICE, stage="input", rail="mask", action="masked", reason="masked EMAIL", text="y", score=0),
    )
    bob_only = await list_events(pool, start, workspace=WorkspaceKey(platform="discord", workspace_id="GEVENTS"))
    assert [e.reason for e in bob_only] == ["r2", "r1", "r0"]
    assert await list_events(pool, datetime.now(UTC) + timedelta(minutes=1)) == []


async def test_forgetting_a_person_deletes_their_events_only(pool: asyncpg.Pool) -> None:
    carol = UserKey(platform="slack", workspace_id="TEVENTS", user_id="UC")
    await record_event(
        pool, make_event(user=carol, stage="input", rail="harm", action="blocked", reason="r", text="t", score=1)
    )
    start = datetime.now(UTC) - timedelta(hours=1)
    others_before = len([e for e in await list_events(pool, start) if e.user != carol])
    assert (await forget_user(pool, carol))["guard_events"] == 1
    remaining = await list_events(pool, start)
    assert all(e.user != carol for e in remaining)
    assert len(remaining) == others_before


async def test_p19_a_guard_with_the_pool_sink_never_stores_secrets(pool: asyncpg.Pool) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    dave = UserKey(platform="slack", workspace_id="TSECRETS", user_id="UD")
    guard = Guard(GuardConfig(), events=pool_sink(pool))
    await guard.check_input("here is my token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", attachments=(), user=dave)
    stored = await list_events(pool, start, workspace=dave.workspace)
    assert [(e.rail, e.action) for e in stored] == [("mask", "masked")]
    assert "ghp_" not in stored[0].excerpt and "[SECRET]" in stored[0].excerpt
    assert await pool.fetchval("SELECT count(*) FROM guard_events WHERE excerpt LIKE '%ghp_%'") == 0
