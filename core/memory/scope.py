"""A person's wall for memory queries: the tenancy scope of `core.store.tenancy`, narrowed to one person.

Queries still filter on the same keys themselves: the row-level security policies are the second wall,
for the query that forgot to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

from core.models import UserKey
from core.store.tenancy import TenantKey, shares_transaction, tenant


def person_scope(pool: asyncpg.Pool, user: UserKey) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction that can see and change only `user`'s rows."""
    return tenant(pool, user)


@asynccontextmanager
async def fact_scope(pool: asyncpg.Pool, key: TenantKey, channel_id: str = "") -> AsyncIterator[asyncpg.Connection]:
    """A connection for facts: a person's scope (`key` a `UserKey`) sees their own facts, the
    workspace's and those of `channel_id` (none in a DM: pass ""); a workspace's scope sees all."""
    async with tenant(pool, key) as conn:
        await conn.execute("SELECT set_config('parley.channel_id', $1, true)", channel_id)
        yield conn
        if shares_transaction(conn):
            # The setting lasts to the end of the transaction: the next scope of a `one_transaction` block
            # must not see this channel's notes. (After an error the block rolls back, so nothing to undo.)
            await conn.execute("SELECT set_config('parley.channel_id', '', true)")
