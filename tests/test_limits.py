"""Spend limits: the period arithmetic, the decision, and the check before a turn against real usage."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from core.audit import Actor, list_entries
from core.limits import (
    MAX_AMOUNT,
    SpendLimit,
    Standing,
    clear_limit,
    decide,
    list_limits,
    period_start,
    resets_at,
    set_limit,
)
from core.models import Inbound
from core.pipeline import Pipeline
from core.store import tenancy
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

OPERATOR = Actor(who="ops", door="cli")
NOW = datetime(2026, 12, 31, 21, 30, tzinfo=UTC)


def _limit(**kw: object) -> SpendLimit:
    values: dict[str, object] = {"platform": "slack", "workspace_id": "T1", "scope": "person", "subject": "U1",
                                 "metric": "tokens", "period": "day", "amount": 1000.0, **kw}
    return SpendLimit(**values)  # type: ignore[arg-type]


def test_a_day_runs_from_utc_midnight_to_utc_midnight() -> None:
    assert period_start("day", NOW) == datetime(2026, 12, 31, tzinfo=UTC)
    assert resets_at("day", NOW) == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_month_resets_on_the_first_and_december_rolls_into_january() -> None:
    assert period_start("month", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert resets_at("month", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("month", datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_limit_reached_refuses_saying_which_when_it_resets_and_who_can_raise_it() -> None:
    decision = decide([Standing(limit=_limit(), used=1000)], NOW)
    assert decision.refusal is not None and decision.warning is None
    assert "your daily limit of 1,000 tokens" in decision.refusal
    assert "00:00 UTC on 01 Jan 2027 (in 2 h 30 min)" in decision.refusal
    assert "operator" in decision.refusal and "parley limits set" in decision.refusal


def test_of_several_limits_reached_the_one_lasting_longest_is_named() -> None:
    standings = [
        Standing(limit=_limit(), used=2000),
        Standing(limit=_limit(scope="workspace", subject="", metric="usd", period="month", amount=5), used=5.5),
    ]
    refusal = decide(standings, datetime(2026, 12, 5, tzinfo=UTC)).refusal
    assert refusal is not None and "this workspace's monthly limit of $5.00 ($5.50 used)" in refusal


def test_a_limit_the_database_marked_for_warning_gives_a_heads_up() -> None:
    decision = decide([Standing(limit=_limit(scope="channel", subject="C1"), used=850, warn=True)], NOW)
    assert decision.refusal is None
    assert decision.warning is not None and "85% of this channel's daily limit" in decision.warning


def test_below_every_limit_nothing_is_said() -> None:
    assert decide([Standing(limit=_limit(), used=10)], NOW) == decide([], NOW)


@pytest.fixture
def pipeline(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> Pipeline:
    return build_pipeline(settings_for(openai_server), pool)


async def _limit_of(pool: asyncpg.Pool, inbound: Inbound, **kw: object) -> None:
    values: dict[str, object] = {"platform": inbound.platform, "workspace_id": inbound.workspace_id,
                                 "scope": "person", "subject": inbound.user_id, "metric": "tokens", "period": "day",
                                 **kw}
    await set_limit(pool, inbound.user.workspace, SpendLimit(**values), by=OPERATOR)  # type: ignore[arg-type]


def _next(inbound: Inbound, **kw: object) -> Inbound:
    import dataclasses

    return dataclasses.replace(inbound, event_id=uuid.uuid4().hex, **kw)  # type: ignore[arg-type]


@pytest.mark.usefixtures("allow_model_requests")
async def test_the_turn_after_a_persons_token_limit_gets_the_limit_message_and_no_model_call(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=30)
    replies = [await pipeline.run(_next(first, text=t)) for t in ("one", "two", "three")]
    assert [r.error for r in replies] == [None, None, "spend_limit"]
    assert "your daily limit of 30 tokens (38 used)" in replies[2].text
    assert len(openai_server.requests) == 2


@pytest.mark.usefixtures("allow_model_requests")
async def test_another_person_in_the_workspace_is_not_held_by_a_persons_limit(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=1)
    await pipeline.run(first)
    blocked = await pipeline.run(_next(first))
    other = await pipeline.run(_next(first, user_id="U2"))
    assert blocked.error == "spend_limit" and other.error is None


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_channel_limit_holds_everyone_in_that_channel_only(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, scope="channel", subject="C1", amount=10)
    await pipeline.run(first)
    colleague = await pipeline.run(_next(first, user_id="U2"))
    elsewhere = await pipeline.run(_next(first, user_id="U2", channel_id="C2"))
    assert colleague.error == "spend_limit" and "this channel's" in colleague.text
    assert elsewhere.error is None


@pytest.mark.usefixtures("allow_model_requests")
async def test_the_80_percent_warning_is_given_once_a_period(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=100)
    openai_server.queue(Text("a", 80, 5), Text("b", 1, 1), Text("c", 1, 1))
    replies = [await pipeline.run(_next(first)) for _ in range(3)]
    assert ["Heads-up" in r.text for r in replies] == [False, True, False]
    assert "85% of your daily limit" in replies[1].text


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_usd_limit_counts_only_turns_whose_cost_is_known(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, metric="usd", amount=0.000001)
    replies = [await pipeline.run(_next(first)) for _ in range(2)]
    assert [r.usage.cost_usd for r in replies] == [None, None]
    assert [r.error for r in replies] == [None, None]


async def test_limits_are_listed_changed_and_cleared_with_an_audit_entry_each(pool: asyncpg.Pool) -> None:
    inbound = message("x")
    await _limit_of(pool, inbound, amount=100)
    await _limit_of(pool, inbound, amount=200)
    [stored] = await list_limits(pool, workspace_id=inbound.workspace_id)
    assert stored.amount == 200
    assert await clear_limit(pool, inbound.user.workspace, stored, by=OPERATOR) == 200
    assert await list_limits(pool, workspace_id=inbound.workspace_id) == []
    entries = await list_entries(pool, workspace_id=inbound.workspace_id)
    assert [(e.action, e.old_value, e.new_value) for e in reversed(entries)] == [
        ("limit.set", None, 100), ("limit.set", 100, 200), ("limit.clear", 200, None)
    ]
    assert entries[0].target == "person U1 tokens/day"


async def test_a_workspace_limit_naming_a_subject_is_refused(pool: asyncpg.Pool) -> None:
    inbound = message("x")
    with pytest.raises(ValueError, match="workspace limit"):
        await _limit_of(pool, inbound, scope="workspace", subject="U1", amount=1)


@pytest.mark.usefixtures("allow_model_requests")
async def test_the_warning_reaches_the_delivered_reply_but_not_the_stored_conversation(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=100)
    openai_server.queue(Text("a", 80, 5))
    await pipeline.run(first)
    sink = RecordingSink()
    reply = await pipeline.run(_next(first, text="two"), sink)
    [delivered] = sink.finished
    assert "Heads-up" in reply.text and "Heads-up" in delivered.text
    stored = await pool.fetchval("SELECT content FROM messages WHERE turn_id = $1 AND role = 'assistant'",
                                 reply.turn_id)
    assert stored == "You said: two"


@pytest.mark.usefixtures("allow_model_requests")
async def test_turns_arriving_together_at_a_limit_let_through_only_what_it_allows(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=50)
    await pipeline.run(first)  # 19 tokens: 31 left, room for about one and a half more such turns
    openai_server.delay = 1.0
    replies = await asyncio.gather(*(pipeline.run(_next(first, text=f"at once {i}")) for i in range(5)))
    assert sorted(r.error or "answered" for r in replies) == ["answered"] * 2 + ["spend_limit"] * 3
    assert len(openai_server.requests) == 3
    assert await pool.fetchval("SELECT count(*) FROM spend_reservations WHERE workspace_id = $1",
                               first.workspace_id) == 0


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_refusal_while_others_are_being_answered_says_so(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=30)
    await pipeline.run(first)
    openai_server.delay = 1.0
    replies = await asyncio.gather(*(pipeline.run(_next(first, text=f"at once {i}")) for i in range(2)))
    [refused] = [r for r in replies if r.error == "spend_limit"]
    assert "(19 used, more in answers being written)" in refused.text


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_new_limit_counts_what_was_used_before_it_was_set(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await pipeline.run(first)
    assert await pool.fetchval("SELECT count(*) FROM spend_totals WHERE workspace_id = $1", first.workspace_id) == 0
    await _limit_of(pool, first, scope="workspace", subject="", period="month", amount=19)
    refused = await pipeline.run(_next(first, user_id="U2"))
    assert refused.error == "spend_limit" and "this workspace's monthly limit of 19 tokens (19 used)" in refused.text


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_monthly_limit_is_checked_against_the_running_daily_totals(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    first = message("one")
    await _limit_of(pool, first, scope="workspace", subject="", period="month", amount=500)
    first_of_month = period_start("month", datetime.now(UTC)).date()
    await pool.execute(
        """INSERT INTO spend_totals (platform, workspace_id, scope, subject, day, tokens, turns)
           VALUES ($1, $2, 'workspace', '', $3, 490, 4)""",
        first.platform, first.workspace_id, first_of_month,
    )
    answered = await pipeline.run(first)
    refused = await pipeline.run(_next(first))
    assert answered.error is None and refused.error == "spend_limit" and "(509 used)" in refused.text


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_turn_under_limits_takes_at_most_six_transactions(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = message("one")
    await _limit_of(pool, first, amount=10_000)
    await _limit_of(pool, first, scope="workspace", subject="", period="month", amount=100_000)
    await pipeline.run(first)
    begun: list[str] = []
    counted = tenancy.begin_sql
    monkeypatch.setattr(tenancy, "begin_sql", lambda tenant: begun.append(tenant[1]) or counted(tenant))
    reply = await pipeline.run(_next(first, text="two"), RecordingSink())
    assert reply.error is None
    assert len(begun) <= 6, begun


async def test_the_largest_limit_is_stored_and_a_larger_one_refused_before_the_database(pool: asyncpg.Pool) -> None:
    inbound = message("hi")
    await _limit_of(pool, inbound, amount=MAX_AMOUNT)
    (stored,) = await list_limits(pool, platform=inbound.platform, workspace_id=inbound.workspace_id)
    assert stored.amount == MAX_AMOUNT
    with pytest.raises(ValueError, match="between 0 and"):
        await _limit_of(pool, inbound, amount=1e12)
