"""API keys per workspace: made once, shown once, stored as a hash.

A key reads `parley_<key_id>_<secret>`. The `key_id` is public (it names the key in listings and
finds its row); only the SHA-256 of the whole key is stored, so a database leak yields no usable
key. The secret carries 256 bits from `secrets`, so a plain hash is enough (no slow KDF needed). The
database compares digests: what a comparison's timing could reveal is how much of a guess's SHA-256
matches, which brings no one closer to a key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from core import audit
from core.models import Platform, WorkspaceKey
from core.store.tenancy import tenant

PREFIX = "parley"
KEY_ID_BYTES = 6
SECRET_BYTES = 32
_KEY = re.compile(r"^parley_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
ADMIN_LINK = "admin-link"
"""The admin key a `parley admin link` carries, spent when the link is opened (adapters/web/admin.py)."""
ADMIN_SESSION = "admin-session"
"""The key an admin page sign-in makes (adapters/web/admin.py)."""
PLAYGROUND_SESSION = "playground-session"
"""The key a playground sign-in makes (adapters/web/app.py)."""
KEY_LIFETIMES = {
    ADMIN_LINK: timedelta(minutes=15),
    ADMIN_SESSION: timedelta(hours=12),
    PLAYGROUND_SESSION: timedelta(days=30),
}
"""How long a sign-in's key opens anything: an admin link left unopened in a chat or a terminal's scrollback,
and a session key for as long as its cookie lives, so that a cookie copied out of a browser stops working when the
browser's own would have gone. Every other key lives until it is revoked."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NewKey:
    """A freshly made key: `key` is shown to the operator once and never stored."""

    key_id: str
    key: str
    key_hash: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiKeyInfo:
    """What is known about a stored key (never the key itself)."""

    key_id: str
    platform: str
    workspace_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    admin: bool = False
    """An operator's key: it opens /v1/admin and the /admin page."""
    user_id: str | None = None
    """The one person the key acts for (refused for any other); None: any user_id of its workspace."""

    @property
    def scope(self) -> str:
        """Whom the key acts for, as listings name it."""
        return f"user {self.user_id}" if self.user_id is not None else "workspace-wide"


def lapsed(key: ApiKeyInfo, now: datetime) -> timedelta | None:
    """The lifetime (KEY_LIFETIMES) a sign-in's key has outlived, or None for a key that is still good."""
    lifetime = KEY_LIFETIMES.get(key.name)
    return lifetime if lifetime is not None and now - key.created_at > lifetime else None


def generate_key() -> NewKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key_id=key_id, key=key, key_hash=hash_key(key))


def key_id_of(key: str) -> str | None:
    """The public id of a well-formed key, or None for anything that cannot be a key."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


# -- storage ----------------------------------------------------------------------------------
_COLUMNS = "key_id, platform, workspace_id, name, created_at, last_used_at, revoked_at, admin, user_id"
AUTOMATIC = audit.Actor(who="parley", door="cli")
"""Changes Parley makes by itself (the playground's one-time key at `parley serve`)."""


async def create_api_key(
    pool: asyncpg.Pool,
    *,
    workspace_id: str,
    name: str = "",
    admin: bool = False,
    user_id: str | None = None,
    by: audit.Actor = AUTOMATIC,
) -> tuple[ApiKeyInfo, str]:
    """Store a new key for `workspace_id` (an operator's with `admin`; one that acts only for `user_id` when
    given); return its description and the key (shown once). The audit log records the key's id, never the key.
    An admin key reads and changes the whole workspace, so it is never bound to one person (ValueError)."""
    if admin and user_id is not None:
        raise ValueError("an admin key acts for the whole workspace and cannot be bound to one user")
    new = generate_key()
    workspace = _workspace(workspace_id)
    async with tenant(pool, workspace) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO api_keys (key_id, key_hash, platform, workspace_id, name, admin, user_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
            new.key_id,
            new.key_hash,
            Platform.API.value,
            workspace_id,
            name,
            admin,
            user_id,
        )
        assert row is not None
        await audit.record(conn, workspace, by=by, action="apikey.create", target=new.key_id,
                           new={"name": name, "admin": admin} | ({"user_id": user_id} if user_id is not None else {}))
    return ApiKeyInfo(**dict(row)), new.key


async def list_api_keys(pool: asyncpg.Pool, *, workspace_id: str | None = None) -> list[ApiKeyInfo]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR workspace_id = $1 ORDER BY created_at, id",
        workspace_id,
    )
    return [ApiKeyInfo(**dict(r)) for r in rows]


async def revoke_api_key(
    pool: asyncpg.Pool, key_id: str, *, workspace_id: str | None = None, by: audit.Actor = AUTOMATIC
) -> bool:
    """Revoke a key by its public id; False when no live key has that id. An operator's pool (the owner)
    sees every workspace; the app role must name the key's workspace, whose scope it then acts in."""
    async with _transaction(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING workspace_id",
            key_id,
        )
        await _audit_revoked(conn, [(r["workspace_id"], key_id) for r in rows], by)
    return bool(rows)


async def revoke_named(pool: asyncpg.Pool, *, workspace_id: str, name: str, by: audit.Actor = AUTOMATIC) -> int:
    """Revoke every live key of `workspace_id` called `name` (the one-time playground key)."""
    async with _transaction(pool, workspace_id) as conn:
        rows = await conn.fetch(
            """UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1 AND name = $2 AND revoked_at IS NULL
               RETURNING key_id""",
            workspace_id,
            name,
        )
        await _audit_revoked(conn, [(workspace_id, r["key_id"]) for r in rows], by)
    return len(rows)


@asynccontextmanager
async def _transaction(pool: asyncpg.Pool, workspace_id: str | None) -> AsyncIterator[asyncpg.Connection]:
    """The workspace's scope, or (no workspace named: an operator's pool) a plain transaction."""
    if workspace_id is not None:
        async with tenant(pool, _workspace(workspace_id)) as conn:
            yield conn
        return
    async with pool.acquire() as conn, conn.transaction():
        yield conn


async def _audit_revoked(conn: asyncpg.Connection, keys: list[tuple[str, str]], by: audit.Actor) -> None:
    for workspace_id, key_id in keys:
        await audit.record(conn, _workspace(workspace_id), by=by, action="apikey.revoke", target=key_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class Checked:
    """What authenticating a request found: the key (None: invalid), and how long to wait when over a
    rate limit (the key's own, or its address's for invalid keys)."""

    key: ApiKeyInfo | None
    wait_s: float = 0.0


async def authenticate(
    pool: asyncpg.Pool, key: str, *, address: str, per_key: int, invalid_per_address: int
) -> Checked:
    """The live key matching `key` and its rate limit, in one round trip. Unknown, malformed and revoked
    keys look the same; an address that sent too many invalid keys is refused before any lookup.

    The workspace is not known yet, so this is the SECURITY DEFINER function of migration 0012: it returns
    the key only when the presented key's hash matches, and never returns a hash."""
    key_id = key_id_of(key)
    if key_id is None:
        return Checked(key=None)
    row = await pool.fetchrow(
        "SELECT * FROM parley_authenticate_key($1, $2, $3, $4, $5)",
        key_id,
        hash_key(key),
        address,
        per_key,
        invalid_per_address,
    )
    return checked_row(dict(row) if row is not None else None)


def checked_row(values: dict[str, Any] | None) -> Checked:
    """What `parley_authenticate_key`'s row (or one in its columns) says: no row or no key id, no valid key."""
    if values is None:
        return Checked(key=None)
    wait = values.pop("wait_s")
    return Checked(key=ApiKeyInfo(**values) if values["key_id"] is not None else None, wait_s=wait)


def _workspace(workspace_id: str) -> WorkspaceKey:
    return WorkspaceKey(platform=Platform.API, workspace_id=workspace_id)
