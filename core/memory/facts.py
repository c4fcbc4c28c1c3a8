"""SQL for facts: short sentences of what Parley knows, each in one home (a person, a channel, the
workspace), with who said it, where and when. A fact is never rewritten: a correction closes the old
row (`valid_to`, `superseded_by`) and adds the new one, so "what did I tell you, and when" has an answer.

Every function takes a connection from `core.memory.scope.fact_scope`: row-level security (migration
0022) lets a person's scope see their own facts, the workspace's, and the facts of the turn's channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from core.store.tenancy import TenantKey

FactScope = Literal["person", "channel", "workspace"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Home:
    """Where a fact lives: one person's private facts, a channel's, or the workspace's."""

    scope: FactScope
    user_id: str = ""
    channel_id: str = ""

    @classmethod
    def person(cls, user_id: str) -> Home:
        return cls(scope="person", user_id=user_id)

    @classmethod
    def channel(cls, channel_id: str) -> Home:
        return cls(scope="channel", channel_id=channel_id)

    @classmethod
    def workspace(cls) -> Home:
        return cls(scope="workspace")


@dataclass(frozen=True, kw_only=True, slots=True)
class NewFact:
    content: str
    """In the person's words, third person without a subject: "is called Sam", "prefers euros"."""
    subject: str | None = None
    """What the fact is about ("name", "team"): a new fact on the same subject supersedes the old one."""
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Said:
    """Who told a fact, where and when."""

    author_id: str
    channel_id: str
    at: datetime
    message_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Fact:
    id: int
    scope: FactScope
    user_id: str
    channel_id: str
    content: str
    subject: str | None
    author_id: str | None
    """None once the author was forgotten (a shared fact stays, anonymised)."""
    said_in: str | None
    said_at: datetime
    valid_to: datetime | None
    expires_at: datetime | None
    superseded_by: int | None

    def in_force(self, now: datetime) -> bool:
        return self.valid_to is None and (self.expires_at is None or self.expires_at > now)


_COLUMNS = (
    "id, scope, user_id, channel_id, content, subject, author_id, said_in, said_at, valid_to, expires_at, superseded_by"
)


async def add_fact(conn: asyncpg.Connection, key: TenantKey, home: Home, fact: NewFact, said: Said) -> int:
    """Store a fact in `home`; an identical fact in force is kept (its expiry refreshed), and the facts
    in force on the same subject are superseded by the new one. Returns the fact's id."""
    same = await conn.fetchval(
        "UPDATE facts SET expires_at = $6 WHERE platform = $1 AND workspace_id = $2 AND user_id = $3"
        " AND channel_id = $4 AND lower(content) = lower($5) AND valid_to IS NULL RETURNING id",
        key.platform,
        key.workspace_id,
        home.user_id,
        home.channel_id,
        fact.content,
        fact.expires_at,
    )
    if same is not None:
        return int(same)
    new_id: int = await conn.fetchval(
        """
        INSERT INTO facts (platform, workspace_id, scope, user_id, channel_id, content, subject, author_id,
                           said_in, source_message_id, said_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                (SELECT id FROM messages WHERE id = $10 AND platform = $1 AND workspace_id = $2), $11, $12)
        RETURNING id
        """,
        key.platform,
        key.workspace_id,
        home.scope,
        home.user_id,
        home.channel_id,
        fact.content,
        fact.subject,
        said.author_id,
        said.channel_id or None,
        said.message_id,
        said.at,
        fact.expires_at,
    )
    if fact.subject:
        await conn.execute(
            "UPDATE facts SET valid_to = $7, superseded_by = $6 WHERE platform = $1 AND workspace_id = $2"
            " AND user_id = $3 AND channel_id = $4 AND subject = $5 AND valid_to IS NULL AND id <> $6",
            key.platform,
            key.workspace_id,
            home.user_id,
            home.channel_id,
            fact.subject,
            new_id,
            said.at,
        )
    return new_id


async def supersede(
    conn: asyncpg.Connection, key: TenantKey, home: Home, old_id: int, fact: NewFact, said: Said
) -> int | None:
    """Replace fact `old_id` of `home` with `fact`, keeping the old one in the history; None when the
    old fact is not in force there."""
    old = await conn.fetchrow(
        "SELECT subject FROM facts WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND channel_id = $4"
        " AND id = $5 AND valid_to IS NULL FOR UPDATE",
        key.platform,
        key.workspace_id,
        home.user_id,
        home.channel_id,
        old_id,
    )
    if old is None:
        return None
    subject = fact.subject or old["subject"]
    new_id = await add_fact(
        conn, key, home, NewFact(content=fact.content, subject=subject, expires_at=fact.expires_at), said
    )
    if new_id != old_id:
        await _close(conn, key, home, old_id, said.at, superseded_by=new_id)
    return new_id


async def retire(conn: asyncpg.Connection, key: TenantKey, home: Home, fact_id: int, now: datetime) -> bool:
    """The fact is no longer true: close it, keeping it in the history."""
    return await _close(conn, key, home, fact_id, now, superseded_by=None)


async def remove(conn: asyncpg.Connection, key: TenantKey, fact_id: int) -> Fact | None:
    """Delete a fact the scope can see, with the older versions it superseded; the fact, or None."""
    rows = await conn.fetch(
        f"""
        WITH RECURSIVE chain AS (
            SELECT id FROM facts WHERE platform = $1 AND workspace_id = $2 AND id = $3
            UNION
            SELECT f.id FROM facts AS f JOIN chain AS c ON f.superseded_by = c.id
            WHERE f.platform = $1 AND f.workspace_id = $2
        )
        DELETE FROM facts WHERE id IN (SELECT id FROM chain) RETURNING {_COLUMNS}
        """,
        key.platform,
        key.workspace_id,
        fact_id,
    )
    return next((_fact(r) for r in rows if r["id"] == fact_id), None)


async def in_force(conn: asyncpg.Connection, key: TenantKey, homes: list[Home], now: datetime) -> list[Fact]:
    """The facts of `homes` valid at `now`, oldest first: what the prompt gets."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM facts
        WHERE platform = $1 AND workspace_id = $2
          AND (user_id, channel_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
          AND valid_to IS NULL AND (expires_at IS NULL OR expires_at > $5)
        ORDER BY said_at, id
        """,
        key.platform,
        key.workspace_id,
        [h.user_id for h in homes],
        [h.channel_id for h in homes],
        now,
    )
    return [_fact(r) for r in rows]


async def listing(conn: asyncpg.Connection, key: TenantKey, homes: list[Home], *, history: bool) -> list[Fact]:
    """The facts of `homes`, newest first: those not closed, or with `history` every version."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM facts
        WHERE platform = $1 AND workspace_id = $2
          AND (user_id, channel_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
          AND ($5 OR valid_to IS NULL)
        ORDER BY said_at DESC, id DESC
        """,
        key.platform,
        key.workspace_id,
        [h.user_id for h in homes],
        [h.channel_id for h in homes],
        history,
    )
    return [_fact(r) for r in rows]


def render_fact_history(found: list[Fact], *, about: str, now: datetime) -> str:
    """Facts as lines with when each was said and whether it still holds; only those sharing a word
    with `about` when it names something."""
    words = {w for w in about.casefold().split() if len(w) > 2}
    chosen = [f for f in found if not words or words & set(f.content.casefold().split())]
    if not chosen:
        return "They have told you nothing about that." if words else "They have told you nothing about themselves."
    return "\n".join(f"- {f.content}: {describe(f, now)}" for f in chosen)


def describe(fact: Fact, now: datetime) -> str:
    """When a fact was said and where it stands: "said 2026-12-02 in C1; superseded 2026-12-05"."""
    said = f"said {fact.said_at.date().isoformat()}" + (f" in {fact.said_in}" if fact.said_in else "")
    if fact.valid_to is not None:
        ended = "superseded" if fact.superseded_by else "no longer true since"
        return f"{said}; {ended} {fact.valid_to.date().isoformat()}"
    if fact.expires_at is not None:
        verb = "expired" if fact.expires_at <= now else "holds until"
        return f"{said}; {verb} {fact.expires_at.date().isoformat()}"
    return said


async def _close(
    conn: asyncpg.Connection, key: TenantKey, home: Home, fact_id: int, at: datetime, *, superseded_by: int | None
) -> bool:
    status: str = await conn.execute(
        "UPDATE facts SET valid_to = $6, superseded_by = $7 WHERE platform = $1 AND workspace_id = $2"
        " AND user_id = $3 AND channel_id = $4 AND id = $5 AND valid_to IS NULL",
        key.platform,
        key.workspace_id,
        home.user_id,
        home.channel_id,
        fact_id,
        at,
        superseded_by,
    )
    return status.endswith(" 1")


def _fact(row: asyncpg.Record) -> Fact:
    return Fact(**dict(row))


FACT_PREFIX = "fact_"


def prefixed_fact(row: asyncpg.Record) -> Fact:
    """A fact from a row that names its columns `fact_id`, `fact_scope`, ... (migration 0038's functions, whose
    rows carry other columns too)."""
    return Fact(**{key.removeprefix(FACT_PREFIX): value for key, value in row.items() if key.startswith(FACT_PREFIX)})
