"""Serving processes' logins: `parley_app` for turns, `parley_maintenance` for memory upkeep,
`parley_operator` for the admin API's reports; never the owner.

The owner (DATABASE_URL, or the embedded server's superuser) runs the migrations; row-level security
binds the non-superuser role `parley_app` (migration 0002 creates it, 0011 gives it its grants); the
cross-tenant memory maintenance runs as `parley_maintenance`, which owns the memory tables and nothing
else (migration 0027); the admin API reads across workspaces as `parley_operator` (migration 0028).
None is a superuser. Each role's login comes from one of:

- `PARLEY_DATABASE_APP_URL` / `PARLEY_DATABASE_MAINTENANCE_URL` / `PARLEY_DATABASE_OPERATOR_URL`, when
  the operator made the login;
- otherwise Parley makes the role a LOGIN role as the owner, after migrating. Its password is
  derived from the owner's: HMAC-SHA256(owner password, a label naming the role). Every instance that shares the
  owner's URL computes the same password with nothing stored anywhere, rotating the owner's password
  rotates the app's on the next start, and no one can compute it without the owner's password. An
  owner URL without a password (the embedded server, a Unix socket with trust or peer auth) gives the
  role no password: it logs in the way the owner does.

Making the login needs only CREATEROLE with admin over the role (PostgreSQL 16 gives that to the
role that created it), so it works on managed Postgres where the owner is not a superuser. The role's
password is only changed when logging in with the derived one fails, so instances starting together do
not race on ALTER ROLE.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from core.store.tenancy import APP_ROLE

MAINTENANCE_ROLE = "parley_maintenance"
"""Owns the memory tables (migration 0027): retention deletes, index builds and re-embeds across tenants."""
OPERATOR_ROLE = "parley_operator"
"""Reads the admin API's reports across workspaces (migration 0028); writes as `parley_app` in a scope."""


def app_password(owner_uri: str, role: str = APP_ROLE) -> str | None:
    """`role`'s password derived from the owner's, or None when the owner's URL carries none."""
    password = urlsplit(owner_uri).password
    if not password:
        return None
    return hmac.new(password.encode(), f"{role} login v1".encode(), hashlib.sha256).hexdigest()


def app_uri(owner_uri: str, role: str = APP_ROLE) -> str:
    """The owner's URL with `role`'s name and derived password in place of the owner's."""
    parts = urlsplit(owner_uri)
    password = app_password(owner_uri, role)
    host = parts.netloc.rpartition("@")[2]
    userinfo = role + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


async def ensure_app_login(owner_uri: str, role: str = APP_ROLE) -> str:
    """Make sure `role` can log in with its derived password; return the URL to connect with."""
    uri = app_uri(owner_uri, role)
    try:
        conn = await asyncpg.connect(uri)
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError):
        await _grant_login(owner_uri, role)
    else:
        await conn.close()
    return uri


async def _grant_login(owner_uri: str, role: str) -> None:
    conn = await asyncpg.connect(owner_uri)
    try:
        ddl: str = await conn.fetchval(
            "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", role, app_password(owner_uri, role)
        )
        await conn.execute(ddl)
        grant: str = await conn.fetchval(
            "SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text)", role
        )
        await conn.execute(grant)
    finally:
        await conn.close()
