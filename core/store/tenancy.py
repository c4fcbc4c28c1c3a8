"""The tenancy wall: every query of a serving process runs inside one tenant's scope.

`parley serve` connects as the non-superuser role `parley_app`, which row-level security (migrations
0002 and 0011) lets see only the rows of the tenant named in transaction-local settings. A scope is a
workspace (`WorkspaceKey`, `ConversationKey`: everything of that workspace) or a person (`UserKey`:
only that person's rows). The role is set too, so a pool that connects as the owner (operator
commands, tests) gets the same wall inside a scope.

`tenant(pool, key)` gives a connection in such a transaction, for several statements; `scoped(pool,
key)` looks like the pool for one statement at a time, so a call site changes by one line. Either way
a statement costs one transaction, and the transaction opens and names its tenant in one round trip.

`one_transaction(pool, key)` groups: every scope entered inside it (in its own task or in tasks it
starts, such as an `asyncio.gather` of reads) shares one connection and one transaction, statement
after statement, the tenant settings switched only where a statement names another scope (another
workspace, person or fact channel: all of them are one tenant tuple, switched by one statement).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

APP_ROLE = "parley_app"

_SWITCH = """
SELECT set_config('role', $1, true),
       set_config('parley.platform', $2, true),
       set_config('parley.workspace_id', $3, true),
       set_config('parley.user_id', $4, true),
       set_config('parley.channel_id', $5, true)
"""


class TenantKey(Protocol):
    """Anything that names a workspace: its keys, a person's, a conversation's."""

    @property
    def platform(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...


Tenant = tuple[str, str, str, str]
"""(platform, workspace_id, user_id, channel_id): what a scope sets. user_id is '' for a whole workspace;
channel_id names the channel whose shared facts a person's scope also sees (migration 0022), '' for none."""


def tenant_of(key: TenantKey, channel_id: str = "") -> Tenant:
    return (str(key.platform), key.workspace_id, getattr(key, "user_id", ""), channel_id)


def begin_sql(tenant: Tenant) -> str:
    """`BEGIN` and the tenant's settings as one simple-protocol script: one round trip instead of two.

    The values travel hex-encoded and are decoded by Postgres, so no value can end the literal it is
    in, whatever it holds and however the server quotes strings."""
    platform, workspace_id, user_id, channel_id = (_hex_text(value) for value in tenant)
    return (
        f"BEGIN; SELECT set_config('role', '{APP_ROLE}', true), set_config('parley.platform', {platform}, true), "
        f"set_config('parley.workspace_id', {workspace_id}, true), set_config('parley.user_id', {user_id}, true), "
        f"set_config('parley.channel_id', {channel_id}, true)"
    )


def _hex_text(value: str) -> str:
    return f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8')"


def tenant(
    pool: asyncpg.Pool, key: TenantKey, *, channel_id: str = ""
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction that sees only `key`'s rows (a person's, if `key` has a user_id), and
    the shared facts of `channel_id` where one is named."""
    return _connection(pool, tenant_of(key, channel_id))


def self_scoped(pool: asyncpg.Pool) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection for one statement that names its tenant itself: a function that sets the role and the
    tenant settings for its own run and restores them as it returns (migration 0030's `memory_recall`, 0034's
    `parley_claim_turn`, `parley_open_session` and `parley_record_delivery_messages`, 0038's
    `parley_turn_context`, `parley_start_turn` and `parley_finish_turn`, 0039's `parley_authenticate_session`).

    Inside a `one_transaction` block it is the block's connection, in its turn and left on the tenant it
    has; elsewhere a pooled connection outside any transaction, where the statement is a transaction of
    its own: one round trip, with no BEGIN or COMMIT. Any other statement on it would run outside the
    tenancy wall."""
    return _connection(pool, None)


@asynccontextmanager
async def _connection(pool: asyncpg.Pool, scope: Tenant | None) -> AsyncIterator[asyncpg.Connection]:
    """The open `one_transaction` block's connection switched to `scope` (None: left as it is), one scope at
    a time; else a pooled connection, in a transaction naming `scope`, or, for None, in none."""
    group = _GROUP.get()
    if group is not None and group.pool is pool:
        async with group.lend(scope) as lent:
            if lent is not None:
                yield lent
                return
    async with pool.acquire() as conn:
        if scope is None:
            yield conn
            return
        async with _transaction(conn, scope):
            yield conn


@asynccontextmanager
async def one_transaction(pool: asyncpg.Pool, key: TenantKey, *, channel_id: str = "") -> AsyncIterator[None]:
    """Run every scope entered inside this block, here and in the tasks it starts, in one transaction, which
    opens in `key`'s scope (with `channel_id`'s shared facts, as `tenant` names them): a first scope that
    names the same tenant needs no switch.

    Statements take turns on the one connection (concurrent reads queue behind each other rather than
    each taking a connection and a transaction of their own). A block nested in another one joins it;
    a task started inside the block that is still running after it takes transactions of its own."""
    joined = _GROUP.get()
    if joined is not None and joined.open:
        yield
        return
    opened = tenant_of(key, channel_id)
    async with pool.acquire() as conn, _transaction(conn, opened):
        group = _Group(pool=pool, conn=conn, current=opened)
        token = _GROUP.set(group)
        try:
            yield
        finally:
            _GROUP.reset(token)
            await group.close()


@asynccontextmanager
async def _transaction(conn: asyncpg.Connection, tenant: Tenant) -> AsyncIterator[None]:
    """Begin (naming the tenant in the same round trip), then commit, or roll back on any exception."""
    await conn.execute(begin_sql(tenant))
    try:
        yield
    except BaseException:
        await _roll_back(conn)
        raise
    await conn.execute("COMMIT")


async def _roll_back(conn: asyncpg.Connection) -> None:
    """Roll back; a connection that cannot (cancelled mid-statement, broken) is dropped, not pooled."""
    try:
        if not conn.is_closed():
            await conn.execute("ROLLBACK")
    except Exception:
        conn.terminate()


@dataclass(kw_only=True)
class _Group:
    """The connection of a `one_transaction` block, lent to one scope at a time."""

    pool: asyncpg.Pool
    conn: asyncpg.Connection
    current: Tenant
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holder: asyncio.Task[Any] | None = None
    open: bool = True

    @asynccontextmanager
    async def lend(self, tenant: Tenant | None) -> AsyncIterator[asyncpg.Connection | None]:
        """The connection, switched to `tenant` (None: as it is), for one scope at a time; None once the
        block has ended."""
        task = asyncio.current_task()
        if self.holder is task:  # a scope inside a scope of the same task: it already holds the lock
            outer = self.current
            await self._switch(tenant)
            try:
                yield self.conn
            finally:
                await self._switch(outer)  # the outer scope goes on seeing only its own rows
            return
        async with self.lock:
            if not self.open:
                yield None
                return
            self.holder = task
            try:
                await self._switch(tenant)
                yield self.conn
            finally:
                self.holder = None

    async def close(self) -> None:
        """No scope may start on the connection after this; one in progress is waited for."""
        async with self.lock:
            self.open = False

    async def _switch(self, tenant: Tenant | None) -> None:
        if tenant is not None and tenant != self.current:
            await _switch(self.conn, tenant)
            self.current = tenant


async def enter_scope(conn: asyncpg.Connection, key: TenantKey) -> None:
    """Switch a connection already in a transaction into `key`'s scope for the rest of it (an operator's
    change across workspaces that then writes the workspace's own rows, such as its audit entry)."""
    await _switch(conn, tenant_of(key))


async def _switch(conn: asyncpg.Connection, tenant: Tenant) -> None:
    """Name another tenant for the rest of the transaction: one statement, every setting at once."""
    await conn.execute(_SWITCH, APP_ROLE, *tenant)


_GROUP: ContextVar[_Group | None] = ContextVar("parley_tenant_group", default=None)


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
