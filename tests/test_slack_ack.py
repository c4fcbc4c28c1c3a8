"""Slack acks before any work the ack does not need (issue #22): an Events API request is answered
as soon as its signature is checked, before Bolt looks the workspace up in the database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation

from adapters.slack.installation import PostgresInstallationStore
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack, mention
from tests.test_slack_e2e import running

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]


async def test_an_event_is_acknowledged_before_its_workspace_is_looked_up(
    fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    looking_up, release = asyncio.Event(), asyncio.Event()
    find_bot = PostgresInstallationStore.async_find_bot

    async def slow_find_bot(self: PostgresInstallationStore, **kwargs: Any) -> Any:
        looking_up.set()
        await release.wait()
        return await find_bot(self, **kwargs)

    monkeypatch.setattr(PostgresInstallationStore, "async_find_bot", slow_find_bot)
    client_id = f"cid-{uuid.uuid4().hex[:6]}"
    async with running(fake_slack, pool, openai_server, client_id=client_id, client_secret="csecret") as slack:
        installed = fake_slack.add_workspace()
        await PostgresInstallationStore(pool, client_id=client_id).async_save(
            Installation(user_id="UINSTALLER", team_id=installed.team_id, bot_token=installed.token,
                         bot_id="B1", bot_user_id=installed.bot_user_id, installed_at=datetime.now(UTC).timestamp())
        )
        channel, ts = f"C{uuid.uuid4().hex[:9].upper()}", slack.ts()
        sent = await slack.sender.event(installed, mention(installed, channel=channel, user="UALICE", text="hi", ts=ts))
        assert sent.response.status_code == 200
        await asyncio.wait_for(looking_up.wait(), 10)
        assert slack.thread(channel, ts) == []  # acknowledged while the lookup was still waiting
        release.set()
        await slack.settle()
        assert slack.thread(channel, ts) == ["You said: hi"]
