"""This process's identity in the database, for exactly-once replies across crashes.

A serving process takes a number from the `parley_instances` sequence and holds the session-level
advisory lock (INSTANCE_LOCK_CLASS, number) on a connection of its own for its whole life. Postgres
releases that lock the moment the process dies (kill -9 included) or loses its connection, so any
instance can tell with `parley_instance_alive(n)` whether instance n is still there: a claim on an
event records its owner, and a retry of an unfinished event whose owner is gone takes it over
(core/turns.py). The same lock lets a sweeper close turns a dead process left `started`.

If the lock connection drops while this process lives, other instances may take over its unfinished
events: the process logs it and takes a new number, so its later turns are guarded again.

The same connection keeps a young database's statistics current: every few seconds it analyzes the
tables that have doubled since they were last analyzed (migration 0025), so the first minutes of a new
install are not served on plans made without statistics while autovacuum waits for its next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger("parley.instance")
INSTANCE_LOCK_CLASS = 1885434476
"""The first key of every instance lock ('parl'); must match migration 0010."""
SWEEP_EVERY_S = 60.0
ANALYZE_EVERY_S = 5.0


@dataclass
class Instance:
    """The lock-holding connection, the periodic sweep of orphaned turns and of young tables' statistics."""

    uri: str
    application_name: str | None = None
    sweep_every_s: float = SWEEP_EVERY_S
    analyze_every_s: float = ANALYZE_EVERY_S
    number: int | None = None
    _conn: asyncpg.Connection | None = field(default=None, repr=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)
    _closing: bool = field(default=False, repr=False)

    async def start(self) -> Instance:
        """Take a number and its lock, close what dead instances left behind, start sweeping."""
        await self._register()
        await self.sweep()
        self._sweeper = asyncio.create_task(self._upkeep_forever(), name="parley-instance-upkeep")
        return self

    async def close(self) -> None:
        """Release the lock (by closing its connection): unfinished claims become takeable."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def sweep(self) -> int:
        """Close turns left `started` by instances that are gone; return how many."""
        assert self._conn is not None
        closed: int = await self._conn.fetchval("SELECT parley_close_orphaned_turns()")
        if closed:
            log.warning("closed %d turn(s) interrupted by a stopped instance", closed)
        return closed

    async def analyze_grown(self) -> int:
        """Analyze the tables whose rows doubled since their statistics were taken; return how many."""
        assert self._conn is not None
        analyzed: int = await self._conn.fetchval("SELECT parley_analyze_grown()")
        return analyzed

    async def _register(self) -> None:
        settings = {"application_name": self.application_name} if self.application_name else None
        self._conn = await asyncpg.connect(self.uri, server_settings=settings)
        self._conn.add_termination_listener(self._lost)
        while True:
            number: int = await self._conn.fetchval("SELECT nextval('parley_instances')::integer")
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", INSTANCE_LOCK_CLASS, number):
                self.number = number
                return

    def _lost(self, conn: asyncpg.Connection) -> None:
        if not self._closing:
            log.error("instance lock connection lost (instance %s); its unfinished events may be retried elsewhere",
                      self.number)

    async def _upkeep_forever(self) -> None:
        """Statistics every `analyze_every_s`, orphaned turns every `sweep_every_s`, one at a time on the
        one connection."""
        swept = time.monotonic()
        while True:
            await asyncio.sleep(min(self.analyze_every_s, self.sweep_every_s))
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._register()
                await self.analyze_grown()
                if time.monotonic() - swept >= self.sweep_every_s:
                    swept = time.monotonic()
                    await self.sweep()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("instance upkeep failed (%s); retrying next round", type(exc).__name__)
