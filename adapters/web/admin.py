"""Serves the admin page (/admin) and signs an operator in, two ways, each ending in an HttpOnly,
SameSite=Strict cookie that only /v1/admin reads:

- a one-time link from `parley admin link`: its token (an admin key named `admin-link`) is spent on first
  use, even when the sign-in fails, and traded for a fresh admin session key; the browser is redirected to
  the bare page, so the token stays in neither the address bar nor the history. A link not opened within its
  lifetime (core.apikeys.KEY_LIFETIMES) is spent unused: one left in a chat or a terminal's scrollback stops
  being an admin key;
- an admin key typed once into the page.

The page is three static files; everything it shows and changes goes through /v1/admin."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from adapters.api.deps import ADMIN_COOKIE, ApiState, StateDep, authenticated
from adapters.api.errors import ApiError
from adapters.web.app import STATIC, over_tls
from core.apikeys import (
    ADMIN_LINK,
    ADMIN_SESSION,
    KEY_LIFETIMES,
    ApiKeyInfo,
    Checked,
    authenticate,
    create_api_key,
    lapsed,
    revoke_api_key,
)
from core.audit import Actor

router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-cache"}


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=200)


@router.get("/admin", response_model=None)
async def page(request: Request, state: StateDep, token: str | None = None) -> Response:
    """The page; with `?token=`, first the one-time sign-in (the token is spent even when it fails or is late)."""
    if token is None:
        return FileResponse(STATIC / "admin.html", media_type="text/html", headers=_NO_STORE)
    link = (await _check(request, state, token)).key
    if link is None or link.name != ADMIN_LINK or not link.admin or not await revoke_api_key(
        state.pool, link.key_id, workspace_id=link.workspace_id, by=_by(link)
    ):
        return RedirectResponse("/admin#link=used", status_code=303, headers=_NO_STORE)
    if lapsed(link, datetime.now(UTC)) is not None:
        return RedirectResponse("/admin#link=expired", status_code=303, headers=_NO_STORE)
    signed_in = _by(link)
    _, session = await create_api_key(state.pool, workspace_id=link.workspace_id, name=ADMIN_SESSION, admin=True,
                                      by=signed_in)
    response = RedirectResponse("/admin", status_code=303, headers=_NO_STORE)
    _set_cookie(response, session, request)
    return response


@router.get("/admin.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "admin.js", media_type="text/javascript", headers=_NO_STORE)


@router.get("/admin.css")
async def style() -> FileResponse:
    return FileResponse(STATIC / "admin.css", media_type="text/css", headers=_NO_STORE)


@router.post("/admin/session", status_code=204)
async def sign_in(body: SignIn, request: Request, state: StateDep) -> Response:
    """An admin key in exchange for the page's cookie; 401 for an invalid key, 403 for an ordinary one."""
    key = await authenticated(request, state, body.key)
    if not key.admin:
        raise ApiError(403, "admin_only", "This key is not an admin key.",
                       "Make one with `parley apikey create --admin --workspace W`.")
    response = Response(status_code=204)
    _set_cookie(response, body.key, request)
    return response


@router.delete("/admin/session", status_code=204)
async def sign_out(request: Request, state: StateDep) -> Response:
    """Forget the cookie; a session key a one-time link made is revoked with it (a typed key stays valid)."""
    held = request.cookies.get(ADMIN_COOKIE)
    session = (await _check(request, state, held)).key if held else None
    if session is not None and session.name == ADMIN_SESSION:
        await revoke_api_key(state.pool, session.key_id, workspace_id=session.workspace_id, by=_by(session))
    response = Response(status_code=204)
    response.delete_cookie(ADMIN_COOKIE, httponly=True, samesite="strict")
    return response


def _by(key: ApiKeyInfo) -> Actor:
    """The audit log's actor for what a link or a session does on the page: the key, through the page."""
    return Actor(who=f"apikey:{key.key_id} ({key.name})", door="admin page")


def _set_cookie(response: Response, key: str, request: Request) -> None:
    lifetime = int(KEY_LIFETIMES[ADMIN_SESSION].total_seconds())
    response.set_cookie(ADMIN_COOKIE, key, max_age=lifetime, httponly=True, samesite="strict", secure=over_tls(request))


async def _check(request: Request, state: ApiState, key: str) -> Checked:
    return await authenticate(
        state.pool,
        key,
        address=request.client.host if request.client else "unknown",
        per_key=state.config.rate_per_min,
        invalid_per_address=state.config.invalid_keys_per_min,
    )
