"""Retention (property 18): memories older than the configured number of days are deleted, by a
periodic task in the server and by `parley memory cleanup`. The same task keeps large scopes
indexed (`core.memory.maintenance.ensure_scope_indexes`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from core.memory import maintenance

log = logging.getLogger(__name__)


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Memories created before this instant are expired."""
    return now - timedelta(days=retention_days)


async def cleanup_memories(pool: asyncpg.Pool, *, retention_days: int, now: datetime) -> int:
    """Delete expired memories across all workspaces; return how many."""
    return await maintenance.delete_expired(pool, before=retention_cutoff(now, retention_days))


async def maintenance_loop(
    pool: asyncpg.Pool,
    *,
    retention_days: int,
    model: str,
    dimensions: int,
    large_scope_rows: int,
    every: timedelta = timedelta(hours=1),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Run forever (as a background task): expire old memories, index scopes that grew large."""
    while True:
        try:
            deleted = await cleanup_memories(pool, retention_days=retention_days, now=clock())
            created = await maintenance.ensure_scope_indexes(
                pool, model=model, dimensions=dimensions, min_rows=large_scope_rows
            )
            log.info("memory maintenance: %d expired memories deleted, %d scope indexes built", deleted, len(created))
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("memory maintenance failed (%s); retrying next round", type(exc).__name__)
        await asyncio.sleep(every.total_seconds())
