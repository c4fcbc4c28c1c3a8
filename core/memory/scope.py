"""The tenancy wall: every memory query runs in a transaction scoped to one person.

Inside `person_scope` the connection acts as the non-superuser role `parley_app` with the person's
(platform, workspace, user) in transaction-local settings, which the row-level security policies
of migration 0002 compare against. Queries still filter on the same keys themselves: the policies
are the second wall, for the query that forgot to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from core.models import UserKey

APP_ROLE = "parley_app"

_ENTER = """
SELECT set_config('role', $1, true),
       set_config('parley.platform', $2, true),
       set_config('parley.workspace_id', $3, true),
       set_config('parley.user_id', $4, true)
"""


@asynccontextmanager
async def person_scope(pool: asyncpg.Pool, user: UserKey) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that can see and change only `user`'s rows."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_ENTER, APP_ROLE, user.platform, user.workspace_id, user.user_id)
        yield conn
