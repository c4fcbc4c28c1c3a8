"""Every failure answered the same way: a status, a code, what went wrong and what to do (property 53)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.api.schemas import ErrorBody, FieldProblem
from core.outbox import RETRYABLE
from core.store.pool import DiskFull, StorageFailing

log = logging.getLogger("parley.api")


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as an `ErrorBody`."""

    def __init__(
        self, status: int, error: str, message: str, fix: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=error, message=message, fix=fix)
        self.headers = dict(headers or {})


def error_response(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=dict(headers or {}))


# The responses each protected route documents in /openapi.json.
DATABASE_RETRY_AFTER_S = 5
DATABASE_AWAY = ErrorBody(
    error="database_unavailable",
    message="The database cannot be reached right now; nothing was stored or changed.",
    fix="Retry after the seconds in Retry-After; if it lasts, an operator should check the database.",
)


STORAGE_RETRY_AFTER_S = 60
STORAGE_FULL = ErrorBody(
    error="storage_full",
    message="The database's disk is full, so nothing can be stored; nothing was changed.",
    fix="Retry later. An operator should free space on the disk that holds the database (PARLEY_DATA_DIR for the "
        "embedded one: `df -h`); Parley works again as soon as there is room, without a restart.",
)
STORAGE_FAILING = ErrorBody(
    error="storage_error",
    message="The database could not read or write its files; nothing was changed.",
    fix="Retry later. An operator should check the disk that holds the database (its log names the file; "
        "PARLEY_DATA_DIR for the embedded one): full, read-only or failing.",
)
STORAGE_ERRORS: tuple[tuple[type[Exception], ErrorBody], ...] = (
    (DiskFull, STORAGE_FULL),
    (StorageFailing, STORAGE_FAILING),
)
"""Storage failures that no retry of the request fixes until an operator acts, but that are not Parley's bugs: a 503
naming the disk, not a 500 asking to look for a bug in the log."""


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        401: "Missing or invalid API key",
        403: "Not for this key: an admin key is needed (`parley apikey create --admin`), or the key acts only for "
             "another user (`--user`)",
        409: "Already answered (same Idempotency-Key)",
        404: "Not found",
        413: "Request body too large",
        422: "Invalid request body or parameters",
        429: "Rate limit reached (see Retry-After)",
        503: "Overloaded (load shedding), shutting down, database unreachable or its disk full; see Retry-After",
    }
    return {s: {"model": ErrorBody, "description": texts[s]} for s in statuses}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into an `ErrorBody`. An unexpected exception is answered by the
    `Unexpected` middleware, not an exception handler for `Exception`: Starlette re-raises after such a handler, so
    uvicorn logged every one a second time ("Exception in ASGI application"), a handled 503 included."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The body is validated once per dependency that reads it (the route and the caller check): each
        # problem is listed once.
        found = {
            (".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", "invalid"))): None
            for e in jsonable_encoder(exc.errors())
        }
        problems = [FieldProblem(field=field, problem=problem) for field, problem in found]
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:5])
        body = ErrorBody(
            error="invalid_request",
            message=f"The request is not valid ({summary}).",
            fix="Correct the fields listed in `fields` and send the request again; /openapi.json has the schema.",
            fields=problems,
        )
        return error_response(422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        fixes = {
            404: ("not_found", "Check the URL; /openapi.json lists every endpoint."),
            405: ("method_not_allowed", "Use a method this endpoint accepts; /openapi.json lists them."),
        }
        code, fix = fixes.get(exc.status_code, ("http_error", "See /openapi.json for how to call this endpoint."))
        body = ErrorBody(error=code, message=str(exc.detail), fix=fix)
        return error_response(exc.status_code, body, getattr(exc, "headers", None))

    app.add_middleware(Unexpected)


def unexpected_response(path: str, exc: Exception) -> JSONResponse:
    """The answer to an exception no route handled, logged once: a lost database or a storage failure is a 503
    with Retry-After, anything else a 500."""
    if isinstance(exc, RETRYABLE):
        log.warning("database unavailable (%s)", type(exc).__name__, extra={"path": path})
        return error_response(503, DATABASE_AWAY, {"Retry-After": str(DATABASE_RETRY_AFTER_S)})
    for kind, body in STORAGE_ERRORS:
        if isinstance(exc, kind):
            log.error("%s: %s (%s)", body.error, exc, type(exc).__name__, extra={"path": path})
            return error_response(503, body, {"Retry-After": str(STORAGE_RETRY_AFTER_S)})
    log.error("request failed", exc_info=exc, extra={"path": path})
    body = ErrorBody(
        error="internal_error",
        message=f"Something went wrong on the server ({type(exc).__name__}); it has been logged.",
        fix="Try again; if it keeps happening, an operator can find the error in the server log.",
    )
    return error_response(500, body)


class Unexpected:
    """Answers an exception that escaped every route and handler (`unexpected_response`) and does not raise it
    further. Once a response has started nothing can be answered: the exception goes on to the server, which logs
    it (once, as nothing here did)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as exc:
            if started:
                raise
            await unexpected_response(scope["path"], exc)(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413: by Content-Length at once, or for a chunked body
    by counting as the route reads it, so no body is ever buffered here (a route with a smaller cap of
    its own, such as /slack/events, stops reading at its cap)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        size = 0
        started = refused = False

        async def counting() -> Message:
            # Past the limit: answer 413 now and tell the route the client went away; whatever the
            # route then tries to send is dropped.
            nonlocal size, refused
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def watching(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting, watching)

    async def _refuse(self, send: Send) -> None:
        mb = self.max_bytes / 1024 / 1024
        body = ErrorBody(
            error="body_too_large",
            message=f"The request body is larger than this server accepts ({mb:.1f} MB).",
            fix="Send smaller or fewer attachments, or ask the operator to raise PARLEY_MAX_FILE_MB.",
        )
        payload = json.dumps(body.model_dump(mode="json")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


