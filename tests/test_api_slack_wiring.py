"""`parley serve` includes the Slack adapter's POST /slack/events when Slack is configured, and says
in the log why not otherwise."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import asyncpg
import httpx
import pytest

from bot.server import create_app, slack_adapter
from tests.api_helpers import fake_model_settings
from tests.pipeline_helpers import build_pipeline

SIGNING_SECRET = "test-signing-secret"


async def test_without_a_signing_secret_the_slack_endpoint_is_off_and_logged(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fake_model_settings(None)
    with caplog.at_level(logging.INFO, logger="parley.server"):
        adapter = slack_adapter(settings, build_pipeline(settings, pool), pool)
    assert adapter is None
    assert "Slack endpoint off: SLACK_SIGNING_SECRET not set" in caplog.text
    app = create_app(settings, build_pipeline(settings, pool), pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        assert (await http.post("/slack/events", json={})).status_code == 404


async def test_with_slack_settings_the_events_endpoint_answers_signed_requests(pool: asyncpg.Pool) -> None:
    settings = fake_model_settings(
        None, slack_signing_secret=SIGNING_SECRET, slack_bot_token="xoxb-test", slack_api_url="http://127.0.0.1:9/api/"
    )
    pipeline = build_pipeline(settings, pool)
    adapter = slack_adapter(settings, pipeline, pool)
    assert adapter is not None
    app = create_app(settings, pipeline, pool, extra_routers=[adapter.router])
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
    stamp = str(int(time.time()))
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        signed = await http.post("/slack/events", content=body, headers=headers)
        forged = await http.post("/slack/events", content=body, headers={**headers, "X-Slack-Signature": "v0=00"})
    assert signed.status_code == 200 and signed.json() == {"challenge": "c-123"}
    assert forged.status_code == 401
