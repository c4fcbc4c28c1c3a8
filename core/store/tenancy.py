"""The tenancy wall: every query of a serving process runs inside one tenant's scope.

`parley serve` connects as the non-superuser role `parley_app`, which row-level security (migrations
0002 and 0011) lets see only the rows of the tenant named in transaction-local settings. A scope is a
workspace (`WorkspaceKey`, `ConversationKey`: everything of that workspace) or a person (`UserKey`:
only that person's rows). The role is set too, so a pool that connects as the owner (operator
commands, tests) gets the same wall inside a scope.

`tenant(pool, key)` gives a connection in such a transaction, for several statements; `scoped(pool,
key)` looks like the pool for one statement at a time, so a call site changes by one line. Either way
a statement costs one transaction, as it did on the bare pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg

APP_ROLE = "parley_app"

_ENTER = """
SELECT set_config('role', $1, true),
       set_config('parley.platform', $2, true),
       set_config('parley.workspace_id', $3, true),
       set_config('parley.user_id', $4, true)
"""


class TenantKey(Protocol):
    """Anything that names a workspace: its keys, a person's, a conversation's."""

    @property
    def platform(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...


@asynccontextmanager
async def tenant(pool: asyncpg.Pool, key: TenantKey) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that sees only `key`'s rows (a person's, if `key` has a user_id)."""
    user_id: str = getattr(key, "user_id", "")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_ENTER, APP_ROLE, key.platform, key.workspace_id, user_id)
        yield conn


def scoped(pool: asyncpg.Pool, key: TenantKey) -> Scoped:
    """The pool's single-statement methods, each run in its own transaction inside `key`'s scope."""
    return Scoped(pool, key)


class Scoped:
    """A stand-in for `asyncpg.Pool` whose every statement runs in one tenant's scope."""

    __slots__ = ("key", "pool")

    def __init__(self, pool: asyncpg.Pool, key: TenantKey) -> None:
        self.pool = pool
        self.key = key

    async def execute(self, query: str, *args: Any) -> str:
        async with tenant(self.pool, self.key) as conn:
            status: str = await conn.execute(query, *args)
            return status

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        async with tenant(self.pool, self.key) as conn:
            await conn.executemany(query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with tenant(self.pool, self.key) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with tenant(self.pool, self.key) as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with tenant(self.pool, self.key) as conn:
            return await conn.fetchval(query, *args)
