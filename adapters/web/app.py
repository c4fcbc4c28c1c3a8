"""Serves the playground's three static files and signs a browser in; everything the page does goes
through /v1 with an API key.

Signing in works as Jupyter's does: `parley serve` prints a link carrying a one-time token (an API key
named `playground-link`); opening it trades the token for a fresh session key in an HttpOnly,
SameSite=Strict cookie and redirects to the bare page, so the token never stays in the address bar or
the history. The API is never keyless: a page on another site cannot send that cookie, and the
server's Host check (bot/server.py) keeps DNS-rebinding pages out.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from adapters.api.deps import SESSION_COOKIE, KeyDep, StateDep
from core.apikeys import KEY_LIFETIMES, PLAYGROUND_SESSION, authenticate, create_api_key, revoke_api_key

STATIC = Path(__file__).parent / "static"
LINK_KEY_NAME = "playground-link"
router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-cache"}


@router.get("/", response_model=None)
async def index(request: Request, state: StateDep, token: str | None = None) -> Response:
    """The page; with `?token=`, first the one-time sign-in (the token is spent even when it fails, unless
    this address is refused for sending too many invalid keys: then it is never looked up)."""
    if token is None:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_STORE)
    checked = await authenticate(
        state.pool,
        token,
        address=request.client.host if request.client else "unknown",
        per_key=state.config.rate_per_min,
        invalid_per_address=state.config.invalid_keys_per_min,
    )
    key = checked.key
    if key is None and checked.wait_s:
        # Refused before the lookup: the link is not spent, and saying "used" would send them to restart.
        return RedirectResponse(f"/#link=wait-{math.ceil(checked.wait_s)}", status_code=303, headers=_NO_STORE)
    if key is None or key.name != LINK_KEY_NAME or not await revoke_api_key(
        state.pool, key.key_id, workspace_id=key.workspace_id
    ):
        return RedirectResponse("/#link=used", status_code=303, headers=_NO_STORE)
    _, session = await create_api_key(
        state.pool, workspace_id=key.workspace_id, name=PLAYGROUND_SESSION, user_id=key.user_id
    )
    response = RedirectResponse("/", status_code=303, headers=_NO_STORE)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(KEY_LIFETIMES[PLAYGROUND_SESSION].total_seconds()),
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
    )
    return response


def over_tls(request: Request) -> bool:
    """Whether the browser reached Parley over https, directly or through a TLS-terminating proxy (Fly's
    is not an address uvicorn trusts, so the scheme it sees is http): the cookie is then Secure, never
    sent over plain http. A forged header only makes a cookie stricter."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


@router.get("/playground/status")
async def status(request: Request, _: KeyDep) -> list[dict[str, object]]:
    """The doctor's cheap checks (configuration, model, database), for the page's header."""
    checks = await request.app.state.status()
    return [asdict(check) for check in checks]


@router.get("/playground.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "playground.js", media_type="text/javascript", headers=_NO_STORE)


@router.get("/playground.css")
async def style() -> FileResponse:
    return FileResponse(STATIC / "playground.css", media_type="text/css", headers=_NO_STORE)
