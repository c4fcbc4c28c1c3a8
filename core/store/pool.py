"""The asyncpg pool, with pgvector's codec registered on every connection."""

from __future__ import annotations

import asyncpg
from pgvector.asyncpg import register_vector


async def _init(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def create_pool(uri: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(uri, min_size=min_size, max_size=max_size, init=_init)
    assert pool is not None
    return pool
