"""`parley serve` as operators run it: a subprocess, started without Slack (and without a model),
stopped with SIGTERM while turns are in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from bot.database import APPLICATION_NAME
from core.apikeys import create_api_key
from tests.api_helpers import bearer, new_key, sse_events
from tests.conftest import StartServe
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
ADMIN_REPORTS = ("usage", "audit", "feedback", "refusals", "evals", "limits")
"""The admin API's reads across workspaces (the `parley_operator` role's)."""
pytestmark = pytest.mark.timeout(300)


async def test_sigterm_finishes_turns_in_flight_refuses_new_work_and_exits(
    serve: object, pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(  # type: ignore[operator]
        {"PARLEY_MODEL": "openai:fake", "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test"}
    )
    process, url = server.process, server.url
    _, key = await new_key(pool)
    openai_server.delay = 2.0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        chat = asyncio.create_task(http.post("/v1/chat", json={"message": "slow one"}, headers=bearer(key)))
        stream = asyncio.create_task(
            http.post("/v1/chat/stream", json={"message": "slow stream."}, headers=bearer(key))
        )
        while len(openai_server.requests) < 2:
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
                await fresh.get("/healthz")
        answered, streamed = await chat, await stream
    assert answered.status_code == 200
    assert answered.json()["reply"] == "You said: slow one"
    events = sse_events(streamed.text)
    assert events[-1][0] == "done" and events[-1][1]["reply"] == "You said: slow stream."
    assert await asyncio.to_thread(process.wait, 30) == 0, server.log()[-3000:]
    assert "SIGTERM: no new turns" in server.log()
    turns = await pool.fetch(
        "SELECT status FROM turns WHERE id = ANY($1::bigint[])", [answered.json()["turn_id"], events[-1][1]["turn_id"]]
    )
    assert [t["status"] for t in turns] == ["answered", "answered"]


async def test_serve_starts_without_slack_or_a_model_and_says_so(serve: object, pool: asyncpg.Pool) -> None:
    server = serve({"PARLEY_MODEL": "none"})  # type: ignore[operator]
    url = server.url
    _, key = await new_key(pool)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = (await http.post("/v1/chat", json={"message": "hello?"}, headers=bearer(key))).json()
        refused = await http.post("/v1/chat", json={"message": "hello?"})
    assert body["error"] == "model_not_configured" and "PARLEY_MODEL" in body["reply"]
    assert refused.status_code == 401
    assert await asyncio.to_thread(server.stop) == 0
    stderr = server.log()
    assert "Slack endpoint off: SLACK_SIGNING_SECRET not set" in stderr
    assert "No model (PARLEY_MODEL=none" in stderr


async def test_serve_warns_at_start_that_its_models_server_does_not_answer(serve: object) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{closed}/v1"
    server = serve({"PARLEY_MODEL": "openai:llama3.2", "OPENAI_BASE_URL": base_url})  # type: ignore[operator]
    assert await asyncio.to_thread(server.stop) == 0
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    warnings = [r["message"] for r in records if r["level"] == "WARNING"]
    assert any(w.startswith(f"OPENAI_BASE_URL={base_url}: nothing answers at 127.0.0.1:{closed} (Connection "
                            "refused); start the model server or correct OPENAI_BASE_URL") for w in warnings), warnings


async def test_workers_share_the_port_come_back_after_a_crash_and_all_drain_on_sigterm(
    serve: object, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    server = serve(  # type: ignore[operator]
        {
            "PARLEY_WORKERS": "2",
            "PARLEY_MODEL": "openai:fake",
            "OPENAI_BASE_URL": openai_server.base_url,
            "OPENAI_API_KEY": "sk-test",
        }
    )
    process, url = server.process, server.url
    workers = psutil.Process(process.pid).children()
    assert len(workers) == 2
    workers[1].kill()
    deadline = time.monotonic() + 30
    while {w.pid for w in psutil.Process(process.pid).children()} & {workers[1].pid} or len(
        psutil.Process(process.pid).children()
    ) < 2:
        assert time.monotonic() < deadline, "the supervisor did not start the crashed worker again"
        await asyncio.sleep(0.2)
    _, key = await new_key(pool)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        replies = await asyncio.gather(
            *(http.post("/v1/chat", json={"message": f"hello {i}"}, headers=bearer(key)) for i in range(6))
        )
    assert sorted(r.json()["reply"] for r in replies) == [f"You said: hello {i}" for i in range(6)]
    assert await asyncio.to_thread(server.stop) == 0, server.log()[-3000:]
    assert "SIGTERM: no new turns" in server.log()
    assert not [p for p in psutil.Process().children(recursive=True) if "--worker-fd" in " ".join(p.cmdline())]


@pytest.fixture
async def owner(pool: asyncpg.Pool, pg_uri: str) -> AsyncIterator[tuple[str, str]]:
    """A superuser of the server's own (name, URL), so the test can tell its connections from its own pool's."""
    name = f"parley_owner_{uuid.uuid4().hex[:8]}"
    await pool.execute(f'CREATE ROLE "{name}" SUPERUSER LOGIN')
    yield name, pg_uri.replace("//postgres:@", f"//{name}:@", 1)
    await pool.execute(f'DROP ROLE "{name}"')


async def test_serve_never_connects_as_a_superuser_once_ready(
    serve: StartServe, pool: asyncpg.Pool, openai_server: FakeOpenAI, owner: tuple[str, str]
) -> None:
    """Issue 14: once ready, through turns, the playground's status check, the admin API's reports and
    several memory maintenance rounds, the server neither holds nor opens a superuser connection: its owner
    may no longer log in, and pg_stat_activity shows it only as its three non-superuser roles."""
    name, uri = owner
    server = serve(
        {
            "DATABASE_URL": uri,
            "PARLEY_MODEL": "openai:fake",
            "OPENAI_BASE_URL": openai_server.base_url,
            "OPENAI_API_KEY": "k",
            "PARLEY_MAINTENANCE_EVERY_S": "1",
            "PARLEY_LOG_LEVEL": "INFO",
        }
    )
    await pool.execute(f'ALTER ROLE "{name}" NOLOGIN')
    _, key = await new_key(pool)
    _, admin_key = await create_api_key(pool, workspace_id="ops", name="ops", admin=True)
    seen: set[tuple[str, bool]] = set()

    async def look() -> None:
        rows = await pool.fetch(
            """SELECT a.usename, r.rolsuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
               WHERE a.application_name = $1 OR a.usename = $2""",
            APPLICATION_NAME,
            name,
        )
        seen.update((r["usename"], r["rolsuper"]) for r in rows)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await look()
        answer = await http.post("/v1/chat", json={"message": "who am I"}, headers=bearer(key))
        status = (await http.get("/playground/status", headers=bearer(key))).json()
        reports = [(await http.get(f"/v1/admin/{report}", headers=bearer(admin_key))) for report in ADMIN_REPORTS]
        await look()
    assert answer.json()["reply"] == "You said: who am I"
    assert [r.status_code for r in reports] == [200] * len(ADMIN_REPORTS), [r.text[:300] for r in reports]
    assert any(r.json() for r in reports), "the reports read nothing across workspaces"
    assert [c["ok"] for c in status if c["name"] == "database"] == [True], status
    rounds_before = server.log().count("memory maintenance:")
    deadline = time.monotonic() + 60
    while server.log().count("memory maintenance:") < rounds_before + 3:
        assert time.monotonic() < deadline, f"no maintenance rounds ran: {server.log()[-3000:]}"
        await look()
        await asyncio.sleep(0.05)
    assert "memory maintenance failed" not in server.log()
    assert {user for user, _ in seen} == {"parley_app", "parley_maintenance", "parley_operator"}
    assert not any(superuser for _, superuser in seen)
