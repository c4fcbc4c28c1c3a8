"""Throwaway resources of one run: an embedded Postgres that is deleted afterwards, and a local web
server with the pages tool goldens fetch, so no golden needs the internet."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from aiohttp import web

from core.store.embedded import start_embedded
from core.store.migrations import migrate
from core.store.pool import create_pool

SANDBOX_PREFIX = "pe"


@asynccontextmanager
async def throwaway_database(*, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """A fresh embedded Postgres with every migration applied; stopped and deleted on exit.

    Its folder sits directly under /tmp: Postgres' socket path must stay short.
    """
    folder = Path(tempfile.mkdtemp(prefix=SANDBOX_PREFIX, dir="/tmp"))
    try:
        uri = await asyncio.to_thread(start_embedded, folder)
        await migrate(uri)
        pool = await create_pool(uri, max_size=max_size)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(_stop, folder)


def _stop(folder: Path) -> None:
    import pgserver

    pgdata = folder / "pg"
    if pgdata.exists():
        pgserver.get_server(pgdata).cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def serve_pages(folder: Path) -> AsyncIterator[str]:
    """Serve `folder` on 127.0.0.1; yields the base URL that replaces `{pages}` in tool goldens."""
    app = web.Application()
    if folder.is_dir():
        app.router.add_static("/", folder)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    port = sock.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
