"""Writes that must not be lost when the database is briefly away (feedback during an outage).

Each write is retried in order, in the background, until it lands; `drain` waits for them at
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger("parley.outbox")
RETRYABLE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError,
             asyncpg.CannotConnectNowError, OSError,
             ConnectionError)
Write = Callable[[], Awaitable[object]]


@dataclass
class Outbox:
    retry_every_s: float = 1.0
    pending: deque[Write] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None

    def add(self, write: Write) -> None:
        self.pending.append(write)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            try:
                await self.pending[0]()
            except RETRYABLE as exc:
                log.warning("database still unavailable; %d write(s) waiting: %s", len(self.pending),
                            type(exc).__name__)
                await asyncio.sleep(self.retry_every_s)
                continue
            except Exception:
                log.exception("dropping a write that failed for a reason retrying cannot fix")
            self.pending.popleft()

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every pending write; True when none is left."""
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                return False
        return not self.pending
