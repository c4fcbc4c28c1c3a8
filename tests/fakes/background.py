"""An aiohttp application served from its own thread and event loop on 127.0.0.1.

Fakes run this way so that sync tests, async tests on another loop, and subprocesses can all
reach them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class BackgroundApp:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(
        self,
        build: Callable[[], web.Application],
        *,
        port: int = 0,
        before_close: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Serve the application `build` makes; return the port it listens on."""
        self._before_close = before_close
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._serve(build(), port))
            except BaseException as exc:
                failed.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=self.name)
        self._thread.start()
        if not ready.wait(10) or failed:
            raise RuntimeError(f"{self.name} did not start") from (failed[0] if failed else None)
        return self.port

    async def _serve(self, app: web.Application, port: int) -> None:
        # A request still in flight at shutdown belongs to a client that is gone (a test kills a process
        # mid-answer while the fake model sleeps 60 s): waiting the default 60 s for it outlasts `call`.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = self._runner.addresses[0][1]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        """Run a coroutine on the server's loop from another thread and wait for it."""
        assert self.loop is not None, f"{self.name} is not running"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is None or self._runner is None:
            return
        self.call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self.loop.close()
        self.loop = None

    async def _close(self) -> None:
        if self._before_close is not None:
            await self._before_close()
        assert self._runner is not None
        await self._runner.cleanup()
        # A handler still answering past the shutdown timeout (a `Hang` for a client that is gone) is cancelled
        # and awaited here: a loop closed with it pending logged "Task was destroyed but it is pending".
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
