"""Secrets planted in configuration, requests and messages never reach logs, spans or responses;
logs are JSON lines carrying request, workspace and trace ids; spans cover requests, pipeline
stages, model calls and database queries (properties 8, 36, 37, 42)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import pytest

from bot.app import Seams
from bot.server import create_app
from core.guard.masking import mask_sensitive
from core.models import UserKey
from core.seams import NoMedia, NoMemory, Verdict
from tests.api_helpers import bearer, fake_model_settings, new_key
from tests.captured_telemetry import Captured
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline

OPENAI_KEY = "sk-proj-PLANTEDopenaiKEY0123456789abcdef"
SLACK_TOKEN = "xoxb-1111111111-2222222222-PLANTEDslackTOKENabc"
USER_SECRET = "sk-live-PLANTEDuserSECRET9876543210zyxw"
USER_TOKEN = "xoxp-3333333333-4444444444-PLANTEDuserTOKENdef"
PLANTED = (OPENAI_KEY, SLACK_TOKEN, USER_SECRET, USER_TOKEN)


class MaskingGuard:
    """The guard seam's masking contract (secrets and PII masked before a model sees them), without
    NeMo's flows: enough to show the masked text is what flows on to replies."""

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        return Verdict(blocked=False, text=mask_sensitive(text).text)

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        return Verdict(blocked=False, text=mask_sensitive(text).text)




@pytest.fixture
async def http(pool: asyncpg.Pool, openai_server: FakeOpenAI, captured: Captured) -> AsyncIterator[httpx.AsyncClient]:
    settings = fake_model_settings(openai_server.base_url, openai_api_key=OPENAI_KEY, slack_bot_token=SLACK_TOKEN)
    seams = Seams(media=NoMedia(), guard=MaskingGuard(), memory=NoMemory())
    app = create_app(settings, build_pipeline(settings, pool, seams=seams), pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


async def test_planted_secrets_never_reach_logs_spans_or_responses(
    http: httpx.AsyncClient, pool: asyncpg.Pool, captured: Captured, openai_server: FakeOpenAI
) -> None:
    _, key = await new_key(pool)
    message = f"deploy with {USER_SECRET} and post with {USER_TOKEN}"
    attachment = base64.b64encode(f"config: token={USER_TOKEN}".encode()).decode()
    responses = [
        await http.post("/v1/chat", headers=bearer(key),
                        json={"message": message, "attachments": [{"name": "cfg.txt", "data": attachment}]}),
        await http.post("/v1/chat/stream", headers=bearer(key), json={"message": message}),
        await http.get("/v1/capabilities", headers={"Authorization": f"Bearer {USER_SECRET}"}),
        await http.get("/v1/capabilities", headers={**bearer(key), "X-Request-ID": USER_SECRET}),
        await http.post("/v1/chat", headers=bearer(key), json={"message": USER_SECRET, "session_id": USER_TOKEN}),
        await http.post("/v1/chat", headers=bearer(key), json={"message": 7, "user_id": USER_SECRET}),
        await http.get("/openapi.json"),
        await http.get("/metrics"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 200, 422, 422, 200, 200]
    assert "[SECRET]" in responses[0].json()["reply"]
    answered = "\n".join(r.text + json.dumps(dict(r.headers)) for r in responses)
    logs = captured.logs.getvalue()
    assert sum(line["message"] == "turn done" for line in captured.log_lines()) == 2
    assert len(captured.spans.get_finished_spans()) > 20
    spans = captured.span_text()
    for secret in PLANTED:
        assert secret not in answered
        assert secret not in logs
        assert secret not in spans, [line[:300] for line in spans.splitlines() if secret in line]
    assert key not in logs and key not in spans


async def test_logs_are_json_lines_with_request_workspace_and_trace_ids(
    http: httpx.AsyncClient, pool: asyncpg.Pool, captured: Captured
) -> None:
    workspace, key = await new_key(pool)
    response = await http.post("/v1/chat", headers={**bearer(key), "X-Request-ID": "req-123"}, json={"message": "hi"})
    assert response.headers["x-request-id"] == "req-123"
    lines = captured.log_lines()
    turn = next(line for line in lines if line["message"] == "turn done")
    access = next(line for line in lines if line["logger"] == "parley.http" and line.get("request_id") == "req-123")
    assert turn["request_id"] == "req-123" and turn["workspace"] == workspace
    assert turn["outcome"] == "answered" and turn["latency_ms"] > 0
    assert len(turn["trace_id"]) == 32 and turn["trace_id"] == access["trace_id"]
    assert access["status"] == 200 and access["workspace"] == workspace and access["duration_ms"] > 0
    assert {"time", "level", "logger", "message"} <= set(turn)


async def test_spans_cover_the_request_pipeline_stages_model_call_and_database_queries(
    http: httpx.AsyncClient, pool: asyncpg.Pool, captured: Captured
) -> None:
    _, key = await new_key(pool)
    await http.post("/v1/chat", headers=bearer(key), json={"message": "what is 2+2?"})
    spans = captured.spans.get_finished_spans()
    names = {s.name for s in spans}
    assert {"turn", "dedupe", "media", "input_rails", "context", "agent", "output_rails", "persist"} <= names
    assert any(name.startswith("POST /v1/chat") for name in names)
    assert any("chat" in name and "fake" in name for name in names), names
    queries = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert queries and all("db.statement.parameters" not in (s.attributes or {}) for s in queries)
    turn = next(s for s in spans if s.name == "turn")
    assert len({s.context.trace_id for s in spans if s.name in {"turn", "agent", "persist"}}) == 1
    assert float(str((turn.attributes or {})["latency_ms"])) > 0


async def test_errors_are_one_line_with_code_turn_cause_and_context(
    http: httpx.AsyncClient, pool: asyncpg.Pool, captured: Captured, openai_server: FakeOpenAI
) -> None:
    from tests.fakes.openai_server import Error

    workspace, key = await new_key(pool)
    openai_server.queue(Error(401, message=f"invalid key {OPENAI_KEY}"))
    body = (await http.post("/v1/chat", headers=bearer(key), json={"message": "hi"})).json()
    assert body["error"]
    failure = next(line for line in captured.log_lines() if line["message"].startswith("model_auth_failed: "))
    assert failure["level"] == "ERROR" and "HTTP 401" in failure["message"] and failure["turn_id"]
    assert f"(turn {failure['turn_id']})" in failure["message"] and "stack" not in failure
    assert failure["workspace"] == workspace and failure["platform"] == "api"
    assert OPENAI_KEY not in captured.logs.getvalue()
