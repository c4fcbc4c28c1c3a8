"""A person's wall for memory queries: the tenancy scope of `core.store.tenancy`, narrowed to one person.

Queries still filter on the same keys themselves: the row-level security policies are the second wall,
for the query that forgot to.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg

from core.models import UserKey
from core.store.tenancy import tenant


def person_scope(pool: asyncpg.Pool, user: UserKey) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction that can see and change only `user`'s rows."""
    return tenant(pool, user)
