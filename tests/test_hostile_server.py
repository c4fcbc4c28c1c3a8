"""Issue 14's attacks replayed against a real `parley serve`: the server stays responsive, refuses
what is unsigned, oversized or malformed with a 4xx (never a 500, never a traceback in its log), and
acknowledges signed events of unexpected shapes so that Slack does not retry them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
import pytest

from tests.api_helpers import bearer, new_key
from tests.conftest import ROOT, free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import EventSender, FakeSlack, event_callback

pytestmark = pytest.mark.timeout(120)
SIGNING_SECRET = "hostile-test-signing-secret"
PLANTED = "xoxb-1111111111-2222222222-PLANTEDslackTOKENabc"
MB = 1024 * 1024
TIMESTAMP = "X-Slack-Request-Timestamp"


@dataclass
class Parley:
    """One `parley serve` for the whole module (starting one costs seconds), its log in a file."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    slack: FakeSlack

    def log_since(self, offset: int) -> str:
        return self.log_path.read_bytes()[offset:].decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size


@pytest.fixture(scope="module")
def parley(pg_uri: str, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parley]:
    folder = tmp_path_factory.mktemp("hostile")
    slack = FakeSlack().start()
    workspace = slack.add_workspace()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
    env.update(
        DATABASE_URL=pg_uri,
        PYTHONPATH=str(ROOT),
        PARLEY_LOG_JSON="true",
        PARLEY_FACT_EXTRACTION="off",
        PARLEY_DATA_DIR=str(folder),
        PARLEY_MODEL="openai:fake",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="sk-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=workspace.token,
        SLACK_API_URL=slack.base_url,
    )
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.serve", "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"parley serve exited early: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "parley serve did not become healthy in 120 s"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield Parley(process=process, url=url, log_path=log_path, slack=slack)
    finally:
        process.kill()
        process.wait()
        slack.stop()


async def test_health_answers_while_an_unsigned_body_and_a_long_message_are_handled(
    parley: Parley, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    url, offset = parley.url, parley.log_size()
    _, key = await new_key(pool)
    unsigned = "token=" + ("a" * 200_000)
    long_message = ("ab:cd@ef " * 2_200)[:19_000]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        attack = asyncio.create_task(
            http.post("/slack/events", content=unsigned, headers={"Content-Type": "application/x-www-form-urlencoded"})
        )
        chat = asyncio.create_task(http.post("/v1/chat", json={"message": long_message}, headers=bearer(key)))
        health_s: list[float] = []
        while not (attack.done() and chat.done()) or not health_s:
            started = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            health_s.append(time.perf_counter() - started)
        refused, answered = await attack, await chat
    assert max(health_s) < 2.0, f"/healthz took {max(health_s):.2f} s during the attack"
    assert refused.status_code == 401
    assert answered.status_code == 200 and answered.json()["reply"].startswith("You said:")
    log = parley.log_since(offset)
    assert "Traceback" not in log and "aaaaaaaa" not in log


MALFORMED: list[tuple[str, bytes, dict[str, str]]] = [
    ("no signature headers", b'{"type": "event_callback"}', {}),
    ("non-numeric timestamp", b"{}", {TIMESTAMP: "soon", "X-Slack-Signature": "v0=00"}),
    ("stale timestamp", b"{}", {TIMESTAMP: "1000000000", "X-Slack-Signature": "v0=00"}),
    ("bad signature with a secret in the body", f"token={PLANTED}".encode(), {"X-Slack-Signature": "v0=00"}),
    ("garbage JSON", b"{not json", {"X-Slack-Signature": "v0=00"}),
    ("invalid UTF-8", b"\xff\xfe{\x80}", {"X-Slack-Signature": "v0=00"}),
    ("bad payload= form", b"payload=%7Bnot-json", {"X-Slack-Signature": "v0=00"}),
]


def sign(body: bytes, stamp: str) -> str:
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()


SIGNED_MALFORMED: list[tuple[str, bytes, str]] = [
    ("garbage JSON", b"{not json", "application/json"),
    ("invalid UTF-8", b'{"a": "\xff"}', "application/json"),
    ("bad payload= form", b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
    ("a JSON array", b"[1, 2]", "application/json"),
]


async def test_every_malformed_slack_request_gets_a_4xx_and_no_traceback(parley: Parley) -> None:
    url, offset = parley.url, parley.log_size()
    stamp = str(int(time.time()))
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        unsigned = {
            name: await http.post("/slack/events", content=body, headers={TIMESTAMP: stamp, **headers})
            for name, body, headers in MALFORMED
        }
        signed = {
            name: await http.post(
                "/slack/events",
                content=body,
                headers={"Content-Type": kind, TIMESTAMP: stamp, "X-Slack-Signature": sign(body, stamp)},
            )
            for name, body, kind in SIGNED_MALFORMED
        }
    assert {name: r.status_code // 100 for name, r in {**unsigned, **signed}.items()} == dict.fromkeys(
        [*unsigned, *signed], 4
    )
    log = parley.log_since(offset)
    assert "Traceback" not in log and PLANTED not in log and "PLANTED" not in log
    assert log.count("slack request refused") == len(MALFORMED) + len(SIGNED_MALFORMED)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "user": "U1", "channel": "C1", "ts": "1.0", "text": "hi", "files": ["F1", "F2"]},
        {"type": "message", "user": 7, "channel": "C1", "ts": "1.0", "text": "hi"},
        {"type": "reaction_added", "user": "U1", "reaction": "+1", "item": "not an object", "item_user": "U2"},
        "just a string",
        None,
    ],
    ids=["files-as-strings", "user-as-number", "item-as-string", "event-as-string", "event-missing"],
)
async def test_signed_events_of_unexpected_shapes_are_acknowledged_and_skipped(parley: Parley, event: Any) -> None:
    url, offset = parley.url, parley.log_size()
    workspace = next(iter(parley.slack.workspaces.values()))
    envelope = event_callback(workspace, {}, event_id=f"EvHOSTILE{offset}")
    if event is None:
        del envelope["event"]
    else:
        envelope["event"] = event
    sender = EventSender(url=f"{url}/slack/events", signing_secret=SIGNING_SECRET)
    try:
        sent = await sender.post(json.dumps(envelope), "application/json")
    finally:
        await sender.aclose()
    assert sent.response.status_code == 200
    await asyncio.sleep(0.2)
    log = parley.log_since(offset)
    assert "slack event skipped" in log and "Traceback" not in log
    assert not parley.slack.calls_to("chat.postMessage")


def test_a_50_mb_unsigned_post_is_refused_without_being_read(parley: Parley) -> None:
    url = parley.url
    server = psutil.Process(parley.process.pid)
    before = server.memory_info().rss
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {50 * MB}\r\n\r\n".encode()
            + b"{" + b" " * (256 * 1024)
        )
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * (64 * 1024)
        for _ in range(40):  # 2.5 MB without a length: refused once the cap is passed
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        chunked = conn.recv(4096)
    assert chunked.startswith(b"HTTP/1.1 413")
    assert server.memory_info().rss - before < 20 * MB
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
