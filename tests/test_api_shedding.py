"""Load shedding (issue #22): a worker over its turn limit refuses at once with 503 and Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from adapters.api.admission import Admission, LoopLag, admits
from adapters.api.deps import ApiConfig, ApiState
from adapters.api.door import door_routes
from bot.server import api_config, create_app
from tests.api_helpers import bearer, fake_model_settings, live_server, new_key
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline

LIMIT = 3
MODEL_DELAY_S = 1.5
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]


# -- the counter ---------------------------------------------------------------------------------
def test_admission_refuses_once_every_slot_is_taken_and_admits_again_after_a_release() -> None:
    admission = Admission(limit=2)
    first, second = admission.enter(), admission.enter()
    assert first is not None and second is not None
    assert admission.enter() is None
    first.release()
    first.release()  # given back once, however often it is called
    assert admission.in_flight == 1
    assert admission.enter() is not None


async def test_a_ticket_handed_to_a_task_is_given_back_when_the_task_ends_however_it_ends() -> None:
    admission = Admission(limit=1)
    ticket = admission.enter()
    assert ticket is not None
    task = asyncio.create_task(asyncio.sleep(10))
    ticket.hand_to(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert admission.in_flight == 0


def test_the_default_limit_is_the_turns_a_worker_works_on_at_once() -> None:
    settings = fake_model_settings(None, parley_max_concurrent_turns=12)
    config = api_config(settings, build_pipeline(settings, None))  # type: ignore[arg-type]
    assert (config.max_turns, config.max_loop_lag_s) == (12, 1.0)
    settings = fake_model_settings(None, parley_max_concurrent_turns=12, parley_api_max_turns=5)
    assert api_config(settings, build_pipeline(settings, None)).max_turns == 5  # type: ignore[arg-type]


# -- through the server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def server(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> AsyncIterator[str]:
    settings = fake_model_settings(fake_openai.base_url)
    app = create_app(
        settings,
        build_pipeline(settings, pool),
        pool,
        config=ApiConfig(rate_per_min=1000, invalid_keys_per_min=1000, max_turns=LIMIT, busy_retry_after_s=2),
    )
    async with live_server(app) as url:
        yield url


@pytest.fixture
async def client(server: str, openai_server: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http


async def fill_every_slot(
    client: httpx.AsyncClient, key: str, openai_server: FakeOpenAI, path: str
) -> list[asyncio.Task[httpx.Response]]:
    """LIMIT slow turns through `path`, returned once all of them are at the model."""
    openai_server.delay = MODEL_DELAY_S
    turns = [
        asyncio.create_task(client.post(path, json={"message": f"slow {i}"}, headers=bearer(key)))
        for i in range(LIMIT)
    ]

    async def all_at_the_model() -> None:
        while len(openai_server.requests) < LIMIT:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_at_the_model(), 20)
    return turns


async def test_turns_over_the_limit_get_503_with_retry_after_while_the_admitted_ones_complete(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    _, key = await new_key(pool)
    admitted = await fill_every_slot(client, key, openai_server, "/v1/chat")
    extra = await asyncio.gather(
        *(client.post("/v1/chat", json={"message": f"extra {i}"}, headers=bearer(key)) for i in range(2))
    )
    assert not any(task.done() for task in admitted)  # refused while the admitted turns still ran
    for response in extra:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert response.json()["error"] == "overloaded"
    assert [r.status_code for r in await asyncio.gather(*admitted)] == [200] * LIMIT
    assert len(openai_server.requests) == LIMIT  # the refused turns never reached the model


async def test_a_shed_turn_closes_its_connection_so_the_retry_connects_afresh(
    server: str, client: httpx.AsyncClient, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    """With several workers on one port a connection stays with one worker: a retry on it would meet the
    same full worker, a new connection may reach another."""
    _, key = await new_key(pool)
    admitted = await fill_every_slot(client, key, openai_server, "/v1/chat")
    url = httpx.URL(server)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    body = b'{"message": "one too many"}'
    writer.write(
        b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # returns only once the server closes the connection
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 503") and b"connection: close" in head
    assert [r.status_code for r in await asyncio.gather(*admitted)] == [200] * LIMIT


async def test_slots_come_back_when_turns_end_and_when_a_request_is_refused_before_its_turn(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    _, key = await new_key(pool)
    for _ in range(LIMIT + 1):
        unauthorized = await client.post("/v1/chat", json={"message": "hi"}, headers=bearer("parley_not_a_key"))
        assert unauthorized.status_code == 401
        invalid = await client.post("/v1/chat", json={"nonsense": 1}, headers=bearer(key))
        assert invalid.status_code == 422
    answered = await asyncio.gather(
        *(client.post("/v1/chat", json={"message": f"hi {i}"}, headers=bearer(key)) for i in range(LIMIT))
    )
    assert [r.status_code for r in answered] == [200] * LIMIT


async def test_a_streaming_turn_holds_its_slot_until_its_stream_ends(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    _, key = await new_key(pool)
    streams = await fill_every_slot(client, key, openai_server, "/v1/chat/stream")
    refused = await client.post("/v1/chat", json={"message": "one more"}, headers=bearer(key))
    assert refused.status_code == 503
    assert all(r.status_code == 200 for r in await asyncio.gather(*streams))
    await asyncio.sleep(0.1)
    assert (await client.post("/v1/chat", json={"message": "now"}, headers=bearer(key))).status_code == 200


# -- a worker whose CPU runs out -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("in_flight", "lag_s", "max_lag_s", "admitted"),
    [(0, 0.0, 0.25, True), (0, 0.3, 0.25, False), (0, 5.0, None, True), (LIMIT, 0.0, 0.25, False)],
)
def test_a_turn_is_admitted_only_with_a_free_slot_and_a_loop_that_keeps_time(
    in_flight: int, lag_s: float, max_lag_s: float | None, admitted: bool
) -> None:
    assert admits(in_flight=in_flight, limit=LIMIT, lag_s=lag_s, max_lag_s=max_lag_s) is admitted


async def test_the_loop_lag_sees_a_stalled_event_loop_and_recovers() -> None:
    lag = LoopLag(interval_s=0.01)
    watching = asyncio.create_task(lag.watch())
    await asyncio.sleep(0.05)
    time.sleep(0.4)  # a stall, as when the CPU is taken by other work
    stalled, deadline = 0.0, time.monotonic() + 5
    while stalled <= 0.1 and time.monotonic() < deadline:  # the watcher's overdue timer runs next
        await asyncio.sleep(0)
        stalled = max(stalled, lag.lag_s)
    deadline = time.monotonic() + 5  # a loaded machine runs the timers late too: wait for the recovery
    while lag.lag_s >= stalled / 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    watching.cancel()
    assert stalled > 0.1
    assert lag.lag_s < stalled / 4


# -- on the HTTP door's loop -----------------------------------------------------------------------
async def test_a_full_worker_sheds_a_turn_at_the_door_without_carrying_it_to_the_pipeline() -> None:
    settings = fake_model_settings(None)
    pipeline = build_pipeline(settings, None)  # type: ignore[arg-type]
    state = ApiState(pipeline=pipeline, pool=None, config=ApiConfig(max_turns=1))  # type: ignore[arg-type]
    carried: list[str] = []

    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        carried.append(scope["path"])
        await Response("carried")(scope, receive, send)

    door = {path: route(forward) for path, route in door_routes(state).items()}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door["/v1/chat"]), base_url="http://door") as http:
        assert (await http.post("/v1/chat", json={"message": "hi"})).text == "carried"
        assert state.admission.enter() is not None  # the one slot is taken
        shed = await http.post("/v1/chat", json={"message": "hi"})
    assert shed.status_code == 503 and shed.json()["error"] == "overloaded"
    assert shed.headers["Retry-After"] == str(state.config.busy_retry_after_s)
    assert carried == ["/v1/chat"]
    assert set(door) == {"/v1/chat", "/v1/chat/stream"}
