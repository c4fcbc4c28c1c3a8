"""Security headers on every answer: the playground and admin page cannot be framed (their forget and
settings buttons would be clickjacking targets), run only their own scripts, are never read as another
type, and send no Referer (a sign-in link's token must not follow a click out of the page)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The pages' own policy: everything they load comes from this origin (the favicon is a data: URL)."""
DOCS_POLICY = "frame-ancestors 'none'"
"""FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN: they are only kept out of frames."""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_PAGE = [*_COMMON, (b"content-security-policy", PAGE_POLICY.encode())]
_DOCS = [*_COMMON, (b"content-security-policy", DOCS_POLICY.encode())]


class SecurityHeaders:
    """Pure ASGI (no buffering), so streamed answers pass through as they are sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _DOCS if scope["path"] in DOCS_PATHS else _PAGE

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
