"""The audit log: who changed what, when, from which value to which, and through which door.

Entries are written on the same connection (and so in the same transaction) as the change they
record, so a change without its entry cannot happen. The application may add and read entries of its
tenant, never alter one (migration 0016).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from core.store.tenancy import TenantKey

Door = Literal["cli", "api", "admin page", "slack", "discord", "console", "chat"]
DOORS: tuple[Door, ...] = ("cli", "api", "admin page", "slack", "discord", "console", "chat")


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who made a change and through which door (`cli` for an operator's terminal, `api` for a key...)."""

    who: str
    door: Door


def door_of(platform: str) -> Door:
    """The door a person of `platform` comes through (the console is the terminal chat)."""
    return next((d for d in DOORS if d == platform), "chat")


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    id: int
    platform: str
    workspace_id: str
    actor: str
    door: str
    action: str
    target: str
    old_value: Any
    new_value: Any
    created_at: datetime


async def record(
    conn: asyncpg.Connection,
    workspace: TenantKey,
    *,
    by: Actor,
    action: str,
    target: str = "",
    old: Any = None,
    new: Any = None,
) -> None:
    """Add one entry on `conn`, inside the transaction of the change it records."""
    await conn.execute(
        """INSERT INTO audit_log (platform, workspace_id, actor, door, action, target, old_value, new_value)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)""",
        workspace.platform,
        workspace.workspace_id,
        by.who,
        by.door,
        action,
        target,
        None if old is None else json.dumps(old),
        None if new is None else json.dumps(new),
    )


async def list_entries(
    pool: asyncpg.Pool,
    *,
    since: datetime | None = None,
    platform: str | None = None,
    workspace_id: str | None = None,
    action: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """Newest first. An operator's pool sees every workspace; the app role only inside a tenant scope."""
    rows = await pool.fetch(
        """SELECT id, platform, workspace_id, actor, door, action, target, old_value, new_value, created_at
           FROM audit_log
           WHERE ($1::timestamptz IS NULL OR created_at >= $1) AND ($2::text IS NULL OR platform = $2)
             AND ($3::text IS NULL OR workspace_id = $3) AND ($4::text IS NULL OR action LIKE $4 || '%')
           ORDER BY created_at DESC, id DESC LIMIT $5""",
        since,
        platform,
        workspace_id,
        action,
        limit,
    )
    return [
        AuditEntry(
            **{
                **dict(r),
                "old_value": _loaded(r["old_value"]),
                "new_value": _loaded(r["new_value"]),
            }
        )
        for r in rows
    ]


def _loaded(value: str | None) -> Any:
    return None if value is None else json.loads(value)
