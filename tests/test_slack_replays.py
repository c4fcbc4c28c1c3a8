"""A signed slash command or button click sent again (captured in transit, replayed within Slack's five-minute
window) is acknowledged and does nothing, on this server, another worker or after a restart; each delivery
Slack itself makes (a new signature) still runs. An event runs once per `event_id`: a replay and Slack's own
retry of one already received are acknowledged and skipped. Real HTTP server, Bolt and Postgres, fake Slack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from adapters.slack.app import DATABASE_AWAY
from adapters.slack.replays import first_delivery
from core.feedback import list_feedback
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack, event_callback, mention, reaction
from tests.test_slack_e2e import Harness, running, socket_mode

pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.fixture
async def slack(fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI) -> AsyncIterator[Harness]:
    async with running(fake_slack, pool, openai_server) as harness:
        yield harness


async def profile_shown(slack: Harness, user_id: str) -> str:
    respond = f"{slack.fake.url}/respond/{uuid.uuid4().hex}"
    await slack.sender.command(slack.workspace, user_id=user_id, text="profile", response_url=respond)
    await slack.settle()
    return str(slack.fake.responses[-1]["text"])


def forget_click(slack: Harness, user_id: str, respond: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": slack.workspace.team_id},
        "user": {"id": user_id, "team_id": slack.workspace.team_id},
        "api_app_id": "AFAKEAPP",
        "container": {"type": "message", "is_ephemeral": True},
        "trigger_id": uuid.uuid4().hex,
        "response_url": respond,
        "actions": [{"action_id": "parley_forget_confirm", "block_id": "b", "type": "button", "value": "forget",
                     "action_ts": "1"}],
    }


async def test_a_replayed_command_is_acknowledged_and_changes_nothing(slack: Harness) -> None:
    respond = f"{slack.fake.url}/respond/{uuid.uuid4().hex}"
    german = await slack.sender.command(slack.workspace, user_id="UREPLAY", text="profile set language German",
                                        response_url=respond)
    await slack.settle()
    await slack.sender.command(slack.workspace, user_id="UREPLAY", text="profile set language French",
                               response_url=respond)
    await slack.settle()
    replayed = await slack.sender.replay(german)
    await slack.settle()
    assert replayed.response.status_code == 200
    assert "Language: French" in await profile_shown(slack, "UREPLAY")


async def test_a_replayed_forget_click_forgets_nothing_said_since(slack: Harness) -> None:
    respond = f"{slack.fake.url}/respond/{uuid.uuid4().hex}"
    await slack.sender.command(slack.workspace, user_id="UCLICK", text="profile set name Carol", response_url=respond)
    await slack.settle()
    click = await slack.sender.action(forget_click(slack, "UCLICK", respond))
    await slack.settle()
    await slack.sender.command(slack.workspace, user_id="UCLICK", text="profile set name Dana", response_url=respond)
    await slack.settle()
    replayed = await slack.sender.replay(click)
    await slack.settle()
    assert replayed.response.status_code == 200
    assert "Name: Dana" in await profile_shown(slack, "UCLICK")


async def test_a_command_replayed_to_a_restarted_server_is_not_run_again(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    async with running(fake_slack, pool, openai_server) as before:
        help_asked = await before.sender.command(before.workspace, user_id="UHELP", text="help",
                                                 response_url=f"{fake_slack.url}/respond/1")
        assert "/parley profile" in help_asked.response.text
    async with running(fake_slack, pool, openai_server) as after:
        replayed = await after.sender.replay(help_asked, url=after.sender.url)
    assert replayed.response.status_code == 200
    assert replayed.response.text == ""


async def test_each_delivery_slack_makes_of_the_same_command_runs(slack: Harness) -> None:
    sent = [
        await slack.sender.command(slack.workspace, user_id="UTWICE", text="help",
                                   response_url=f"{slack.fake.url}/respond/1")
        for _ in range(2)
    ]
    assert all("/parley profile" in s.response.text for s in sent)


async def test_concurrent_replays_run_the_command_once(slack: Harness) -> None:
    sent = await slack.sender.command(slack.workspace, user_id="URACE", text="help",
                                      response_url=f"{slack.fake.url}/respond/1")
    replays = await asyncio.gather(*(slack.sender.replay(sent) for _ in range(5)))
    assert [r.response.status_code for r in replays] == [200] * 5
    assert not any(r.response.text for r in replays)


@pytest.fixture
async def app_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """Logged in as `parley_app`, as `parley serve` is."""
    pool = await create_pool(await ensure_app_login(pg_uri), max_size=1)
    yield pool
    await pool.close()


async def test_the_app_role_claims_a_signature_once(app_pool: asyncpg.Pool) -> None:
    signature = f"v0={uuid.uuid4().hex}"
    assert [await first_delivery(app_pool, signature) for _ in range(2)] == [True, False]


async def test_a_signature_is_forgotten_once_its_window_is_over(pool: asyncpg.Pool) -> None:
    signature = f"v0={uuid.uuid4().hex}"
    assert await pool.fetchval("SELECT parley_first_slack_request($1, 0)", signature)
    await first_delivery(pool, f"v0={uuid.uuid4().hex}")
    assert await pool.fetchval("SELECT count(*) FROM slack_requests_seen WHERE signature = $1", signature) == 0


async def test_without_the_database_a_command_does_nothing_and_says_why(
    fake_slack: FakeSlack, pg_uri: str, openai_server: FakeOpenAI
) -> None:
    away = await create_pool(pg_uri, max_size=2)
    async with running(fake_slack, away, openai_server) as slack:
        await away.close()
        sent = await slack.sender.command(slack.workspace, user_id="UAWAY", text="help",
                                          response_url=f"{fake_slack.url}/respond/1")
    assert sent.response.status_code == 200
    assert sent.response.text == DATABASE_AWAY


# -- events: once per event_id ------------------------------------------------------------------
def thread_started(slack: Harness) -> tuple[str, str, dict[str, Any]]:
    """A new assistant thread: Parley greets in it (one post, no turn to dedupe it)."""
    channel, thread = f"D{uuid.uuid4().hex[:9].upper()}", slack.ts()
    return channel, thread, {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": "UALICE", "channel_id": channel, "thread_ts": thread, "context": {}},
        "event_ts": thread,
    }


def greetings(slack: Harness, channel: str, thread: str) -> int:
    return sum(text.startswith("Hi, I'm Parley") for text in slack.thread(channel, thread))


async def test_a_replayed_event_runs_once(slack: Harness) -> None:
    channel, thread, event = thread_started(slack)
    sent = await slack.sender.event(slack.workspace, event)
    await slack.settle()
    replayed = await slack.sender.replay(sent)
    await slack.settle()
    assert replayed.response.status_code == 200
    assert greetings(slack, channel, thread) == 1


async def test_a_slack_retry_of_a_handled_event_is_acknowledged_and_skipped(slack: Harness) -> None:
    channel, thread, event = thread_started(slack)
    first = await slack.sender.event(slack.workspace, event)
    await slack.settle()
    retry = await slack.sender.event(slack.workspace, event, event_id=first.event_id, retry_num=1)
    await slack.settle()
    assert retry.response.status_code == 200
    assert greetings(slack, channel, thread) == 1


async def test_two_different_events_both_run(slack: Harness) -> None:
    started = [thread_started(slack) for _ in range(2)]
    for _, _, event in started:
        await slack.sender.event(slack.workspace, event)
    await slack.settle()
    assert [greetings(slack, channel, thread) for channel, thread, _ in started] == [1, 1]


async def test_concurrent_replays_of_an_event_run_it_once(slack: Harness) -> None:
    channel, thread, event = thread_started(slack)
    sent = await slack.sender.event(slack.workspace, event)
    await asyncio.gather(*(slack.sender.replay(sent) for _ in range(5)))
    await slack.settle()
    assert greetings(slack, channel, thread) == 1


async def test_an_event_replayed_to_a_restarted_server_is_not_run_again(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    async with running(fake_slack, pool, openai_server) as before:
        channel, thread, event = thread_started(before)
        sent = await before.sender.event(before.workspace, event)
        await before.settle()
    async with running(fake_slack, pool, openai_server) as after:
        await after.sender.replay(sent, url=after.sender.url)
        await after.settle()
    assert greetings(before, channel, thread) == 1


async def test_a_replayed_reaction_does_not_bring_back_a_rating_taken_back(slack: Harness) -> None:
    """Reactions have no turn to dedupe them: the captured 👍 sent again after its removal would rate anew."""
    channel, ts = f"C{uuid.uuid4().hex[:9].upper()}", slack.ts()
    since = datetime.now(UTC) - timedelta(seconds=5)
    await slack.sender.event(slack.workspace, mention(slack.workspace, channel=channel, user="UALICE",
                                                      text="rate me", ts=ts))
    await slack.settle()
    [answer] = [m for m in slack.fake.posted(channel) if m.thread_ts == ts]
    thumbs = {"user": "UBOB", "emoji": "+1", "channel": channel, "ts": answer.ts,
              "item_user": slack.workspace.bot_user_id}
    rated = await slack.sender.event(slack.workspace, reaction(**thumbs))
    await slack.settle()
    await slack.sender.event(slack.workspace, reaction(**thumbs, removed=True))
    await slack.settle()
    await slack.sender.replay(rated)
    await slack.settle()
    assert [r for r in await list_feedback(slack.pool, since) if r.workspace_id == slack.workspace.team_id] == []


async def test_without_the_database_an_event_still_runs(
    fake_slack: FakeSlack, pg_uri: str, openai_server: FakeOpenAI
) -> None:
    away = await create_pool(pg_uri, max_size=2)
    async with running(fake_slack, away, openai_server) as slack:
        await away.close()
        channel, thread, event = thread_started(slack)
        sent = await slack.sender.event(slack.workspace, event)
        await slack.settle()
    assert sent.response.status_code == 200
    assert greetings(slack, channel, thread) == 1


async def test_a_socket_mode_retry_of_a_handled_event_is_acknowledged_and_skipped(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    async with running(fake_slack, pool, openai_server, signing_secret=None) as slack, socket_mode(slack) as adapter:
        channel, thread, event = thread_started(slack)
        body = event_callback(slack.workspace, event, event_id=f"Ev{uuid.uuid4().hex[:10].upper()}")
        envelopes = [fake_slack.send_socket_event(body, retry_attempt=attempt) for attempt in (0, 1)]
        for _ in range(200):
            if {a.get("envelope_id") for a in fake_slack.socket_acks} >= set(envelopes):
                break
            await asyncio.sleep(0.02)
        await adapter.drain(20)
        assert {a.get("envelope_id") for a in fake_slack.socket_acks} >= set(envelopes)
        assert greetings(slack, channel, thread) == 1
