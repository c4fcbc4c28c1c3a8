"""The playground in headless Chromium (Debian `chromium`, driven by Playwright): chat with streaming,
attach a file, record a voice note, rate a reply, edit the profile, see and forget memories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pydantic_ai.models
import pytest

from adapters.web.app import LINK_KEY_NAME
from bot.children import ends_with_this_process
from core.apikeys import create_api_key, key_id_of
from core.memory.facts import Home, NewFact, Said, add_fact
from core.memory.scope import fact_scope
from core.models import UserKey
from tests.api_helpers import fake_model_settings, threaded_server
from tests.fakes.openai_server import FakeOpenAI

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_TO = os.environ.get("REFRESH_PLAYGROUND_SCREENSHOT")
"""Set to docs/playground.png to refresh the README's screenshot."""
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def api(pg_uri: str, fake_openai: FakeOpenAI) -> Iterator[tuple[str, str]]:
    with threaded_server(pg_uri, fake_model_settings(fake_openai.base_url)) as served:
        yield served


@pytest.fixture
def page(api: tuple[str, str]) -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            ],
        )
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.grant_permissions(["microphone"])
        yield context.new_page()
        browser.close()


def run_db(pg_uri: str, user: UserKey, *, remember: str | None = None) -> list[tuple[int, str]]:
    """Seed a fact and/or read back feedback, on a connection of its own (this test is synchronous)."""

    async def main() -> list[tuple[int, str]]:
        pool = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
        try:
            if remember:
                said = Said(author_id=user.user_id, channel_id="", at=datetime.now(UTC))
                async with fact_scope(pool, user) as conn:
                    await add_fact(conn, user, Home.person(user.user_id), NewFact(content=remember), said)
            rows = await pool.fetch(
                "SELECT score, source FROM feedback WHERE platform = 'api' AND workspace_id = $1 AND user_id = $2",
                user.workspace_id,
                user.user_id,
            )
            return [(r["score"], r["source"]) for r in rows]
        finally:
            await pool.close()

    return off_thread(main)


def test_playground_chats_streams_attaches_records_rates_and_forgets(
    api: tuple[str, str],
    page: object,
    pg_uri: str,
    openai_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    url, key = api
    me = UserKey(platform="api", workspace_id=_workspace_of(pg_uri, key), user_id=f"key-{key_id_of(key)}")
    p = page  # a playwright Page
    expect = playwright_api.expect
    problems: list[str] = []
    p.on("pageerror", lambda exc: problems.append(str(exc)))  # type: ignore[attr-defined]
    p.on("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]

    p.goto(f"{url}/#key={key}")  # type: ignore[attr-defined]
    expect(p.locator("#status")).to_have_text("model: openai:fake")  # type: ignore[attr-defined]
    assert "key=" not in p.url  # type: ignore[attr-defined]

    # chat, streamed
    with p.expect_response("**/v1/chat/stream") as streamed:  # type: ignore[attr-defined]
        p.fill("#message", "Hello Parley, what can you do?")  # type: ignore[attr-defined]
        p.press("#message", "Enter")  # type: ignore[attr-defined]
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    first = p.locator(".msg.assistant").last  # type: ignore[attr-defined]
    expect(first.locator(".meta")).to_be_visible()
    expect(first.locator(".text")).to_have_text("You said: Hello Parley, what can you do?")

    # 👍 is stored as feedback on that turn
    first.get_by_role("button", name="Good answer").click()
    expect(first.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")

    # a file and a recorded voice note travel as attachments; what could not be read is shown
    p.set_input_files("#attach", files=[{"name": "agenda.txt", "mimeType": "text/plain",  # type: ignore[attr-defined]
                                          "buffer": b"Standup at 9, demo at 3."}])
    p.click("#record")  # type: ignore[attr-defined]
    expect(p.locator("#record")).to_have_text("Stop")  # type: ignore[attr-defined]
    p.wait_for_timeout(600)  # type: ignore[attr-defined]
    p.click("#record")  # type: ignore[attr-defined]
    expect(p.locator("#pending .chip")).to_have_count(2)  # type: ignore[attr-defined]
    expect(p.locator("#pending")).to_contain_text("voice-note.")  # type: ignore[attr-defined]
    p.fill("#message", "What is on the agenda?")  # type: ignore[attr-defined]
    p.click("#send")  # type: ignore[attr-defined]
    second = p.locator(".msg.assistant").nth(1)  # type: ignore[attr-defined]
    expect(second.locator(".meta")).to_be_visible()
    expect(second.locator(".notes")).to_contain_text("agenda.txt (document) read")
    expect(second.locator(".notes .bad")).to_contain_text("voice-note.")
    assert "Standup at 9, demo at 3." in str(openai_server.requests[-1]["messages"])

    # profile: edit, save, and it survives a reload (as does the conversation)
    p.fill("#profile-form [name=display_name]", "Ada")  # type: ignore[attr-defined]
    p.fill("#profile-form [name=timezone]", "Europe/Paris")  # type: ignore[attr-defined]
    p.select_option("#profile-form [name=answer_style]", "short")  # type: ignore[attr-defined]
    p.click("#profile-save")  # type: ignore[attr-defined]
    expect(p.locator("#profile-note")).to_have_text("Saved.")  # type: ignore[attr-defined]
    p.fill("#profile-form [name=timezone]", "Mars/Olympus")  # type: ignore[attr-defined]
    p.click("#profile-save")  # type: ignore[attr-defined]
    expect(p.locator("#profile-note")).to_contain_text("unknown time zone")  # type: ignore[attr-defined]

    assert run_db(pg_uri, me, remember="prefers short answers") == [(1, "+1")]
    p.reload()  # type: ignore[attr-defined]
    expect(p.locator("#profile-form [name=display_name]")).to_have_value("Ada")  # type: ignore[attr-defined]
    expect(p.locator(".msg.user")).to_have_count(2)  # type: ignore[attr-defined]
    expect(p.locator("#memories")).to_contain_text("prefers short answers")  # type: ignore[attr-defined]

    shot = Path(SCREENSHOT_TO) if SCREENSHOT_TO else tmp_path / "playground.png"
    p.screenshot(path=str(shot))  # type: ignore[attr-defined]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # forget everything: memories and profile are gone
    p.click("#forget")  # type: ignore[attr-defined]
    expect(p.locator("#memories")).to_have_text("Nothing yet.")  # type: ignore[attr-defined]
    expect(p.locator("#profile-form [name=display_name]")).to_have_value("")  # type: ignore[attr-defined]
    assert run_db(pg_uri, me) == []
    assert problems == []


def test_a_name_said_in_chat_reaches_the_profile_and_memory_panels_without_a_reload(
    api: tuple[str, str], page: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    url, key = api
    p = page  # a playwright Page
    expect = playwright_api.expect
    p.goto(f"{url}/#key={key}")  # type: ignore[attr-defined]
    expect(p.locator("#status")).to_have_text("model: openai:fake")  # type: ignore[attr-defined]
    p.fill("#message", "Hi, I'm Sam")  # type: ignore[attr-defined]
    p.press("#message", "Enter")  # type: ignore[attr-defined]
    expect(p.locator("#profile-form [name=display_name]")).to_have_value("Sam")  # type: ignore[attr-defined]
    expect(p.locator("#memories")).to_contain_text("is called Sam")  # type: ignore[attr-defined]


def test_the_playground_loads_without_a_failed_request(api: tuple[str, str], page: object) -> None:
    """A 404 (the browser's favicon.ico) shows as an error in the console of a page that works."""
    url, key = api
    p = page  # a playwright Page
    failed: list[str] = []
    p.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    p.goto(f"{url}/#key={key}")  # type: ignore[attr-defined]
    playwright_api.expect(p.locator("#health")).to_contain_text("database")  # type: ignore[attr-defined]
    assert failed == []


async def another_link(pg_uri: str) -> str:
    """A sign-in token as `parley serve` prints one (without spending the one it printed)."""
    pool = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
    try:
        _, token = await create_api_key(pool, workspace_id="local", name=LINK_KEY_NAME)
    finally:
        await pool.close()
    return token


def _workspace_of(pg_uri: str, key: str) -> str:
    async def main() -> str:
        conn = await asyncpg.connect(pg_uri)
        try:
            return str(await conn.fetchval("SELECT workspace_id FROM api_keys WHERE key_id = $1", key_id_of(key)))
        finally:
            await conn.close()

    return off_thread(main)


def off_thread(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a thread of its own: Playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.fixture(scope="module")
def served(
    pg_uri: str, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A real `parley serve` on a free port: its base URL and the sign-in link it printed."""
    tmp_path = tmp_path_factory.mktemp("serve")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
    env.update(DATABASE_URL=pg_uri, PYTHONPATH=str(ROOT), PARLEY_DATA_DIR=str(tmp_path),
               PARLEY_MODEL="openai:fake", OPENAI_BASE_URL=fake_openai.base_url,
               # Tests share one database and one client address (see fake_model_settings).
               PARLEY_API_INVALID_KEYS_PER_MIN="10000")
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=ends_with_this_process())  # ends with the test run, even a killed one
    try:
        assert process.stdout is not None
        link = next((line for line in process.stdout if "?token=" in line), "")
        assert link, "parley serve printed no sign-in link"
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield url, link.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_printed_link_opens_a_signed_in_playground_that_answers(
    served: tuple[str, str], page: object, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, link = served
    assert link.startswith(f"{url}/?token=")
    fake_openai.reset()
    p = page  # a playwright Page
    expect = playwright_api.expect
    p.goto(link)  # type: ignore[attr-defined]
    expect(p.locator("#status")).to_have_text("model: openai:fake")  # type: ignore[attr-defined]
    assert p.url == f"{url}/"  # type: ignore[attr-defined]
    expect(p.locator("#key-dialog")).not_to_be_visible()  # type: ignore[attr-defined]
    expect(p.locator("#health")).to_contain_text("✓ model")  # type: ignore[attr-defined]
    expect(p.locator("#health")).to_contain_text("✓ database")  # type: ignore[attr-defined]
    fake_openai.reset()
    p.fill("#message", "Hello from the link")  # type: ignore[attr-defined]
    p.press("#message", "Enter")  # type: ignore[attr-defined]
    expect(p.locator(".msg.assistant").last.locator(".text")).to_have_text(  # type: ignore[attr-defined]
        "You said: Hello from the link"
    )
    [cookie] = p.context.cookies()  # type: ignore[attr-defined]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_link_works_once_and_the_dialog_then_says_where_links_come_from(
    served: tuple[str, str], page: object, pg_uri: str
) -> None:
    url, _ = served
    link = f"{url}/?token={off_thread(lambda: another_link(pg_uri))}"
    first = httpx.get(link, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    p = page  # a playwright Page, without that cookie
    p.goto(link)  # type: ignore[attr-defined]
    expect = playwright_api.expect
    expect(p.locator("#key-dialog")).to_be_visible()  # type: ignore[attr-defined]
    expect(p.locator("#key-error")).to_contain_text("already used")  # type: ignore[attr-defined]
    expect(p.locator("#link-hint")).to_contain_text("parley serve")  # type: ignore[attr-defined]


def test_the_api_stays_closed_without_a_key_or_the_cookie(served: tuple[str, str]) -> None:
    url, _ = served
    assert httpx.get(f"{url}/v1/capabilities").status_code == 401


def test_a_request_for_another_host_name_is_refused(served: tuple[str, str]) -> None:
    url, _ = served
    assert httpx.get(f"{url}/healthz", headers={"Host": "rebound.attacker.example"}).status_code == 400
    assert httpx.get(f"{url}/healthz", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_the_pages_refuse_frames_foreign_scripts_and_referers(api: tuple[str, str], path: str) -> None:
    url, _ = api
    headers = httpx.get(f"{url}{path}").headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_api_docs_keep_their_cdn_scripts_but_refuse_frames(api: tuple[str, str]) -> None:
    url, _ = api
    headers = httpx.get(f"{url}/docs").headers
    assert headers["content-security-policy"] == "frame-ancestors 'none'"


def test_after_a_reload_an_answer_can_still_be_rated_and_an_unanswered_message_says_so(
    api: tuple[str, str], page: object, pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    url, key = api
    p = page  # a playwright Page
    expect = playwright_api.expect
    p.goto(f"{url}/#key={key}")  # type: ignore[attr-defined]
    p.fill("#message", "Hello again")  # type: ignore[attr-defined]
    p.press("#message", "Enter")  # type: ignore[attr-defined]
    answered = p.locator(".msg.assistant").last  # type: ignore[attr-defined]
    expect(answered.locator(".meta")).to_be_visible()
    turn_id = int(answered.get_attribute("data-turn-id"))

    async def as_if_a_crash_interrupted_it() -> None:
        await _on_the_database(pg_uri, "UPDATE turns SET status = 'error', error = 'interrupted' WHERE id = $1",
                               turn_id)

    off_thread(as_if_a_crash_interrupted_it)
    p.reload()  # type: ignore[attr-defined]
    restored = p.locator(".msg.assistant").last  # type: ignore[attr-defined]
    restored.get_by_role("button", name="Bad answer").click()
    expect(restored.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    expect(p.locator(".msg.user").last.locator(".notes")).to_contain_text(  # type: ignore[attr-defined]
        "Not answered: the server stopped during this turn. Send it again")

    async def scores() -> list[int]:
        return [r["score"] for r in await _on_the_database(pg_uri, "SELECT score FROM feedback WHERE turn_id = $1",
                                                           turn_id)]

    assert off_thread(scores) == [-1]


async def _on_the_database(pg_uri: str, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(pg_uri)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()
