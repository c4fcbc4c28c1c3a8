"""/v1/admin through a real uvicorn server: admin keys only; settings, limits, usage, feedback, refusals,
evaluation runs and the audit log as the admin page reads them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from adapters.api.deps import ApiConfig
from bot.server import create_app
from core.apikeys import create_api_key
from core.feedback import record_feedback
from core.guard.events import SafetyEvent, record_event
from core.models import UserKey
from core.pipeline import Pipeline
from tests.api_helpers import bearer, fake_model_settings, live_server, new_key
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline, message

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]
ADMIN_GETS = ["/v1/admin/settings?platform=slack&workspace_id=T1", "/v1/admin/limits", "/v1/admin/usage",
              "/v1/admin/audit", "/v1/admin/feedback", "/v1/admin/refusals", "/v1/admin/evals"]


@pytest.fixture(scope="module")
async def served(pool: asyncpg.Pool, fake_openai: FakeOpenAI) -> AsyncIterator[tuple[str, Pipeline]]:
    settings = fake_model_settings(fake_openai.base_url, parley_temperature=0.3)
    pipeline = build_pipeline(settings, pool)
    app = create_app(settings, pipeline, pool, config=ApiConfig(rate_per_min=1000, invalid_keys_per_min=1000))
    async with live_server(app) as url:
        yield url, pipeline


@pytest.fixture
async def client(served: tuple[str, Pipeline], openai_server: FakeOpenAI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[0], timeout=30) as http:
        yield http


@pytest.fixture
async def admin(pool: asyncpg.Pool) -> dict[str, str]:
    _, key = await create_api_key(pool, workspace_id="ops", name="ops", admin=True)
    return bearer(key)


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_an_ordinary_key_is_refused_on_admin_routes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, path: str
) -> None:
    _, key = await new_key(pool)
    refused = await client.get(path, headers=bearer(key))
    assert refused.status_code == 403 and refused.json()["error"] == "admin_only"
    assert (await client.get(path)).status_code == 401


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_an_admin_key_reads_every_admin_route(
    client: httpx.AsyncClient, admin: dict[str, str], path: str
) -> None:
    assert (await client.get(path, headers=admin)).status_code == 200


async def test_a_channel_setting_put_through_the_api_shows_its_layer_and_is_audited(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    body = {"platform": "slack", "workspace_id": ws, "channel_id": "C1", "key": "system_prompt", "value": "Be brief."}
    put = await client.put("/v1/admin/settings", json=body, headers=admin)
    assert put.status_code == 200
    shown = {s["key"]: s for s in put.json()["settings"]}
    assert (shown["system_prompt"]["value"], shown["system_prompt"]["source"]) == ("Be brief.", "channel")
    assert (shown["temperature"]["value"], shown["temperature"]["source"]) == (0.3, "environment")
    workspace_view = await client.get(f"/v1/admin/settings?platform=slack&workspace_id={ws}", headers=admin)
    assert {s["key"]: s["source"] for s in workspace_view.json()["settings"]}["system_prompt"] == "default"
    [entry] = (await client.get(f"/v1/admin/audit?workspace_id={ws}", headers=admin)).json()
    assert (entry["door"], entry["action"], entry["new_value"]) == ("api", "setting.set", "Be brief.")
    assert entry["actor"].startswith("apikey:")


async def test_a_bad_setting_value_is_a_422_that_says_what_is_allowed(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"platform": "slack", "workspace_id": "T1", "key": "temperature", "value": 9}
    refused = await client.put("/v1/admin/settings", json=body, headers=admin)
    assert refused.status_code == 422 and "0 to 2" in refused.json()["message"]


async def test_limits_are_set_listed_and_cleared_through_the_api(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    limit = {"platform": "slack", "workspace_id": ws, "scope": "channel", "subject": "C1", "metric": "usd",
             "period": "month", "amount": 12.5}
    assert (await client.put("/v1/admin/limits", json=limit, headers=admin)).status_code == 200
    assert (await client.get(f"/v1/admin/limits?workspace_id={ws}", headers=admin)).json() == [limit]
    query = f"platform=slack&workspace_id={ws}&scope=channel&subject=C1&metric=usd&period=month"
    assert (await client.delete(f"/v1/admin/limits?{query}", headers=admin)).status_code == 204
    assert (await client.delete(f"/v1/admin/limits?{query}", headers=admin)).status_code == 404


async def test_usage_feedback_and_refusals_report_what_happened(
    client: httpx.AsyncClient, admin: dict[str, str], pool: asyncpg.Pool, served: tuple[str, Pipeline]
) -> None:
    inbound = message("hello", workspace=f"w-{uuid.uuid4().hex[:8]}")
    reply = await served[1].run(inbound)
    assert reply.turn_id is not None
    await record_feedback(pool, platform=inbound.platform, workspace_id=inbound.workspace_id, user_id="U1",
                          turn_id=reply.turn_id, score=-1, source="-1")
    event_id = await record_event(pool, SafetyEvent(user=inbound.user, stage="input", rail="harm", action="blocked",
                                                    reason="r", excerpt="how do I ..."))
    usage = (await client.get("/v1/admin/usage?days=1", headers=admin)).json()["rows"]
    mine = [r for r in usage if r["workspace_id"] == inbound.workspace_id]
    assert [(r["channel_id"], r["user_id"], r["input_tokens"], r["unpriced_calls"]) for r in mine] == [
        ("C1", "U1", 12, 1)]
    feedback = (await client.get("/v1/admin/feedback", headers=admin)).json()
    assert any(t["turn_id"] == reply.turn_id and t["reply"] == "You said: hello" for t in feedback["worst"])
    assert feedback["days"][-1]["down"] >= 1
    marked = await client.post(f"/v1/admin/refusals/{event_id}/false-positive", headers=admin)
    assert marked.status_code == 204
    refusals = (await client.get("/v1/admin/refusals", headers=admin)).json()
    assert any(e["id"] == event_id and e["false_positive"] for e in refusals["events"])
    harm = [c for c in refusals["categories"] if c["rail"] == "harm"]
    assert harm and harm[0]["false_positives"] >= 1


async def test_marking_a_false_positive_is_audited_with_the_key_and_the_door(
    client: httpx.AsyncClient, admin: dict[str, str], pool: asyncpg.Pool
) -> None:
    user = UserKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:8]}", user_id="U1")
    event_id = await record_event(pool, SafetyEvent(user=user, stage="input", rail="harm", action="blocked",
                                                    reason="r", excerpt="how do I kill a process?"))
    assert (await client.post(f"/v1/admin/refusals/{event_id}/false-positive", headers=admin)).status_code == 204
    entries = (await client.get(f"/v1/admin/audit?workspace_id={user.workspace_id}", headers=admin)).json()
    assert [(e["action"], e["target"], e["old_value"], e["new_value"], e["door"]) for e in entries] == [
        ("refusal.false_positive", f"refusal {event_id} (harm)", False, True, "api")]
    assert entries[0]["actor"].startswith("apikey:")


async def test_the_page_signs_in_with_an_admin_key_only(
    client: httpx.AsyncClient, admin: dict[str, str], pool: asyncpg.Pool
) -> None:
    _, ordinary = await new_key(pool)
    refused = await client.post("/admin/session", json={"key": ordinary})
    assert refused.status_code == 403 and "parley_admin" not in refused.cookies
    signed = await client.post("/admin/session", json={"key": admin["Authorization"].split()[1]})
    assert signed.status_code == 204
    assert (await client.get("/v1/admin/usage")).status_code == 200
    ws = f"T{uuid.uuid4().hex[:8]}"
    body = {"platform": "slack", "workspace_id": ws, "key": "memory", "value": False}
    await client.put("/v1/admin/settings", json=body)
    [entry] = (await client.get(f"/v1/admin/audit?workspace_id={ws}")).json()
    assert entry["door"] == "admin page"
