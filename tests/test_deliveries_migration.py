"""Migration 0019 carries what the old tables knew into `deliveries`: every chunk of a Slack reply, Parley's
Discord messages and the recorded message of any other turn still find their turn after an upgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from yoyo import get_backend, read_migrations

from core.store.migrations import MIGRATIONS_DIR, _yoyo_uri, migrate


@pytest.fixture
async def fresh_uri(pg_uri: str) -> AsyncIterator[str]:
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_uri)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(pg_uri)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def migrate_before(uri: str, first_not_applied: str) -> None:
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with get_backend(_yoyo_uri(uri)) as backend, backend.lock():
        backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < first_not_applied)))


async def test_an_upgrade_keeps_every_reply_findable(fresh_uri: str) -> None:
    await asyncio.to_thread(migrate_before, fresh_uri, "0019")
    conn = await asyncpg.connect(fresh_uri)
    try:
        turn = """INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id, event_id, status,
                                     platform_message_id)
                  VALUES ($1, $2, $3, $4, $5, $6, 'answered', $7) RETURNING id"""
        slack = await conn.fetchval(turn, "slack", "T1", "C1", "1.0", "U1", "e1", "C1:2.0")
        discord = await conn.fetchval(turn, "discord", "G1", "H1", "m0", "U2", "e2", "m1")
        api = await conn.fetchval(turn, "api", "W1", "api", "s1", "U3", "e3", "42")
        await conn.executemany(
            "INSERT INTO slack_messages (workspace_id, channel_id, ts, thread_ts, reply_message_id)"
            " VALUES ('T1', 'C1', $1, '1.0', 'C1:2.0')",
            [("2.0",), ("3.0",)],
        )
        await conn.executemany(
            "INSERT INTO discord_messages (workspace_id, user_id, channel_id, message_id, thread_id, from_parley,"
            " reply_message_id) VALUES ('G1', 'U2', 'H1', $1, 'm0', $2, $3)",
            [("m0", False, None), ("m1", True, "m1"), ("m2", True, "m1")],
        )
    finally:
        await conn.close()

    await migrate(fresh_uri)

    conn = await asyncpg.connect(fresh_uri)
    try:
        rows = await conn.fetch("SELECT platform, message_id, turn_id, thread_id FROM deliveries ORDER BY 1, 2")
        assert [tuple(r) for r in rows] == [
            ("api", "42", api, "s1"),
            ("discord", "m1", discord, "m0"),
            ("discord", "m2", discord, "m0"),
            ("slack", "C1:2.0", slack, "1.0"),
            ("slack", "C1:3.0", slack, "1.0"),
        ]
        people = await conn.fetch("SELECT message_id FROM discord_messages")
        assert [r["message_id"] for r in people] == ["m0"]
    finally:
        await conn.close()
