"""Two workspaces' keys over the REST API, walked by hypothesis: the same user ids and session ids in both,
chats, profiles, feedback and forgetting in any order, and nothing one workspace wrote ever reaches the
other through /v1/profile, /v1/memories, /v1/sessions or /v1/feedback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.store.pool import create_pool
from tests.api_helpers import bearer, fake_model_settings, new_key, threaded_server
from tests.fakes.openai_server import FakeOpenAI

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("allow_model_requests")]

USERS = ("u1", "u2")
SESSIONS = ("s1", "s2")
ACTIONS = ("chat", "profile", "forget", "delete_session", "rate_other")


@dataclass
class Walk:
    """What each workspace wrote in one example: its markers and the turns it was answered."""

    markers: dict[str, set[str]] = field(default_factory=lambda: {"A": set(), "B": set()})
    turns: dict[str, list[int]] = field(default_factory=lambda: {"A": [], "B": []})


@pytest.fixture(scope="module")
def api(pg_uri: str, fake_openai: FakeOpenAI) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Clients for two workspaces of one server."""

    async def second_key() -> str:
        pool = await create_pool(pg_uri, max_size=1)
        try:
            return (await new_key(pool))[1]
        finally:
            await pool.close()

    limits = {"parley_api_rate_per_min": 100_000, "parley_rate_user_per_min": 100_000,
              "parley_rate_workspace_per_min": 100_000}
    with threaded_server(pg_uri, fake_model_settings(fake_openai.base_url, **limits)) as (url, key_a):
        key_b = asyncio.run(second_key())
        with (
            httpx.Client(base_url=url, headers=bearer(key_a), timeout=30) as a,
            httpx.Client(base_url=url, headers=bearer(key_b), timeout=30) as b,
        ):
            yield a, b


def _act(client: httpx.Client, other: list[int], walk: Walk, me: str, action: str, user: str, session: str) -> None:
    marker = f"mark{me}{uuid.uuid4().hex[:12]}"
    if action == "chat":
        answer = client.post("/v1/chat", json={"user_id": user, "session_id": session,
                                                "message": f"my codename is {marker}"})
        assert answer.status_code == 200, answer.text
        walk.markers[me].add(marker)
        walk.turns[me].append(answer.json()["turn_id"])
    elif action == "profile":
        assert client.put("/v1/profile", params={"user_id": user}, json={"about": marker}).status_code == 200
        walk.markers[me].add(marker)
    elif action == "forget":
        assert client.delete("/v1/memories", params={"user_id": user}).status_code == 200
    elif action == "delete_session":
        assert client.delete(f"/v1/sessions/{session}").status_code in (200, 404)
    elif other:  # rate a turn only the other workspace was answered
        rated = client.post("/v1/feedback", json={"user_id": user, "turn_id": other[-1], "score": -1})
        assert rated.status_code == 404, rated.text


def _seen(client: httpx.Client, sessions: list[str]) -> str:
    """Everything a workspace's key can read about every user and session of the walk."""
    views = [client.get("/v1/profile", params={"user_id": u}).text for u in USERS]
    views += [client.get("/v1/memories", params={"user_id": u, "history": "true"}).text for u in USERS]
    views += [client.get(f"/v1/sessions/{s}").text for s in sessions]
    return "\n".join(views)


steps = st.lists(
    st.tuples(st.sampled_from("AB"), st.sampled_from(ACTIONS), st.sampled_from(USERS), st.sampled_from(SESSIONS)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(walk_steps=steps)
def test_nothing_one_workspace_writes_reaches_the_other(
    api: tuple[httpx.Client, httpx.Client], walk_steps: list[tuple[str, str, str, str]]
) -> None:
    clients = {"A": api[0], "B": api[1]}
    prefix = uuid.uuid4().hex[:8]  # one example's sessions, shared by name between the workspaces
    walk = Walk()
    for me, action, user, session in walk_steps:
        other = "B" if me == "A" else "A"
        _act(clients[me], walk.turns[other], walk, me, action, user, f"{prefix}-{session}")
    sessions = [f"{prefix}-{s}" for s in SESSIONS]
    for me, other in (("A", "B"), ("B", "A")):
        seen = _seen(clients[me], sessions)
        assert not [m for m in walk.markers[other] if m in seen]
