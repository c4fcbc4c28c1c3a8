"""A pass-through proxy in front of a real model server that records every request body it forwards.

The real-model tests read what the server was sent (history in a follow-up, nothing for a blocked
message, plain-string content) without trusting Parley's own account of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.background import BackgroundApp


@dataclass
class RecordingProxy:
    upstream: str
    """The real server's root, e.g. http://127.0.0.1:8080 (no /v1)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: BackgroundApp = field(default_factory=lambda: BackgroundApp("recording-proxy"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> RecordingProxy:
        self.port = self._server.start(self._app)
        return self

    def stop(self) -> None:
        self._server.stop()

    def chats(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if body:
            self.requests.append(json.loads(body))
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"content-type", "authorization"}}
        timeout = aiohttp.ClientTimeout(total=900)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(request.method, f"{self.upstream}{request.rel_url}", data=body, headers=headers) as up,
        ):
            out = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out
