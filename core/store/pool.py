"""The asyncpg pool, with pgvector's codec registered on every connection."""

from __future__ import annotations

import asyncpg
from pgvector.asyncpg import register_vector


async def _init(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def create_pool(
    uri: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str | None = None,
    idle_close_s: float = 300.0,
) -> asyncpg.Pool:
    """`application_name` names the connections in pg_stat_activity; idle ones close after `idle_close_s`."""
    pool = await asyncpg.create_pool(
        uri,
        min_size=min_size,
        max_size=max_size,
        init=_init,
        max_inactive_connection_lifetime=idle_close_s,
        server_settings={"application_name": application_name} if application_name else None,
    )
    assert pool is not None
    return pool
