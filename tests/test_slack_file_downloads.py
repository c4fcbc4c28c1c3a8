"""Slack file downloads against a real HTTP server: where the bot token and the download may go."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from adapters.slack.events import SlackFile
from adapters.slack.files import OFF_HOST, download_all


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, str | None]]]]:
    """Serves /file, /hop (a redirect to /file on the same host) and /away (a redirect to `localhost`,
    standing for an internal address); records every request with the Authorization it carried."""
    seen: list[tuple[str, str | None]] = []
    port = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((f"{request.host.split(':')[0]}{request.path}", request.headers.get("Authorization")))
        if request.path == "/hop":
            raise web.HTTPFound("/file")
        if request.path == "/away":
            raise web.HTTPFound(f"http://localhost:{port}/internal")
        return web.Response(body=b"the launch is on Friday", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def fetch(url: str) -> object:
    """One file through a client that follows redirects, as the Slack app's does."""
    async with httpx.AsyncClient(follow_redirects=True) as http:
        done = await download_all(
            [SlackFile(id="F1", name="notes.txt", url=url, size=None, mimetype="text/plain")],
            http=http, token="xoxb-secret", max_bytes=1000, extra_hosts=frozenset({"127.0.0.1"}),
        )
    return done.failures[0].reason if done.failures else done.attachments[0].data


async def test_a_redirect_off_the_file_hosts_is_refused_not_followed(
    server: tuple[str, list[tuple[str, str | None]]],
) -> None:
    base, seen = server
    assert await fetch(f"{base}/away") == OFF_HOST
    assert seen == [("127.0.0.1/away", "Bearer xoxb-secret")]


async def test_a_redirect_between_file_hosts_is_followed_with_the_token(
    server: tuple[str, list[tuple[str, str | None]]],
) -> None:
    base, seen = server
    assert await fetch(f"{base}/hop") == b"the launch is on Friday"
    assert seen == [("127.0.0.1/hop", "Bearer xoxb-secret"), ("127.0.0.1/file", "Bearer xoxb-secret")]
