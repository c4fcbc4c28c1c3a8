"""`parley serve` as operators run it: a subprocess, started without Slack (and without a model),
stopped with SIGTERM while turns are in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from bot.database import APPLICATION_NAME
from tests.api_helpers import bearer, new_key, sse_events
from tests.conftest import StartServe
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


async def test_sigterm_finishes_turns_in_flight_refuses_new_work_and_exits(
    serve: object, pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, url = serve(  # type: ignore[operator]
        {"PARLEY_MODEL": "openai:fake", "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test"}
    )
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
    _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr[-3000:]
    assert "SIGTERM: no new turns" in stderr
    turns = await pool.fetch(
        "SELECT status FROM turns WHERE id = ANY($1::bigint[])", [answered.json()["turn_id"], events[-1][1]["turn_id"]]
    )
    assert [t["status"] for t in turns] == ["answered", "answered"]


async def test_serve_starts_without_slack_or_a_model_and_says_so(serve: object, pool: asyncpg.Pool) -> None:
    process, url = serve({"PARLEY_MODEL": "none"})  # type: ignore[operator]
    _, key = await new_key(pool)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = (await http.post("/v1/chat", json={"message": "hello?"}, headers=bearer(key))).json()
        refused = await http.post("/v1/chat", json={"message": "hello?"})
    assert body["error"] == "model_not_configured" and "PARLEY_MODEL" in body["reply"]
    assert refused.status_code == 401
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0
    assert "Slack endpoint off: SLACK_SIGNING_SECRET not set" in stderr
    assert "No model configured" in stderr


async def test_workers_share_the_port_come_back_after_a_crash_and_all_drain_on_sigterm(
    serve: object, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    process, url = serve(  # type: ignore[operator]
        {
            "PARLEY_WORKERS": "2",
            "PARLEY_MODEL": "openai:fake",
            "OPENAI_BASE_URL": openai_server.base_url,
            "OPENAI_API_KEY": "sk-test",
        }
    )
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
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert "SIGTERM: no new turns" in stderr
    assert not [p for p in psutil.Process().children(recursive=True) if "--worker-fd" in " ".join(p.cmdline())]


async def test_serve_connects_as_the_app_role_and_never_as_a_superuser(
    serve: StartServe, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    _, url = serve({"PARLEY_MODEL": "openai:fake", "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "k"})
    _, key = await new_key(pool)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post("/v1/chat", json={"message": "who am I"}, headers=bearer(key))
    assert answer.json()["reply"] == "You said: who am I"
    # The owner connects only for a maintenance round (at start, then hourly) and lets go when it ends.
    deadline = time.monotonic() + 30
    while True:
        rows = await pool.fetch(
            """SELECT a.usename, r.rolsuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
               WHERE a.application_name = $1""",
            APPLICATION_NAME,
        )
        if not any(r["rolsuper"] for r in rows) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert rows and {(r["usename"], r["rolsuper"]) for r in rows} == {("parley_app", False)}
