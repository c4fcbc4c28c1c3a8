"""The asyncpg pool, with pgvector's codec registered on every connection."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from pgvector.asyncpg import register_vector

Pool: TypeAlias = asyncpg.Pool
"""The pool, by a name of core's: adapters pass it to core's stores and never import asyncpg themselves."""

DiskFull: TypeAlias = asyncpg.DiskFullError
"""The database's disk is full (SQLSTATE 53100): nothing can be stored until an operator frees space."""

StorageFailing: TypeAlias = asyncpg.PostgresIOError
"""The database could not read or write its files (SQLSTATE class 58): full, read-only or failing disk."""


async def _init(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Hand a released connection back as it is.

    asyncpg's default reset (unlock advisory locks, close cursors, unlisten, RESET ALL) is one more
    round trip and one more Postgres transaction for every statement. Nothing in Parley leaves session
    state on a pooled connection: tenant settings and the role are transaction-local
    (core/store/tenancy.py), and the one advisory lock lives on a connection of its own
    (core/store/instance.py). An open transaction is still rolled back by the pool before this runs."""


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
        reset=_keep_session,
        max_inactive_connection_lifetime=idle_close_s,
        server_settings={"application_name": application_name} if application_name else None,
    )
    assert pool is not None
    return pool


async def ping(pool: Pool) -> None:
    """One round trip to the database (readiness probes); raises whatever keeps it from answering."""
    await pool.fetchval("SELECT 1")
