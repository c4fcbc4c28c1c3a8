"""Serves the playground's three static files; everything it does goes through /v1 with an API key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-cache"}


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_STORE)


@router.get("/playground.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "playground.js", media_type="text/javascript", headers=_NO_STORE)


@router.get("/playground.css")
async def style() -> FileResponse:
    return FileResponse(STATIC / "playground.css", media_type="text/css", headers=_NO_STORE)
