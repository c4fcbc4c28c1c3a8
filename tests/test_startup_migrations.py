"""Migrating on start costs one query when the schema is current (issue 22)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.store.migrations import MIGRATIONS_DIR, migrate, pending


async def test_a_current_schema_has_nothing_pending_and_migrating_applies_nothing(pg_uri: str) -> None:
    assert await pending(pg_uri) == set()
    assert await migrate(pg_uri) == []


async def test_a_new_database_is_migrated_in_full_and_then_is_current(pg_uri: str) -> None:
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_uri)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        parts = urlsplit(pg_uri)
        fresh = urlunsplit(parts._replace(path=f"/{name}"))
        every = {p.name.removesuffix(".sql") for p in MIGRATIONS_DIR.glob("*.sql")}
        assert await pending(fresh) == every
        assert sorted(await migrate(fresh)) == sorted(every)
        assert await pending(fresh) == set()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
