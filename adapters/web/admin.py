"""Serves the admin page (/admin) and signs an operator in: an admin key, typed once, traded for an
HttpOnly, SameSite=Strict cookie that only /v1/admin reads. The page is three static files; everything
it shows and changes goes through /v1/admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from adapters.api.deps import ADMIN_COOKIE, StateDep, authenticated
from adapters.api.errors import ApiError
from adapters.web.app import STATIC

router = APIRouter(include_in_schema=False)
SESSION_HOURS = 12
_NO_STORE = {"Cache-Control": "no-cache"}


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=200)


@router.get("/admin")
async def page() -> FileResponse:
    return FileResponse(STATIC / "admin.html", media_type="text/html", headers=_NO_STORE)


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
    response.set_cookie(ADMIN_COOKIE, body.key, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.delete("/admin/session", status_code=204)
async def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(ADMIN_COOKIE, httponly=True, samesite="strict")
    return response
