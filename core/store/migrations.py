"""Versioned SQL migrations, applied by yoyo-migrations under its lock (safe with many instances).

Every serving command migrates on start, and almost always nothing is pending: one query against
yoyo's own table says so, and the command then skips yoyo, psycopg and the lock (about half a second).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
APPLIED_TABLE = "_yoyo_migration"
"""Where yoyo's PostgreSQL backend records each applied migration's id."""


def _yoyo_uri(uri: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix):]
    return uri


def migrate_sync(uri: str) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    from yoyo import get_backend, read_migrations

    migrations = read_migrations(str(MIGRATIONS_DIR))
    with get_backend(_yoyo_uri(uri)) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def pending_sync(uri: str) -> tuple[list[str], int]:
    """The ids of migrations not yet applied, and how many there are in all (for `parley doctor`)."""
    from yoyo import get_backend, read_migrations

    migrations = read_migrations(str(MIGRATIONS_DIR))
    return [m.id for m in get_backend(_yoyo_uri(uri)).to_apply(migrations)], len(migrations)


async def migrate(uri: str) -> list[str]:
    """Apply every pending migration (none pending: one query); return the ids applied."""
    if not await pending(uri):
        return []
    return await asyncio.to_thread(migrate_sync, uri)


async def pending(uri: str) -> set[str]:
    """The ids of the migrations in MIGRATIONS_DIR that yoyo has not recorded as applied."""
    wanted = {p.name.removesuffix(".sql") for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")}
    conn = await asyncpg.connect(uri)
    try:
        applied = {row["migration_id"] for row in await conn.fetch(f"SELECT migration_id FROM {APPLIED_TABLE}")}
    except asyncpg.UndefinedTableError:
        return wanted
    finally:
        await conn.close()
    return wanted - applied
