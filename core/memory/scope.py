"""A person's wall for memory queries: the tenancy scope of `core.store.tenancy`, narrowed to one person.

Queries still filter on the same keys themselves: the row-level security policies are the second wall,
for the query that forgot to.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg

from core.models import UserKey
from core.store.tenancy import TenantKey, tenant


def person_scope(pool: asyncpg.Pool, user: UserKey) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction that can see and change only `user`'s rows."""
    return tenant(pool, user)


def fact_scope(
    pool: asyncpg.Pool, key: TenantKey, channel_id: str = ""
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection for facts: a person's scope (`key` a `UserKey`) sees their own facts, the
    workspace's and those of `channel_id` (none in a DM: pass ""); a workspace's scope sees all.

    The channel is part of the tenant the scope names, so it is set with the rest in the statement that
    opens or switches the scope, and the next scope of a `one_transaction` block no longer sees it."""
    return tenant(pool, key, channel_id=channel_id)
