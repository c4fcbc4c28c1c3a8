"""/v1/admin: the operator's API (admin keys only) and what the /admin page shows: settings per workspace
and channel, spend limits, usage and cost, feedback, refusals, evaluation runs and the audit log.

Reads go across workspaces on the operator's pool; every change runs in its workspace's scope and is
audited with the key's id and the door it came through (`api` with a bearer key, `admin page` with the
page's cookie)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from adapters.api.admin_schemas import (
    ID,
    OPTIONAL_ID,
    FeedbackReport,
    LimitBody,
    RefusalReport,
    SettingChange,
    SettingKey,
    SettingsOut,
    SettingValue,
    UsageOut,
)
from adapters.api.deps import AdminDep, ApiState, StateDep
from adapters.api.errors import ApiError, documented
from core import admin_reports, limits
from core.apikeys import ApiKeyInfo
from core.audit import Actor, AuditEntry, Door, list_entries
from core.channel_settings import BUILTIN, UnknownSetting, describe, resolve_all
from core.guard.events import list_events, mark_false_positive
from core.models import WorkspaceKey
from core.store.pool import Pool
from core.workspace import load_layers, set_override, unset_override

router = APIRouter(prefix="/v1/admin", tags=["admin"])
ADMIN = documented(401, 403, 422, 429)
Platform = Annotated[str, Query(pattern=ID, examples=["slack"])]
Workspace = Annotated[str, Query(pattern=ID, examples=["T0123"])]
Channel = Annotated[str, Query(pattern=OPTIONAL_ID, description="A channel id; '' for the workspace.")]
SinceDays = Annotated[int, Query(ge=1, le=400, description="How many days back.")]


# -- settings ---------------------------------------------------------------------------------
@router.get("/settings", response_model=SettingsOut, responses=ADMIN)
async def get_settings(
    _: AdminDep, state: StateDep, platform: Platform, workspace_id: Workspace, channel_id: Channel = ""
) -> SettingsOut:
    """Every setting's effective value for a workspace or one of its channels, and the layer it comes from."""
    return await _settings(state, WorkspaceKey(platform=platform, workspace_id=workspace_id), channel_id)


@router.put("/settings", response_model=SettingsOut, responses=ADMIN)
async def put_setting(body: SettingChange, key: AdminDep, state: StateDep, request: Request) -> SettingsOut:
    """Set a value for a workspace (`channel_id` '') or one of its channels."""
    workspace = WorkspaceKey(platform=body.platform, workspace_id=body.workspace_id)
    try:
        await set_override(_pool(state), workspace, body.key, body.value, by=_actor(request, key),
                           channel_id=body.channel_id)
    except UnknownSetting as exc:
        raise ApiError(422, "invalid_setting", str(exc), "Send a value of the kind the key takes.") from None
    return await _settings(state, workspace, body.channel_id)


@router.delete("/settings", response_model=SettingsOut, responses=ADMIN)
async def delete_setting(
    key: AdminDep, state: StateDep, request: Request, platform: Platform, workspace_id: Workspace,
    setting: Annotated[SettingKey, Query(alias="key")], channel_id: Channel = "",
) -> SettingsOut:
    """Remove a value; the next layer applies again."""
    workspace = WorkspaceKey(platform=platform, workspace_id=workspace_id)
    await unset_override(_pool(state), workspace, setting, by=_actor(request, key), channel_id=channel_id)
    return await _settings(state, workspace, channel_id)


async def _settings(state: ApiState, workspace: WorkspaceKey, channel_id: str) -> SettingsOut:
    layers = await load_layers(_pool(state), workspace, channel_id)
    effective = resolve_all(channel=layers.channel, workspace=layers.workspace, environment=state.environment)
    return SettingsOut(
        platform=workspace.platform,
        workspace_id=workspace.workspace_id,
        channel_id=channel_id,
        settings=[
            SettingValue(key=k, value=e.value, source=e.source, description=describe(k), builtin=BUILTIN.get(k))
            for k, e in effective.items()
        ],
    )


# -- limits -----------------------------------------------------------------------------------
@router.get("/limits", response_model=list[LimitBody], responses=ADMIN)
async def get_limits(
    _: AdminDep, state: StateDep, platform: Annotated[str | None, Query(pattern=ID)] = None,
    workspace_id: Annotated[str | None, Query(pattern=ID)] = None,
) -> list[LimitBody]:
    """Every spend limit, optionally of one workspace."""
    found = await limits.list_limits(_pool(state), platform=platform, workspace_id=workspace_id)
    return [LimitBody(**asdict(limit)) for limit in found]


@router.put("/limits", response_model=LimitBody, responses=ADMIN)
async def put_limit(body: LimitBody, key: AdminDep, state: StateDep, request: Request) -> LimitBody:
    """Create or change a limit."""
    limit = limits.SpendLimit(**body.model_dump())
    try:
        await limits.set_limit(_pool(state), _workspace(limit), limit, by=_actor(request, key))
    except ValueError as exc:
        raise ApiError(422, "invalid_limit", str(exc), "A workspace limit has subject ''; others name one.") from None
    return body


@router.delete("/limits", status_code=204, responses=documented(401, 403, 404, 422, 429))
async def delete_limit(
    key: AdminDep, state: StateDep, request: Request, platform: Platform, workspace_id: Workspace,
    scope: Annotated[limits.Scope, Query()], metric: Annotated[limits.Metric, Query()],
    period: Annotated[limits.Period, Query()], subject: Annotated[str, Query(pattern=OPTIONAL_ID)] = "",
) -> Response:
    """Remove a limit."""
    limit = limits.SpendLimit(platform=platform, workspace_id=workspace_id, scope=scope, subject=subject,
                              metric=metric, period=period, amount=0)
    if await limits.clear_limit(_pool(state), _workspace(limit), limit, by=_actor(request, key)) is None:
        raise ApiError(404, "limit_not_found", f"No {limits.describe(limit)} limit in {platform}/{workspace_id}.",
                       "GET /v1/admin/limits lists the limits in force.")
    return Response(status_code=204)


# -- reports ----------------------------------------------------------------------------------
@router.get("/usage", response_model=UsageOut, responses=ADMIN)
async def get_usage(_: AdminDep, state: StateDep, days: SinceDays = 30) -> UsageOut:
    """Model calls, tokens and cost by day, workspace, channel, person and model."""
    since = _since(days)
    rows = await admin_reports.usage_by_day(_pool(state), since)
    return UsageOut(since=since, rows=rows)


@router.get("/audit", response_model=list[AuditEntry], responses=ADMIN)
async def get_audit(
    _: AdminDep, state: StateDep, days: SinceDays = 30,
    platform: Annotated[str | None, Query(pattern=ID)] = None,
    workspace_id: Annotated[str | None, Query(pattern=ID)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AuditEntry]:
    """Changes of settings, limits and keys, forget requests and false-positive marks; newest first."""
    return await list_entries(_pool(state), since=_since(days), platform=platform, workspace_id=workspace_id,
                              limit=limit)


@router.get("/feedback", response_model=FeedbackReport, responses=ADMIN)
async def get_feedback(_: AdminDep, state: StateDep, days: SinceDays = 30) -> FeedbackReport:
    """Ratings per day and the worst-rated turns."""
    pool, since = _pool(state), _since(days)
    return FeedbackReport(
        days=await admin_reports.feedback_by_day(pool, since), worst=await admin_reports.worst_turns(pool, since)
    )


@router.get("/refusals", response_model=RefusalReport, responses=ADMIN)
async def get_refusals(_: AdminDep, state: StateDep, days: SinceDays = 30) -> RefusalReport:
    """Refusals per guard category, with the operator's false-positive marks, and the latest refusals."""
    pool, since = _pool(state), _since(days)
    events = [e for e in await list_events(pool, since, limit=500) if e.action == "blocked"][:100]
    return RefusalReport.model_validate({
        "categories": await admin_reports.refusals_by_category(pool, since),
        "events": [
            {"id": e.id, "platform": e.user.platform, "workspace_id": e.user.workspace_id, "stage": e.stage,
             "rail": e.rail, "action": e.action, "reason": e.reason, "excerpt": e.excerpt,
             "created_at": e.created_at, "false_positive": e.false_positive}
            for e in events
        ],
    })


@router.post("/refusals/{event_id}/false-positive", status_code=204, responses=documented(401, 403, 404, 422, 429))
async def mark_refusal(
    event_id: Annotated[int, Path(ge=1, le=2**62)], key: AdminDep, state: StateDep, request: Request
) -> Response:
    """Mark a refusal as a mistake (it then feeds the guard's development set); the audit log records who."""
    if not await mark_false_positive(_pool(state), event_id, by=_actor(request, key)):
        raise ApiError(404, "refusal_not_found", f"No refusal with id {event_id}.",
                       "GET /v1/admin/refusals lists the refusals and their ids.")
    return Response(status_code=204)


@router.get("/evals", response_model=list[admin_reports.EvalRunSummary], responses=ADMIN)
async def get_evals(
    _: AdminDep, state: StateDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[admin_reports.EvalRunSummary]:
    """The latest evaluation runs (`parley eval run`) and their metric scores, newest first."""
    return await admin_reports.eval_runs(_pool(state), limit=limit)


def _pool(state: ApiState) -> Pool:
    return state.admin_pool or state.pool


def _actor(request: Request, key: ApiKeyInfo) -> Actor:
    door: Door = "api" if request.headers.get("authorization") else "admin page"
    return Actor(who=f"apikey:{key.key_id}" + (f" ({key.name})" if key.name else ""), door=door)


def _workspace(limit: limits.SpendLimit) -> WorkspaceKey:
    return WorkspaceKey(platform=limit.platform, workspace_id=limit.workspace_id)


def _since(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
