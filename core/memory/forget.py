"""Forgetting and export: all of one person's rows in one workspace, deleted in one transaction or
written out as JSON. Their facts go with their history; the channel and workspace notes they told stay
for the team, with their authorship blanked (or, in an export, listed). "Forget what you know about
me" in chat asks first, and deletes only when the person confirms in a later message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from core import audit
from core.memory import maintenance
from core.memory.scope import person_scope
from core.models import UserKey

PERSONAL_TABLES: tuple[str, ...] = (
    "memories",
    "facts",
    "profiles",
    "feedback",
    "usage",
    "messages",
    "guard_events",
    "deliveries",
    "discord_messages",
    "discord_threads",
    "api_sessions",
    "turns",
)
"""Tables holding a person's rows, in deletion order (children before the turns they point to).
Tables that do not exist (yet) or lack the scope columns are skipped."""

CONFIRM_WINDOW = timedelta(minutes=15)

ASK_TO_CONFIRM = (
    "This deletes everything I remember about you in this workspace: memories, profile, our "
    'conversation history and feedback. It cannot be undone. Reply "yes, forget me" to confirm.'
)


async def forget_user(pool: asyncpg.Pool, user: UserKey, *, by: audit.Actor | None = None) -> dict[str, int]:
    """Delete every row of `user` in one transaction; return the number deleted per table. The audit log
    records the request: by `by`, or by the person themselves through their platform."""
    tables = await _personal_tables(pool)
    counts: dict[str, int] = {}
    async with person_scope(pool, user) as conn:
        for table in tables:
            status: str = await conn.execute(
                f'DELETE FROM "{table}" WHERE platform = $1 AND workspace_id = $2 AND user_id = $3',
                user.platform,
                user.workspace_id,
                user.user_id,
            )
            counts[table] = int(status.split()[-1])
        await _widen_to_workspace(conn)
        status = await conn.execute(
            "UPDATE facts SET author_id = NULL WHERE platform = $1 AND workspace_id = $2 AND author_id = $3",
            user.platform,
            user.workspace_id,
            user.user_id,
        )
        counts["shared facts anonymised"] = int(status.split()[-1])
        await audit.record(
            conn,
            user,
            by=by or audit.Actor(who=user.user_id, door=audit.door_of(user.platform)),
            action="memory.forget",
            target=user.user_id,
            new={"deleted": counts},
        )
    await maintenance.drop_scope_indexes(pool, user)
    return counts


async def export_user(pool: asyncpg.Pool, user: UserKey) -> dict[str, Any]:
    """Every row of `user` as JSON-ready data (vectors left out: they are derived from the text)."""
    tables = await _personal_tables(pool)
    out: dict[str, Any] = {
        "platform": user.platform,
        "workspace_id": user.workspace_id,
        "user_id": user.user_id,
    }
    async with person_scope(pool, user) as conn:
        for table in tables:
            statement = await conn.prepare(
                f'SELECT * FROM "{table}" WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 ORDER BY 1'
            )
            json_columns = {a.name for a in statement.get_attributes() if a.type.name in {"json", "jsonb"}}
            rows = await statement.fetch(user.platform, user.workspace_id, user.user_id)
            out[table] = [
                {
                    k: json.loads(v) if k in json_columns and v is not None else _jsonable(v)
                    for k, v in r.items()
                    if k not in {"embedding", "tsv", "content_hash"}
                }
                for r in rows
            ]
        await _widen_to_workspace(conn)
        told = await conn.fetch(
            "SELECT id, scope, channel_id, content, said_at, valid_to, expires_at FROM facts"
            " WHERE platform = $1 AND workspace_id = $2 AND author_id = $3 AND scope <> 'person' ORDER BY id",
            user.platform,
            user.workspace_id,
            user.user_id,
        )
        out["shared_facts_told"] = [{k: _jsonable(v) for k, v in r.items()} for r in told]
    return out


async def _widen_to_workspace(conn: asyncpg.Connection) -> None:
    """Within the person's transaction, see the workspace's shared facts: the notes they told for
    channels they are not in now (only their authorship is touched or read)."""
    await conn.execute("SELECT set_config('parley.user_id', '', true)")


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgetOutcome:
    deleted: bool
    message: str
    counts: dict[str, int]


async def forget_me(pool: asyncpg.Pool, user: UserKey, *, confirm: bool, turn: str, now: datetime) -> ForgetOutcome:
    """The chat flow: the first request only asks; a confirmation from a later turn within
    `CONFIRM_WINDOW` deletes. `turn` identifies the current turn (the agent run id)."""
    async with person_scope(pool, user) as conn:
        pending = await conn.fetchrow(
            "SELECT forget_requested_at, forget_request_turn FROM profiles"
            " WHERE platform = $1 AND workspace_id = $2 AND user_id = $3",
            user.platform,
            user.workspace_id,
            user.user_id,
        )
        confirmed = (
            confirm
            and pending is not None
            and pending["forget_requested_at"] is not None
            and pending["forget_request_turn"] != turn
            and now - pending["forget_requested_at"] <= CONFIRM_WINDOW
        )
        if not confirmed:
            await conn.execute(
                "INSERT INTO profiles (platform, workspace_id, user_id, forget_requested_at, forget_request_turn)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, workspace_id, user_id) DO UPDATE"
                " SET forget_requested_at = EXCLUDED.forget_requested_at,"
                " forget_request_turn = EXCLUDED.forget_request_turn",
                user.platform,
                user.workspace_id,
                user.user_id,
                now,
                turn,
            )
            return ForgetOutcome(deleted=False, message=ASK_TO_CONFIRM, counts={})
    counts = await forget_user(pool, user)
    summary = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
    return ForgetOutcome(
        deleted=True,
        message=f"Done: I forgot everything about you in this workspace ({summary or 'nothing was stored'}).",
        counts=counts,
    )


async def _personal_tables(pool: asyncpg.Pool) -> list[str]:
    """`PERSONAL_TABLES` that exist and carry (platform, workspace_id, user_id), in order."""
    rows = await pool.fetch(
        """
        SELECT table_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
          AND column_name IN ('platform', 'workspace_id', 'user_id')
        GROUP BY table_name HAVING count(*) = 3
        """,
        list(PERSONAL_TABLES),
    )
    present = {r["table_name"] for r in rows}
    return [t for t in PERSONAL_TABLES if t in present]


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
