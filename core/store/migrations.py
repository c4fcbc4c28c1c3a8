"""Versioned SQL migrations, applied by yoyo-migrations under its lock (safe with many instances)."""

from __future__ import annotations

import asyncio
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _yoyo_uri(uri: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix):]
    return uri


def migrate_sync(uri: str) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_uri(uri))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def pending_sync(uri: str) -> tuple[list[str], int]:
    """The ids of migrations not yet applied, and how many there are in all (for `parley doctor`)."""
    from yoyo import get_backend, read_migrations

    migrations = read_migrations(str(MIGRATIONS_DIR))
    return [m.id for m in get_backend(_yoyo_uri(uri)).to_apply(migrations)], len(migrations)


async def migrate(uri: str) -> list[str]:
    return await asyncio.to_thread(migrate_sync, uri)
