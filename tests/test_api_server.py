"""The REST API through a real uvicorn server on 127.0.0.1 (properties 12, 13, 14, 38, 52, 53)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.routing import APIRoute

from adapters.api.deps import ApiConfig
from adapters.web.app import LINK_KEY_NAME
from bot.server import create_app
from core.apikeys import create_api_key, revoke_api_key
from core.memory.facts import Home, NewFact, Said, add_fact
from core.memory.scope import fact_scope
from core.models import UserKey
from core.output_rails import EMPTY_ANSWER
from tests.api_helpers import bearer, fake_model_settings, live_server, new_key, sse_events
from tests.fakes.openai_server import Error, FakeOpenAI, Text
from tests.pipeline_helpers import build_pipeline

BODY_LIMIT = 256 * 1024
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]


@pytest.fixture(scope="module")
async def server(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> AsyncIterator[str]:
    settings = fake_model_settings(fake_openai.base_url)
    pipeline = build_pipeline(settings, pool)
    app = create_app(settings, pipeline, pool, config=ApiConfig(
        rate_per_min=1000, invalid_keys_per_min=1000, max_body_bytes=BODY_LIMIT
    ))
    async with live_server(app) as url:
        yield url


CLIENT_ADDRESS = "127.0.0.2"
"""The invalid keys these tests send count against their address for a minute in the session's database:
an address of their own keeps later tests' servers, which see 127.0.0.1, from refusing valid keys."""


@pytest.fixture
async def client(server: str, openai_server: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS)
    async with httpx.AsyncClient(base_url=server, timeout=30, transport=transport) as http:
        yield http


@pytest.fixture
async def key(pool: asyncpg.Pool) -> str:
    return (await new_key(pool))[1]


def assert_explains(body: dict[str, Any], code: str) -> None:
    """Property 53: a code, what went wrong, and what to do."""
    assert body["error"] == code
    assert len(body["message"]) > 15
    assert len(body["fix"]) > 15


async def test_chat_answers_with_a_valid_key(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/v1/chat", json={"message": "hello there"}, headers=bearer(key))
    assert response.status_code == 200
    body = response.json()
    assert body["reply"] == "You said: hello there"
    assert body["blocked"] is False and body["error"] is None
    assert body["turn_id"] > 0 and body["session_id"]
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["requests"] == 1
    assert body["latency_ms"] > 0
    assert body["steps"] == [] and body["attachments"] == []
    assert response.headers["x-request-id"]


async def test_chat_continues_a_session_with_its_history(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI
) -> None:
    first = (await client.post("/v1/chat", json={"message": "my name is Ada"}, headers=bearer(key))).json()
    second = await client.post(
        "/v1/chat", json={"message": "what is my name?", "session_id": first["session_id"]}, headers=bearer(key)
    )
    assert second.json()["session_id"] == first["session_id"]
    sent = [m.get("content") for m in openai_server.requests[-1]["messages"]]
    assert "my name is Ada" in str(sent)


async def test_chat_stream_sends_deltas_then_the_final_object(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/v1/chat/stream", json={"message": "stream this please."}, headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    done = [data for name, data in events if name == "done"]
    assert deltas and len(done) == 1 and events[-1][0] == "done"
    assert "".join(deltas) == done[0]["reply"] == "You said: stream this please."
    assert done[0]["turn_id"] > 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer parley_000000000000_" + "A" * 43},
    ],
    ids=["none", "basic", "empty", "malformed", "unknown"],
)
async def test_p52_every_v1_endpoint_refuses_requests_without_a_valid_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    routes = [r for r in _app_routes() if r.path.startswith("/v1")]
    assert len(routes) >= 10
    for route in routes:
        for method in route.methods or ():
            path = route.path.replace("{session_id}", "abc").replace("{memory_id}", "1")
            response = await client.request(method, path, headers=headers, json={"message": "hi"})
            assert response.status_code == 401, (method, path)
            assert_explains(response.json(), "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_p52_a_revoked_key_is_refused(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    info, key = await create_api_key(pool, workspace_id=f"ws-{uuid.uuid4().hex[:8]}")
    assert (await client.get("/v1/capabilities", headers=bearer(key))).status_code == 200
    assert await revoke_api_key(pool, info.key_id)
    response = await client.get("/v1/capabilities", headers=bearer(key))
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


async def test_another_workspaces_session_is_as_missing_as_one_never_made(
    client: httpx.AsyncClient, pool: asyncpg.Pool, key: str
) -> None:
    first = await client.post("/v1/chat", json={"message": "secret plans"}, headers=bearer(key))
    session = first.json()["session_id"]
    _, other = await new_key(pool)
    for target in (session, uuid.uuid4().hex):
        for method in ("GET", "DELETE"):
            response = await client.request(method, f"/v1/sessions/{target}", headers=bearer(other))
            assert response.status_code == 404, (method, target)
            assert_explains(response.json(), "session_not_found")
    still = await client.get(f"/v1/sessions/{session}", headers=bearer(key))
    assert still.json()["messages"][0]["content"] == "secret plans"


async def test_a_session_id_is_per_workspace_so_it_cannot_be_squatted(
    client: httpx.AsyncClient, pool: asyncpg.Pool, key: str
) -> None:
    chosen = uuid.uuid4().hex
    _, squatter = await new_key(pool)
    await client.post("/v1/chat", json={"message": "mine first", "session_id": chosen}, headers=bearer(squatter))
    answer = await client.post("/v1/chat", json={"message": "secret plans", "session_id": chosen}, headers=bearer(key))
    assert answer.status_code == 200 and answer.json()["session_id"] == chosen
    mine = (await client.get(f"/v1/sessions/{chosen}", headers=bearer(key))).json()
    theirs = (await client.get(f"/v1/sessions/{chosen}", headers=bearer(squatter))).json()
    assert [m["content"] for m in mine["messages"]] == ["secret plans", "You said: secret plans"]
    assert "secret plans" not in str(theirs)


async def test_a_repeated_idempotency_key_is_answered_once(client: httpx.AsyncClient, key: str) -> None:
    headers = {**bearer(key), "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/chat", json={"message": "once"}, headers=headers)
    again = await client.post("/v1/chat", json={"message": "once"}, headers=headers)
    assert first.status_code == 200 and first.json()["reply"] == "You said: once"
    assert again.status_code == 409
    assert_explains(again.json(), "already_answered")


async def test_session_can_be_read_and_deleted(client: httpx.AsyncClient, key: str) -> None:
    chat = (await client.post("/v1/chat", json={"message": "remember the milk"}, headers=bearer(key))).json()
    session = await client.get(f"/v1/sessions/{chat['session_id']}", headers=bearer(key))
    assert session.status_code == 200
    assert [(m["role"], m["content"]) for m in session.json()["messages"]] == [
        ("user", "remember the milk"),
        ("assistant", "You said: remember the milk"),
    ]
    deleted = await client.delete(f"/v1/sessions/{chat['session_id']}", headers=bearer(key))
    assert deleted.json() == {"deleted": True, "counts": {"messages": 2, "turns": 1}}
    gone = await client.get(f"/v1/sessions/{chat['session_id']}", headers=bearer(key))
    assert gone.status_code == 404
    assert_explains(gone.json(), "session_not_found")


GONE_INSTANCE = 2**31 - 1
"""An instance number no process holds."""
CRASHED_TURN = {
    "closed by the next start": "UPDATE turns SET status = 'error', error = 'interrupted' WHERE id = $1",
    "not yet closed": f"UPDATE turns SET status = 'started', instance = {GONE_INSTANCE} WHERE id = $1",
}
"""What a crash leaves of a turn: closed as interrupted by the next start (parley_close_orphaned_turns), or before
that still open by the instance that died."""


@pytest.mark.parametrize("crashed", CRASHED_TURN.values(), ids=CRASHED_TURN.keys())
async def test_a_message_whose_turn_a_crash_interrupted_says_so(
    client: httpx.AsyncClient, key: str, pool: asyncpg.Pool, crashed: str
) -> None:
    session = uuid.uuid4().hex
    for message in ("before the crash", "cut off"):
        cut = await client.post("/v1/chat", json={"message": message, "session_id": session}, headers=bearer(key))
    await pool.execute("DELETE FROM messages WHERE turn_id = $1 AND role = 'assistant'", cut.json()["turn_id"])
    await pool.execute(crashed, cut.json()["turn_id"])
    messages = (await client.get(f"/v1/sessions/{session}", headers=bearer(key))).json()["messages"]
    assert [(m["content"], m["interrupted"]) for m in messages] == [
        ("before the crash", False), ("You said: before the crash", False), ("cut off", True)
    ]


async def test_a_long_session_is_read_a_page_at_a_time_newest_first(client: httpx.AsyncClient, key: str) -> None:
    session = uuid.uuid4().hex
    for n in range(3):
        await client.post("/v1/chat", json={"message": f"m{n}", "session_id": session}, headers=bearer(key))
    newest = (await client.get(f"/v1/sessions/{session}", params={"limit": 4}, headers=bearer(key))).json()
    assert [m["content"] for m in newest["messages"]] == ["m1", "You said: m1", "m2", "You said: m2"]
    older = (await client.get(f"/v1/sessions/{session}", params={"limit": 4, "before": newest["older"]},
                              headers=bearer(key))).json()
    assert [m["content"] for m in older["messages"]] == ["m0", "You said: m0"] and older["older"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.message"),
        ({"message": ""}, "body"),
        ({"message": "hi", "session_id": "../etc"}, "body.session_id"),
        ({"message": "hi", "attachments": [{"name": "a.txt", "data": "%%%"}]}, "body.attachments.0.data"),
        ({"message": "hi", "attachments": [{"data": "aGk="}]}, "body.attachments.0.name"),
        ({"message": "hi", "surprise": 1}, "body.surprise"),
        ({"message": 42}, "body.message"),
    ],
)
async def test_p12_invalid_bodies_are_422_with_field_level_messages(
    client: httpx.AsyncClient, key: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/chat", json=body, headers=bearer(key))
    assert response.status_code == 422
    payload = response.json()
    assert_explains(payload, "invalid_request")
    assert field in [p["field"] for p in payload["fields"]]
    assert all(p["problem"] for p in payload["fields"])


async def test_each_problem_of_an_invalid_body_is_listed_once(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/v1/chat", json={"message": "x" * 20_001}, headers=bearer(key))
    assert [p["field"] for p in response.json()["fields"]] == ["body.message"]


async def test_p12_a_body_that_is_not_json_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/v1/chat", content=b"{not json", headers={**bearer(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert_explains(response.json(), "invalid_request")


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient, key: str) -> None:
    big = {"message": "hi", "attachments": [{"name": "big.bin", "data": base64.b64encode(b"x" * BODY_LIMIT).decode()}]}
    response = await client.post("/v1/chat", json=big, headers=bearer(key))
    assert response.status_code == 413
    assert_explains(response.json(), "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (BODY_LIMIT // 4)

    json_headers = {**bearer(key), "Content-Type": "application/json"}
    chunked = await client.post("/v1/chat", content=chunks(), headers=json_headers)
    assert chunked.status_code == 413


async def test_attachments_are_read_and_reported(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI
) -> None:
    note = base64.b64encode(b"The launch is on Tuesday.").decode()
    response = await client.post(
        "/v1/chat",
        json={"message": "when is the launch?", "attachments": [{"name": "note.txt", "data": note}]},
        headers=bearer(key),
    )
    body = response.json()
    assert body["attachments"][0]["name"] == "note.txt"
    assert body["attachments"][0]["error"] is None
    assert "The launch is on Tuesday." in str(openai_server.requests[-1]["messages"])


async def test_p14_a_provider_failure_is_a_clear_reply_not_a_crash(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Error(401, message="bad key"))
    response = await client.post("/v1/chat", json={"message": "hi"}, headers=bearer(key))
    assert response.status_code == 200
    body = response.json()
    assert body["error"] and "API key" in body["reply"]
    assert (await client.get("/healthz")).status_code == 200


async def test_a_model_reply_of_only_fence_tags_is_answered_as_an_empty_answer(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text("<memory>\n</memory>"))
    response = await client.post("/v1/chat", json={"message": "hi"}, headers=bearer(key))
    assert response.json()["reply"] == EMPTY_ANSWER


async def test_a_streamed_model_reply_of_only_fence_tags_is_streamed_as_an_empty_answer(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text("<memory>\n</memory>"))
    response = await client.post("/v1/chat/stream", json={"message": "hi"}, headers=bearer(key))
    events = sse_events(response.text)
    assert events[:-1] == [("delta", {"text": EMPTY_ANSWER})] and events[-1][1]["reply"] == EMPTY_ANSWER


async def test_p38_feedback_is_stored_for_the_turn(
    client: httpx.AsyncClient, pool: asyncpg.Pool, key: str
) -> None:
    turn = (await client.post("/v1/chat", json={"message": "rate me"}, headers=bearer(key))).json()["turn_id"]
    up = await client.post("/v1/feedback", json={"turn_id": turn, "score": 1}, headers=bearer(key))
    assert up.json() == {"turn_id": turn, "score": 1}
    down = await client.post("/v1/feedback", json={"turn_id": turn, "score": -1}, headers=bearer(key))
    assert down.status_code == 200
    rows = await pool.fetch("SELECT score, source, created_at FROM feedback WHERE turn_id = $1", turn)
    assert [(r["score"], r["source"]) for r in rows] == [(-1, "-1")]
    _, other = await new_key(pool)
    foreign = await client.post("/v1/feedback", json={"turn_id": turn, "score": 1}, headers=bearer(other))
    assert foreign.status_code == 404
    assert_explains(foreign.json(), "turn_not_found")


async def test_capabilities_describe_the_server(client: httpx.AsyncClient, key: str) -> None:
    body = (await client.get("/v1/capabilities", headers=bearer(key))).json()
    assert body["model"] == "openai:fake"
    assert body["streaming"] is True
    assert {"current_datetime", "calculate", "fetch_url"} <= set(body["tools"])
    assert body["rate_limit_per_min"] == 1000


async def test_profile_and_memories_can_be_seen_edited_and_forgotten(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace, key = await new_key(pool)
    me = UserKey(platform="api", workspace_id=workspace, user_id="ada")
    said = Said(author_id="ada", channel_id="C1", at=datetime.now(UTC))
    async with fact_scope(pool, me, "C1") as conn:
        memory_id = await add_fact(conn, me, Home.person("ada"), NewFact(content="likes tea"), said)
        await add_fact(conn, me, Home.person("ada"), NewFact(content="lives in Lyon", subject="home"), said)
        await add_fact(conn, me, Home.person("ada"), NewFact(content="lives in Paris", subject="home"), said)
        note_id = await add_fact(conn, me, Home.channel("C1"), NewFact(content="deploys are on Fridays"), said)
    put = await client.put(
        "/v1/profile?user_id=ada", json={"display_name": "Ada", "timezone": "Europe/Paris"}, headers=bearer(key)
    )
    assert put.status_code == 200 and put.json()["display_name"] == "Ada"
    bad = await client.put("/v1/profile?user_id=ada", json={"timezone": "Mars/Base"}, headers=bearer(key))
    assert bad.status_code == 422 and "time zone" in bad.json()["message"]
    profile = (await client.get("/v1/profile?user_id=ada", headers=bearer(key))).json()
    assert profile["timezone"] == "Europe/Paris"
    listed = (await client.get("/v1/memories?user_id=ada", headers=bearer(key))).json()["memories"]
    assert sorted(m["content"] for m in listed) == ["likes tea", "lives in Paris"]
    assert listed[0]["said_in"] == "C1" and listed[0]["scope"] == "person"
    history = await client.get("/v1/memories?user_id=ada&history=true&channel_id=C1", headers=bearer(key))
    assert {(m["content"], m["valid_to"] is None) for m in history.json()["memories"]} == {
        ("likes tea", True), ("lives in Lyon", False), ("lives in Paris", True), ("deploys are on Fridays", True)
    }
    assert (await client.delete(f"/v1/memories/{note_id}?user_id=ada", headers=bearer(key))).status_code == 404
    assert (await client.delete(f"/v1/memories/{note_id}?user_id=ada&channel_id=C1", headers=bearer(key))).is_success
    one = await client.delete(f"/v1/memories/{memory_id}?user_id=ada", headers=bearer(key))
    assert one.status_code == 200
    assert (await client.delete(f"/v1/memories/{memory_id}?user_id=ada", headers=bearer(key))).status_code == 404
    forgotten = await client.delete("/v1/memories?user_id=ada", headers=bearer(key))
    assert forgotten.json()["counts"]["facts"] == 2 and forgotten.json()["counts"]["profiles"] == 1
    assert (await client.get("/v1/memories?user_id=ada", headers=bearer(key))).json()["memories"] == []
    assert (await client.get("/v1/profile?user_id=ada", headers=bearer(key))).json()["display_name"] is None


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, key: str) -> None:
    await client.post("/v1/chat", json={"message": "count me"}, headers=bearer(key))
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'parley_turns_total{outcome="answered",platform="api"}' in text
    assert 'parley_turn_latency_seconds_bucket{le="0.05",platform="api"}' in text
    assert 'parley_http_requests_total{method="POST",route="/v1/chat",status="200"}' in text
    assert 'parley_tokens_total{direction="input"}' in text


async def test_openapi_documents_every_endpoint_and_bearer_auth(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/v1/chat", "/v1/chat/stream", "/v1/sessions/{session_id}", "/v1/capabilities", "/v1/feedback",
            "/v1/profile", "/v1/memories", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "422" in schema["paths"]["/v1/chat"]["post"]["responses"]


async def test_the_playground_page_is_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "Parley" in page.text
    assert (await client.get("/playground.js")).headers["content-type"].startswith("text/javascript")


# -- app-level behaviour that needs its own configuration (in-process, no socket needed) ------
async def test_rate_limit_per_key_is_429_with_retry_after(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> None:
    settings = fake_model_settings(fake_openai.base_url)
    config = ApiConfig(rate_per_min=3, invalid_keys_per_min=1000)
    app = create_app(settings, build_pipeline(settings, pool), pool, config=config)
    _, key = await new_key(pool)
    _, other = await new_key(pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        statuses = [(await http.get("/v1/capabilities", headers=bearer(key))).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await http.get("/v1/capabilities", headers=bearer(key))
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert_explains(refused.json(), "rate_limited")
        assert (await http.get("/v1/capabilities", headers=bearer(other))).status_code == 200


async def test_without_a_model_turns_answer_with_the_configuration_help(pool: asyncpg.Pool) -> None:
    settings = fake_model_settings(None)
    app = create_app(settings, build_pipeline(settings, pool), pool)
    _, key = await new_key(pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        body = (await http.post("/v1/chat", json={"message": "hello"}, headers=bearer(key))).json()
        caps = (await http.get("/v1/capabilities", headers=bearer(key))).json()
    assert body["error"] == "model_not_configured"
    assert "PARLEY_MODEL" in body["reply"]
    assert caps["model"] is None


async def test_readyz_is_503_when_the_database_is_unreachable(pg_uri: str, fake_openai: FakeOpenAI) -> None:
    closed = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, closed), closed)
    await closed.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        response = await http.get("/readyz")
        assert (await http.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert_explains(response.json(), "database_unreachable")


def _app_routes() -> list[APIRoute]:
    from adapters.api.routes import all_routers

    return [r for router in all_routers() for r in router.routes if isinstance(r, APIRoute)]


async def test_invalid_keys_from_one_address_are_refused_before_any_lookup(
    pool: asyncpg.Pool, fake_openai: FakeOpenAI
) -> None:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool, config=ApiConfig(invalid_keys_per_min=3))
    _, key = await new_key(pool)
    forged = key[:-4] + "AAAA"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(f"10.9.{uuid.uuid4().int % 250}.1", 1)),
                                 base_url="http://api") as http:
        statuses = [(await http.get("/v1/capabilities", headers=bearer(forged))).status_code for _ in range(4)]
        refused_valid = await http.get("/v1/capabilities", headers=bearer(key))
    assert statuses == [401, 401, 401, 429]
    assert refused_valid.status_code == 429 and int(refused_valid.headers["retry-after"]) >= 1
    assert_explains(refused_valid.json(), "rate_limited")


async def test_a_sign_in_link_from_a_refused_address_says_wait_and_stays_unused(
    pool: asyncpg.Pool, fake_openai: FakeOpenAI
) -> None:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool, config=ApiConfig(invalid_keys_per_min=2))
    workspace, key = await new_key(pool)
    _, link = await create_api_key(pool, workspace_id=workspace, name=LINK_KEY_NAME)
    address = f"10.8.{uuid.uuid4().int % 250}.1"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1)),
                                 base_url="http://api") as http:
        for _ in range(3):
            await http.get("/v1/capabilities", headers=bearer(key[:-4] + "AAAA"))
        refused = await http.get("/", params={"token": link}, follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/#link=wait-")
    assert "set-cookie" not in refused.headers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(f"10.7.{uuid.uuid4().int % 250}.1", 1)),
                                 base_url="http://api") as http:
        later = await http.get("/", params={"token": link}, follow_redirects=False)
    assert later.status_code == 303 and later.headers["location"] == "/"
    assert "httponly" in later.headers["set-cookie"].lower()


async def test_a_sign_in_behind_a_tls_proxy_sets_a_secure_cookie(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> None:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(settings, build_pipeline(settings, pool), pool)
    workspace, _ = await new_key(pool)
    _, link = await create_api_key(pool, workspace_id=workspace, name=LINK_KEY_NAME)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("172.19.0.2", 1)),
                                 base_url="http://parley.example") as http:  # the proxy, as uvicorn sees it
        opened = await http.get("/", params={"token": link}, headers={"X-Forwarded-Proto": "https"},
                                follow_redirects=False)
    assert opened.headers["location"] == "/"
    assert "; secure" in opened.headers["set-cookie"].lower()
