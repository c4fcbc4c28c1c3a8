"""The admin page in headless Chromium against a real `parley serve`: it refuses an ordinary key, and with
an admin key renders usage and cost charts, feedback with the worst-rated turn, refusals with the
false-positive marking, evaluation runs, and edits settings and limits that land in the audit log.

`REFRESH_ADMIN_SCREENSHOTS=docs` refreshes docs/admin-*.png."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from core.apikeys import create_api_key, key_id_of
from core.audit import list_entries
from core.guard.events import SafetyEvent, record_event
from core.models import UserKey
from tests.api_helpers import bearer
from tests.fakes.openai_server import FakeOpenAI
from tests.test_web_playground import off_thread

ROOT = Path(__file__).resolve().parents[1]
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("REFRESH_ADMIN_SCREENSHOTS")
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def served(pg_uri: str, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `parley serve` (the app role for turns, the owner's pool for /v1/admin)."""
    tmp_path = tmp_path_factory.mktemp("admin")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
    env.update(DATABASE_URL=pg_uri, PYTHONPATH=str(ROOT), PARLEY_DATA_DIR=str(tmp_path),
               PARLEY_MODEL="openai:fake", OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="sk-test",
               PARLEY_API_INVALID_KEYS_PER_MIN="10000")  # invalid keys other tests sent from this address
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert process.poll() is None, "parley serve exited"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def keys(pg_uri: str) -> tuple[str, str]:
    """(an admin key, an ordinary key of a fresh workspace)."""

    async def main() -> tuple[str, str]:
        pool = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
        try:
            _, admin = await create_api_key(pool, workspace_id="ops", name="admin page", admin=True)
            _, ordinary = await create_api_key(pool, workspace_id=f"ws-{uuid.uuid4().hex[:8]}", name="app")
            return admin, ordinary
        finally:
            await pool.close()

    return off_thread(main)


def seed(url: str, pg_uri: str, ordinary: str) -> None:
    """A few answered turns over the API, a thumbs-down, a refusal and two evaluation runs."""
    for text in ("How do I rotate the on-call?", "Summarise the incident", "Draft the release note"):
        answer = httpx.post(f"{url}/v1/chat", json={"message": text}, headers=bearer(ordinary), timeout=60)
        assert answer.status_code == 200, answer.text
    rated = httpx.post(f"{url}/v1/feedback", json={"turn_id": answer.json()["turn_id"], "score": -1},
                       headers=bearer(ordinary), timeout=30)
    assert rated.status_code == 200, rated.text

    async def main() -> None:
        pool = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
        try:
            person = UserKey(platform="slack", workspace_id="TDEMO", user_id="U1")
            await record_event(pool, SafetyEvent(user=person, stage="input", rail="harm", action="blocked",
                                                 reason="harmful request", excerpt="how can I pick the office lock"))
            for passed, score in ((False, 0.62), (True, 0.81)):
                run_id = await pool.fetchval(
                    """INSERT INTO eval_runs (suite, model, passed, failing, started_at)
                       VALUES ('smoke', 'openai:fake', $1, $2, now()) RETURNING id""",
                    passed, [] if passed else ["answer_relevancy"],
                )
                await pool.execute(
                    """INSERT INTO eval_metric_results (run_id, metric, status, score, threshold, direction)
                       VALUES ($1, 'answer_relevancy', $2, $3, 0.7, 'min'),
                              ($1, 'refusal', 'passed', 0.95, 0.9, 'min')""",
                    run_id, "passed" if passed else "failed", score,
                )
        finally:
            await pool.close()

    off_thread(main)


@pytest.fixture
def page() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        browser.close()


def test_the_admin_page_refuses_an_ordinary_key_and_renders_with_an_admin_key(
    served: str, keys: tuple[str, str], page: object, pg_uri: str, fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin, ordinary = keys
    seed(served, pg_uri, ordinary)
    p = page  # a playwright Page
    expect = playwright_api.expect
    p.goto(f"{served}/admin")  # type: ignore[attr-defined]
    expect(p.locator("#sign-in")).to_be_visible()  # type: ignore[attr-defined]
    p.fill("#key-input", ordinary)  # type: ignore[attr-defined]
    p.click("#sign-in-form button")  # type: ignore[attr-defined]
    expect(p.locator("#sign-in-error")).to_contain_text("not an admin key")  # type: ignore[attr-defined]
    expect(p.locator("#dashboard")).to_be_hidden()  # type: ignore[attr-defined]
    assert httpx.get(f"{served}/v1/admin/usage", headers=bearer(ordinary)).status_code == 403

    p.fill("#key-input", admin)  # type: ignore[attr-defined]
    p.click("#sign-in-form button")  # type: ignore[attr-defined]
    expect(p.locator("#dashboard")).to_be_visible()  # type: ignore[attr-defined]
    expect(p.locator("#status")).to_contain_text("Updated")  # type: ignore[attr-defined]
    assert p.locator("#chart-tokens rect").count() >= 1  # type: ignore[attr-defined]
    expect(p.locator("#by-model")).to_contain_text("fake")  # type: ignore[attr-defined]
    expect(p.locator("#worst")).to_contain_text("You said: Draft the release note")  # type: ignore[attr-defined]
    assert p.locator("#chart-feedback rect").count() >= 2  # type: ignore[attr-defined]
    expect(p.locator("#refusal-categories")).to_contain_text("harm")  # type: ignore[attr-defined]
    assert p.locator("#chart-evals polyline").count() >= 2  # type: ignore[attr-defined]
    expect(p.locator("#evals")).to_contain_text("failed: answer_relevancy")  # type: ignore[attr-defined]
    assert "[object " not in p.inner_text("body")  # type: ignore[attr-defined]  # every cell shows text
    if SCREENSHOTS:
        p.screenshot(path=f"{SCREENSHOTS}/admin-overview.png", full_page=True)  # type: ignore[attr-defined]

    refusal = p.locator("#refusals tr", has_text="pick the office lock")  # type: ignore[attr-defined]
    refusal.locator("button").click()
    expect(refusal.locator(".tag.fp")).to_be_visible()

    p.fill("#set-platform", "slack")  # type: ignore[attr-defined]
    p.fill("#set-workspace", "TDEMO")  # type: ignore[attr-defined]
    p.fill("#set-channel", "CSUPPORT")  # type: ignore[attr-defined]
    p.click("#settings-scope button")  # type: ignore[attr-defined]
    p.select_option("#setting-key", "system_prompt")  # type: ignore[attr-defined]
    p.fill("#setting-value", "You are the support desk. Be brief.")  # type: ignore[attr-defined]
    p.click("#setting-edit button.primary")  # type: ignore[attr-defined]
    expect(p.locator("#settings tr", has_text="system_prompt")).to_contain_text("channel")  # type: ignore[attr-defined]

    p.fill("#limit-platform", "slack")  # type: ignore[attr-defined]
    p.fill("#limit-workspace", "TDEMO")  # type: ignore[attr-defined]
    p.fill("#limit-subject", "U1")  # type: ignore[attr-defined]
    p.fill("#limit-amount", "50000")  # type: ignore[attr-defined]
    p.click("#limit-edit button")  # type: ignore[attr-defined]
    expect(p.locator("#limits")).to_contain_text("50,000 tokens per day")  # type: ignore[attr-defined]
    audit = p.locator("#audit")  # type: ignore[attr-defined]
    expect(audit).to_contain_text("setting.set")
    expect(audit).to_contain_text("limit.set")
    expect(audit).to_contain_text("admin page")
    expect(audit).to_contain_text("refusal.false_positive")
    if SCREENSHOTS:
        p.locator("#settings").scroll_into_view_if_needed()  # type: ignore[attr-defined]
        p.screenshot(path=f"{SCREENSHOTS}/admin-editors.png", full_page=True)  # type: ignore[attr-defined]


def admin_link(served: str, pg_uri: str) -> str:
    """What `parley admin link` prints, run as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PARLEY_", "OPENAI_", "DISCORD_"))}
    env.update(DATABASE_URL=pg_uri, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "bot", "admin", "link", "--workspace", "ops", "--url", served],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_one_time_link_signs_in_with_an_httponly_cookie_and_then_is_void(
    served: str, pg_uri: str, page: object
) -> None:
    link = admin_link(served, pg_uri)
    assert link.startswith(f"{served}/admin?token=")
    p = page  # a playwright Page
    expect = playwright_api.expect
    p.goto(link)  # type: ignore[attr-defined]
    expect(p.locator("#dashboard")).to_be_visible()  # type: ignore[attr-defined]
    expect(p.locator("#status")).to_contain_text("Updated")  # type: ignore[attr-defined]
    assert p.url == f"{served}/admin"  # type: ignore[attr-defined]  # the token leaves the address bar
    [cookie] = p.context.cookies()  # type: ignore[attr-defined]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    p.context.clear_cookies()  # type: ignore[attr-defined]
    p.goto(link)  # type: ignore[attr-defined]
    expect(p.locator("#sign-in-error")).to_contain_text("already used")  # type: ignore[attr-defined]
    expect(p.locator("#dashboard")).to_be_hidden()  # type: ignore[attr-defined]


def test_a_link_opened_after_fifteen_minutes_signs_nobody_in_and_is_spent(served: str, pg_uri: str) -> None:
    link = admin_link(served, pg_uri)
    age(pg_uri, link.split("token=", 1)[1], timedelta(minutes=16))
    late = httpx.get(link, follow_redirects=False)
    assert late.status_code == 303 and late.headers["location"] == "/admin#link=expired"
    assert "set-cookie" not in late.headers
    assert httpx.get(link, follow_redirects=False).headers["location"] == "/admin#link=used"


def test_signing_out_of_a_link_session_revokes_its_key(served: str, pg_uri: str) -> None:
    with httpx.Client(base_url=served) as browser:
        opened = browser.get(admin_link(served, pg_uri).removeprefix(served), follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/admin"
        session = browser.cookies["parley_admin"]
        assert browser.get("/v1/admin/limits").status_code == 200
        assert browser.delete("/admin/session").status_code == 204
    assert httpx.get(f"{served}/v1/admin/limits", headers=bearer(session)).status_code == 401


def test_a_link_sign_in_is_audited_as_the_link_through_the_admin_page(served: str, pg_uri: str) -> None:
    link = admin_link(served, pg_uri)
    link_id = key_id_of(link.split("token=", 1)[1])
    with httpx.Client(base_url=served) as browser:
        assert browser.get(link.removeprefix(served), follow_redirects=False).status_code == 303

    async def entries() -> list[tuple[str, str]]:
        pool = await asyncpg.create_pool(pg_uri, min_size=1, max_size=1)
        try:
            return [(e.actor, e.door) for e in await list_entries(pool, workspace_id="ops") if link_id in e.actor]
        finally:
            await pool.close()

    actor = f"apikey:{link_id} (admin-link)"
    assert off_thread(entries) == [(actor, "admin page"), (actor, "admin page")]  # the link spent, a session made


def test_an_admin_session_copied_out_of_the_browser_stops_working_after_twelve_hours(
    served: str, pg_uri: str
) -> None:
    with httpx.Client(base_url=served) as browser:
        browser.get(admin_link(served, pg_uri).removeprefix(served), follow_redirects=False)
        session = browser.cookies["parley_admin"]
    age(pg_uri, session, timedelta(hours=13))
    refused = httpx.get(f"{served}/v1/admin/limits", cookies={"parley_admin": session})
    assert refused.status_code == 401 and "expired" in refused.text and "parley admin link" in refused.text


def test_an_unopened_link_used_as_a_bearer_key_lapses_with_the_link(served: str, pg_uri: str) -> None:
    token = admin_link(served, pg_uri).split("token=", 1)[1]
    assert httpx.get(f"{served}/v1/admin/limits", headers=bearer(token)).status_code == 200
    age(pg_uri, token, timedelta(minutes=16))
    refused = httpx.get(f"{served}/v1/admin/limits", headers=bearer(token))
    assert refused.status_code == 401 and "15 minutes" in refused.text


def age(pg_uri: str, key: str, by: timedelta) -> None:
    """Make `key` look `by` older, as if it had been made that long ago."""

    async def main() -> None:
        conn = await asyncpg.connect(pg_uri)
        try:
            await conn.execute("UPDATE api_keys SET created_at = now() - $2::interval WHERE key_id = $1",
                               key_id_of(key), by)
        finally:
            await conn.close()

    off_thread(main)


def test_an_ordinary_key_in_a_link_signs_nobody_in(served: str, keys: tuple[str, str]) -> None:
    _, ordinary = keys
    opened = httpx.get(f"{served}/admin?token={ordinary}", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/admin#link=used"
    assert "set-cookie" not in opened.headers
