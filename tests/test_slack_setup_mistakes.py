"""What a newcomer sees when the Slack app is set up wrong: a token Slack refuses, a scope the app lacks, a bot
token of another workspace than the events', and nothing from Bolt about the SLACK_BOT_TOKEN in the environment."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from adapters.slack.app import BOLT_TOKEN_NOTICE, BOT_SCOPES
from bot.server import check_slack_tokens
from core.guard.masking import mask_sensitive
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.fakes.slack_api import FakeSlack, Workspace, message
from tests.test_cli import CONFIG_PREFIXES
from tests.test_slack_e2e import Harness, running

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("allow_model_requests")


def dm_channel() -> str:
    return f"D{uuid.uuid4().hex[:9].upper()}"


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


async def dm(slack: Harness, text: str, *, workspace: Workspace | None = None) -> None:
    sent = await slack.sender.event(
        workspace or slack.workspace,
        message(channel=dm_channel(), user="UALICE", text=text, ts=slack.ts(), channel_type="im"),
    )
    assert sent.response.status_code == 200
    await slack.settle()


async def test_a_scope_the_app_lacks_is_named_once_with_how_to_add_it(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.queue(Text("hello"), Text("hello again"))
    async with running(fake_slack, pool, openai_server) as slack:
        without_chat_write = tuple(scope for scope in BOT_SCOPES if scope != "chat:write")
        fake_slack.workspaces[slack.workspace.token] = dataclasses.replace(slack.workspace, scopes=without_chat_write)
        with caplog.at_level(logging.WARNING, logger="parley.slack"):
            await dm(slack, "hello")
            await dm(slack, "hello again")
    named = warnings(caplog, "lacks the scope chat:write")
    assert len(named) == 1, named
    assert "OAuth & Permissions" in named[0] and "reinstall" in named[0]


async def test_a_scope_the_app_lacks_is_named_after_a_rate_limited_retry_too(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.queue(Text("hello"))
    async with running(fake_slack, pool, openai_server) as slack:
        without_assistant = tuple(scope for scope in BOT_SCOPES if scope != "assistant:write")
        fake_slack.workspaces[slack.workspace.token] = dataclasses.replace(slack.workspace, scopes=without_assistant)
        for method in ("assistant.threads.setTitle", "assistant.threads.setStatus"):
            fake_slack.fail(method, 429, retry_after=0)
        with caplog.at_level(logging.WARNING, logger="parley.slack"):
            await dm(slack, "hello")
    assert len(warnings(caplog, "lacks the scope assistant:write")) == 1


async def test_an_event_from_another_workspace_than_the_bot_tokens_is_named_once(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.queue(Text("one"), Text("two"))
    async with running(fake_slack, pool, openai_server) as slack:
        other = fake_slack.add_workspace()
        with caplog.at_level(logging.WARNING, logger="parley.slack"):
            await dm(slack, "from elsewhere", workspace=other)
            await dm(slack, "from elsewhere again", workspace=other)
    named = warnings(caplog, f"an event came from Slack workspace {other.team_id}")
    assert len(named) == 1, named
    assert f"SLACK_BOT_TOKEN belongs to workspace {slack.workspace.team_id}" in named[0]


async def test_events_of_the_bot_tokens_own_workspace_warn_of_nothing(
    slack_harness: Harness, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.queue(Text("hi"))
    with caplog.at_level(logging.WARNING, logger="parley.slack"):
        await dm(slack_harness, "hi")
    assert warnings(caplog, "") == []


async def test_bolt_says_nothing_about_the_slack_bot_token_in_the_environment(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    with caplog.at_level(logging.WARNING, logger="parley.slack.bolt"):
        async with running(fake_slack, pool, openai_server):
            pass
    assert [r for r in caplog.records if r.getMessage() == BOLT_TOKEN_NOTICE] == []


def test_the_fake_slack_runs_alone_as_docs_slack_md_says() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.slack_api", "--port", str(port)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        token = banner.split("bot token ", 1)[1].split(",", 1)[0]
        answer = httpx.post(f"http://127.0.0.1:{port}/api/auth.test", headers={"Authorization": f"Bearer {token}"})
    finally:
        process.terminate()
        process.wait(10)
    assert answer.json()["ok"] is True, answer.text


@pytest.fixture
async def slack_harness(fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI) -> AsyncIterator[Harness]:
    async with running(fake_slack, pool, openai_server) as harness:
        yield harness


async def parley_slack(pg_uri: str, tmp_path: Path, **tokens: str) -> tuple[int, str]:
    """`parley slack` as typed, against the fake Slack; its exit code and what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env.update(PYTHONPATH=str(ROOT), PARLEY_DATA_DIR=str(tmp_path), DATABASE_URL=pg_uri, PARLEY_MODEL="test",
               COLUMNS="200", **tokens)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "slack", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_parley_serve_names_a_bot_token_slack_refuses_at_start(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(fake_slack, pool, openai_server, bot_token="xoxb-revoked-long-ago") as slack:
        with caplog.at_level(logging.ERROR, logger="parley.server"):
            await check_slack_tokens(slack.adapter)
    [named] = [mask_sensitive(r.getMessage()).text for r in caplog.records if r.name == "parley.server"]
    assert named.startswith("Slack refused SLACK_BOT_TOKEN (invalid_auth)") and "OAuth & Permissions" in named
    assert "revoked-long-ago" not in named


async def test_parley_slack_with_a_bot_token_slack_refuses_stops_with_where_to_copy_it(
    fake_slack: FakeSlack, pg_uri: str, tmp_path: Path
) -> None:
    workspace = fake_slack.add_workspace()
    code, shown = await parley_slack(pg_uri, tmp_path, SLACK_API_URL=fake_slack.base_url,
                                     SLACK_BOT_TOKEN="xoxb-revoked-long-ago", SLACK_APP_TOKEN=workspace.app_token)
    assert code == 2, shown
    assert "SLACK_BOT_TOKEN=****: Slack refused it (invalid_auth)" in shown and "OAuth & Permissions" in shown
    assert "xoxb-revoked-long-ago" not in shown and "Traceback" not in shown


async def test_parley_slack_with_an_app_token_slack_refuses_stops_instead_of_retrying_for_good(
    fake_slack: FakeSlack, pg_uri: str, tmp_path: Path
) -> None:
    workspace = fake_slack.add_workspace()
    code, shown = await parley_slack(pg_uri, tmp_path, SLACK_API_URL=fake_slack.base_url,
                                     SLACK_BOT_TOKEN=workspace.token, SLACK_APP_TOKEN="xapp-1-A0-from-another-app")
    assert code == 2, shown
    assert "SLACK_APP_TOKEN=****: Slack refused it (invalid_auth)" in shown and "connections:write" in shown
    assert "from-another-app" not in shown and "Traceback" not in shown
