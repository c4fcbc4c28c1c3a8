"""Several processes on one database (issues #14, #15): a turn killed with kill -9 mid-answer is answered
once when the event comes again, a turn a dead process left `started` is closed as interrupted, and two
instances share one rate limit and answer an event delivered to both once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from core import turns
from core.models import Inbound, WorkspaceKey
from core.store.instance import Instance
from tests.api_helpers import bearer, new_key
from tests.conftest import StartServe
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import EventSender, FakeSlack, mention

pytestmark = pytest.mark.timeout(400)
SECRET = "crash-signing-secret"


@pytest.fixture
async def instances(pg_uri: str) -> AsyncIterator[list[Instance]]:
    """Instances (lock-holding connections) made by a test; closed at the end."""
    made: list[Instance] = []
    yield made
    for instance in made:
        await instance.close()


async def started_instance(pg_uri: str, made: list[Instance]) -> Instance:
    instance = await Instance(pg_uri).start()
    made.append(instance)
    return instance


async def claim(pool: asyncpg.Pool, workspace: WorkspaceKey, event_id: str, *, owner: int | None = None) -> bool:
    """The turn's claim on an event, without rate budgets."""
    return (await turns.claim_turn(pool, workspace, event_id, owner=owner, budgets=())).claimed


def workspace() -> WorkspaceKey:
    return WorkspaceKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:8]}")


async def test_a_claimed_event_is_a_duplicate_while_its_owner_lives(
    pool: asyncpg.Pool, pg_uri: str, instances: list[Instance]
) -> None:
    owner, other = await started_instance(pg_uri, instances), await started_instance(pg_uri, instances)
    ws = workspace()
    assert await claim(pool, ws, "Ev1", owner=owner.number)
    assert not await claim(pool, ws, "Ev1", owner=other.number)
    assert not await claim(pool, ws, "Ev1", owner=owner.number)


async def test_an_unfinished_event_of_a_dead_owner_is_taken_over_once(
    pool: asyncpg.Pool, pg_uri: str, instances: list[Instance]
) -> None:
    dead, first, second = [await started_instance(pg_uri, instances) for _ in range(3)]
    ws = workspace()
    assert await claim(pool, ws, "Ev2", owner=dead.number)
    await dead.close()
    taken = await asyncio.gather(
        claim(pool, ws, "Ev2", owner=first.number), claim(pool, ws, "Ev2", owner=second.number)
    )
    assert sorted(taken) == [False, True]


async def test_a_finished_event_is_never_answered_again_even_when_its_owner_is_gone(
    pool: asyncpg.Pool, pg_uri: str, instances: list[Instance]
) -> None:
    dead, alive = await started_instance(pg_uri, instances), await started_instance(pg_uri, instances)
    inbound = slack_inbound("Ev3")
    assert await claim(pool, inbound.user.workspace, "Ev3", owner=dead.number)
    await turns.finish_event(pool, inbound, error="rate_limited")
    await dead.close()
    assert not await claim(pool, inbound.user.workspace, "Ev3", owner=alive.number)


async def test_the_same_event_id_in_two_workspaces_is_two_events(pool: asyncpg.Pool) -> None:
    assert await claim(pool, workspace(), "Ev4")
    assert await claim(pool, workspace(), "Ev4")


async def test_a_turn_left_started_by_a_dead_process_is_closed_as_interrupted(
    pool: asyncpg.Pool, pg_uri: str, instances: list[Instance]
) -> None:
    dead, sweeper = await started_instance(pg_uri, instances), await started_instance(pg_uri, instances)
    alive_turn, _ = await turns.start_turn(pool, slack_inbound("Ev5"), text="hi", model=None, instance=sweeper.number)
    dead_turn, _ = await turns.start_turn(pool, slack_inbound("Ev6"), text="hi", model=None, instance=dead.number)
    await dead.close()
    assert await sweeper.sweep() >= 1
    rows = await pool.fetch("SELECT id, status, error FROM turns WHERE id = ANY($1::bigint[])", [alive_turn, dead_turn])
    states = {r["id"]: (r["status"], r["error"]) for r in rows}
    assert states == {alive_turn: ("started", None), dead_turn: ("error", "interrupted")}


def slack_inbound(event_id: str, *, team: str = "TCRASH", thread: str = "1.0", text: str = "hi") -> Inbound:
    return Inbound(
        platform="slack", workspace_id=team, channel_id="C1", thread_id=thread, user_id="U1", text=text,
        event_id=event_id,
    )


# -- real processes, killed -9 mid-answer ---------------------------------------------------------
@pytest.fixture
def fake_slack() -> FakeSlack:
    fake = FakeSlack().start()
    yield fake  # type: ignore[misc]
    fake.stop()


def slack_env(fake: FakeSlack, token: str, model: FakeOpenAI) -> dict[str, str]:
    return {
        "PARLEY_MODEL": "openai:fake",
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "sk-test",
        "PARLEY_MODEL_RETRIES": "0",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": token,
        "SLACK_API_URL": fake.base_url,
    }


async def wait_for(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_a_slack_turn_killed_mid_answer_is_answered_exactly_once_when_slack_retries(
    serve: StartServe, pool: asyncpg.Pool, openai_server: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    ws = fake_slack.add_workspace()
    env = slack_env(fake_slack, ws.token, openai_server)
    first = serve(env)
    url = first.url
    channel, ts = f"C{uuid.uuid4().hex[:8].upper()}", f"{time.time():.6f}"
    event = mention(ws, channel=channel, user="UCRASH", text="are you there", ts=ts)
    openai_server.delay = 60.0
    sender = EventSender(url=f"{url}/slack/events", signing_secret=SECRET)
    sent = await sender.event(ws, event)
    assert sent.response.status_code == 200
    await wait_for(lambda: len(openai_server.requests) >= 1)
    first.kill()
    await sender.aclose()

    openai_server.delay = 0.0
    url = serve(env).url
    retry = EventSender(url=f"{url}/slack/events", signing_secret=SECRET)
    try:
        assert (await retry.event(ws, event, event_id=sent.event_id, retry_num=1)).response.status_code == 200
        await wait_for(lambda: any("You said: are you there" in m.text for m in fake_slack.posted(channel)))
        assert (await retry.event(ws, event, event_id=sent.event_id, retry_num=2)).response.status_code == 200
        await asyncio.sleep(2)
    finally:
        await retry.aclose()
    replies = [m for m in fake_slack.posted(channel) if "You said" in m.text]
    assert len(replies) == 1
    states = await pool.fetch(
        "SELECT status, error FROM turns WHERE workspace_id = $1 AND channel_id = $2 ORDER BY id", ws.team_id, channel
    )
    assert [(s["status"], s["error"]) for s in states] == [("error", "interrupted"), ("answered", None)]
    asked = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE workspace_id = $1 AND role = 'user' AND channel_id = $2",
        ws.team_id,
        channel,
    )
    assert asked == 1


async def test_an_api_client_retrying_after_a_crash_gets_one_answer_and_a_clean_history(
    serve: StartServe, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    env = {"PARLEY_MODEL": "openai:fake", "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test"}
    first = serve(env)
    url = first.url
    _, key = await new_key(pool)
    session = uuid.uuid4().hex
    body = {"message": "remember the milk", "session_id": session}
    openai_server.delay = 60.0
    async with httpx.AsyncClient(base_url=url, timeout=90) as http:
        lost = asyncio.create_task(http.post("/v1/chat", json=body, headers=bearer(key)))
        await wait_for(lambda: len(openai_server.requests) >= 1)
        first.kill()
        with pytest.raises(httpx.TransportError):
            await lost
    openai_server.delay = 0.0
    url = serve(env).url
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post("/v1/chat", json=body, headers=bearer(key))
        history = (await http.get(f"/v1/sessions/{session}", headers=bearer(key))).json()
    assert answer.status_code == 200 and answer.json()["reply"] == "You said: remember the milk"
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "remember the milk"),
        ("assistant", "You said: remember the milk"),
    ]


async def test_two_instances_share_a_persons_rate_limit_and_answer_an_event_delivered_to_both_once(
    serve: StartServe, pool: asyncpg.Pool, openai_server: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    ws = fake_slack.add_workspace()
    env = {**slack_env(fake_slack, ws.token, openai_server), "PARLEY_RATE_USER_PER_MIN": "2"}
    first, second = await asyncio.gather(asyncio.to_thread(serve, env), asyncio.to_thread(serve, env))
    one, two = first.url, second.url
    _, key = await new_key(pool)
    async with httpx.AsyncClient(timeout=30) as http:
        replies = [
            (await http.post(f"{url}/v1/chat", json={"message": f"hi {i}", "user_id": "ahab"}, headers=bearer(key)))
            for i, url in enumerate((one, two, one))
        ]
    assert [r.json()["error"] for r in replies] == [None, None, "rate_limited"]

    channel = f"C{uuid.uuid4().hex[:8].upper()}"
    event = mention(ws, channel=channel, user="UBOTH", text="only once", ts=f"{time.time():.6f}")
    senders = [EventSender(url=f"{url}/slack/events", signing_secret=SECRET) for url in (one, two)]
    try:
        event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"
        acks = await asyncio.gather(*(s.event(ws, event, event_id=event_id) for s in senders))
        assert [a.response.status_code for a in acks] == [200, 200]
        await wait_for(lambda: any("You said: only once" in m.text for m in fake_slack.posted(channel)))
        await asyncio.sleep(2)
    finally:
        for sender in senders:
            await sender.aclose()
    assert len([m for m in fake_slack.posted(channel) if "You said" in m.text]) == 1
