"""API keys bound to one person (`parley apikey create --user U`): such a key acts only for them, whatever
user_id or session a request names; a workspace-wide key (every key made before) still acts for any user_id.
Real uvicorn server and Postgres, the fake model server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from adapters.api.deps import ApiConfig
from adapters.api.routes.chat import idempotency_event
from bot.cli import apikey
from bot.server import create_app
from core.apikeys import ApiKeyInfo, create_api_key
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.models import Platform, UserKey
from tests.api_helpers import bearer, fake_model_settings, live_server
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]


@pytest.fixture(scope="module")
async def server(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> AsyncIterator[str]:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool,
                     config=ApiConfig(rate_per_min=1000, invalid_keys_per_min=1000))
    async with live_server(app) as url:
        yield url


@pytest.fixture
async def client(server: str, openai_server: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def alice_key(pool: asyncpg.Pool, workspace: str) -> str:
    return (await create_api_key(pool, workspace_id=workspace, name="alice's app", user_id="alice"))[1]


@pytest.fixture
async def wide_key(pool: asyncpg.Pool, workspace: str) -> str:
    return (await create_api_key(pool, workspace_id=workspace, name="integration"))[1]


def refused_as_other_user(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "other_user"
    assert "'alice'" in body["message"] and "'bob'" in body["message"]
    assert "--user" in body["fix"]


async def bobs_profile_named(pool: asyncpg.Pool, workspace: str, name: str) -> UserKey:
    bob = UserKey(platform=Platform.API, workspace_id=workspace, user_id="bob")
    await update_profile(pool, bob, ProfileChanges(display_name=name))
    return bob


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/profile?user_id=bob", None),
        ("PUT", "/v1/profile?user_id=bob", {"display_name": "Mallory"}),
        ("GET", "/v1/memories?user_id=bob", None),
        ("DELETE", "/v1/memories?user_id=bob", None),
        ("DELETE", "/v1/memories/1?user_id=bob", None),
        ("POST", "/v1/chat", {"message": "hi", "user_id": "bob"}),
        ("POST", "/v1/chat/stream", {"message": "hi", "user_id": "bob"}),
        ("POST", "/v1/feedback", {"turn_id": 1, "score": 1, "user_id": "bob"}),
    ],
)
async def test_a_key_bound_to_one_user_is_refused_for_another(
    client: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str, alice_key: str, method: str, path: str,
    body: dict[str, Any] | None,
) -> None:
    bob = await bobs_profile_named(pool, workspace, "Bob")
    refused_as_other_user(await client.request(method, path, json=body, headers=bearer(alice_key)))
    assert (await get_profile(pool, bob)).display_name == "Bob"


async def test_a_bound_key_acts_for_its_user_without_naming_them(
    client: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str, alice_key: str
) -> None:
    changed = await client.put("/v1/profile", json={"display_name": "Alice"}, headers=bearer(alice_key))
    assert changed.status_code == 200 and changed.json()["user_id"] == "alice"
    named = await client.get("/v1/profile?user_id=alice", headers=bearer(alice_key))
    assert named.json()["display_name"] == "Alice"
    chat = await client.post("/v1/chat", json={"message": "hello"}, headers=bearer(alice_key))
    assert chat.status_code == 200
    session = (await client.get(f"/v1/sessions/{chat.json()['session_id']}", headers=bearer(alice_key))).json()
    assert session["user_id"] == "alice"


async def test_a_bound_key_does_not_see_or_continue_another_users_session(
    client: httpx.AsyncClient, workspace: str, alice_key: str, wide_key: str
) -> None:
    bobs = await client.post("/v1/chat", json={"message": "my secret plan", "user_id": "bob"}, headers=bearer(wide_key))
    session_id = bobs.json()["session_id"]
    read = await client.get(f"/v1/sessions/{session_id}", headers=bearer(alice_key))
    continued = await client.post("/v1/chat", json={"message": "repeat what I said", "session_id": session_id},
                                  headers=bearer(alice_key))
    deleted = await client.delete(f"/v1/sessions/{session_id}", headers=bearer(alice_key))
    assert [r.status_code for r in (read, continued, deleted)] == [404, 404, 404]
    assert (await client.get(f"/v1/sessions/{session_id}", headers=bearer(wide_key))).status_code == 200


async def test_a_bound_key_rates_its_own_users_turns_and_no_one_elses(
    client: httpx.AsyncClient, alice_key: str, wide_key: str
) -> None:
    bobs = await client.post("/v1/chat", json={"message": "hi", "user_id": "bob"}, headers=bearer(wide_key))
    alices = await client.post("/v1/chat", json={"message": "hi"}, headers=bearer(alice_key))
    rate_bob = await client.post("/v1/feedback", json={"turn_id": bobs.json()["turn_id"], "score": -1},
                                 headers=bearer(alice_key))
    rate_own = await client.post("/v1/feedback", json={"turn_id": alices.json()["turn_id"], "score": 1},
                                 headers=bearer(alice_key))
    assert (rate_bob.status_code, rate_bob.json()["error"]) == (404, "turn_not_found")
    assert rate_own.status_code == 200


async def test_a_workspace_wide_key_still_acts_for_any_user(
    client: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str, wide_key: str
) -> None:
    await bobs_profile_named(pool, workspace, "Bob")
    read = await client.get("/v1/profile?user_id=bob", headers=bearer(wide_key))
    assert read.status_code == 200 and read.json()["display_name"] == "Bob"


async def test_a_bound_keys_idempotency_keys_are_its_persons_own(
    client: httpx.AsyncClient, pool: asyncpg.Pool, workspace: str, alice_key: str, wide_key: str
) -> None:
    bob_key = (await create_api_key(pool, workspace_id=workspace, name="bob's app", user_id="bob"))[1]
    guessed = {"Idempotency-Key": uuid.uuid4().hex}
    alices = await client.post("/v1/chat", json={"message": "mine"}, headers=bearer(alice_key) | guessed)
    wides = await client.post("/v1/chat", json={"message": "for carol", "user_id": "carol"},
                              headers=bearer(wide_key) | guessed)
    bobs = await client.post("/v1/chat", json={"message": "my plan"}, headers=bearer(bob_key) | guessed)
    alices_retry = await client.post("/v1/chat", json={"message": "mine"}, headers=bearer(alice_key) | guessed)
    assert [r.status_code for r in (alices, wides, bobs, alices_retry)] == [200, 200, 200, 409]
    assert bobs.json()["reply"] == "You said: my plan"


def test_people_whose_ids_and_idempotency_keys_run_together_never_share_an_event() -> None:
    def bound_to(user_id: str | None) -> ApiKeyInfo:
        return ApiKeyInfo(key_id="k", platform="api", workspace_id="w", name="n", created_at=datetime.now(UTC),
                          user_id=user_id)

    events = {
        idempotency_event(bound_to("a:b"), "c"),
        idempotency_event(bound_to("a"), "b:c"),
        idempotency_event(bound_to(None), "a:b:c"),
        idempotency_event(bound_to(None), "@a:b:c"),
    }
    assert len(events) == 4


async def test_a_workspace_wide_keys_idempotency_key_is_still_one_per_workspace(
    client: httpx.AsyncClient, wide_key: str
) -> None:
    headers = bearer(wide_key) | {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/chat", json={"message": "hi", "user_id": "bob"}, headers=headers)
    again = await client.post("/v1/chat", json={"message": "hi", "user_id": "carol"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 409)


async def test_an_admin_key_cannot_be_bound_to_one_user(pool: asyncpg.Pool, workspace: str) -> None:
    with pytest.raises(ValueError, match="whole workspace"):
        await create_api_key(pool, workspace_id=workspace, admin=True, user_id="alice")


def test_the_cli_makes_a_bound_key_and_lists_whom_each_key_acts_for(cli_env: CliRunner, workspace: str) -> None:
    bound = cli_env.invoke(apikey.app, ["create", "--workspace", workspace, "--user", "alice"])
    assert bound.exit_code == 0, bound.output
    assert f"for user 'alice' of workspace '{workspace}'" in bound.output
    assert cli_env.invoke(apikey.app, ["create", "--workspace", workspace]).exit_code == 0
    rows = json.loads(cli_env.invoke(apikey.app, ["list", "--workspace", workspace, "--json"]).output)
    assert [r["user_id"] for r in rows] == ["alice", None]
    table = cli_env.invoke(apikey.app, ["list", "--workspace", workspace], env={"COLUMNS": "200"}).output
    assert "user alice" in table and "workspace-wide" in table


def test_the_cli_refuses_a_bound_admin_key_with_cores_one_message_and_makes_none(
    cli_env: CliRunner, workspace: str
) -> None:
    refused = cli_env.invoke(apikey.app, ["create", "--workspace", workspace, "--user", "alice", "--admin"])
    assert refused.exit_code == 2
    assert " ".join(refused.output.split()) == (
        "No key made: an admin key acts for the whole workspace and cannot be bound to one user."
    )
    assert json.loads(cli_env.invoke(apikey.app, ["list", "--workspace", workspace, "--json"]).output) == []


async def test_requests_refused_for_another_user_still_count_against_the_keys_rate_limit(
    pool: asyncpg.Pool, fake_openai: FakeOpenAI, alice_key: str
) -> None:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool,
                     config=ApiConfig(rate_per_min=2, invalid_keys_per_min=1000))
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        statuses = [
            (await client.post("/v1/chat", json={"message": "hi", "user_id": "bob"}, headers=bearer(alice_key)))
            .status_code
            for _ in range(3)
        ]
    assert statuses == [403, 403, 429]
