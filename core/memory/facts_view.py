"""The facts a member sees where they ask, and removing one: what `/parley memory` (Slack), `/memory`
(Discord), the playground, the API and `parley memory list` share.

Where they ask decides what they see: their own facts, the workspace's notes and, in a channel (not a
DM), that channel's notes. Row-level security enforces the same walls.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from core.memory import facts
from core.memory.facts import Fact, Home
from core.memory.scope import fact_scope
from core.models import UserKey


def homes_for(user: UserKey, channel_id: str) -> list[Home]:
    """The person's own facts, the workspace's notes, and `channel_id`'s notes ("" in a DM)."""
    homes = [Home.person(user.user_id), Home.workspace()]
    if channel_id:
        homes.append(Home.channel(channel_id))
    return homes


async def visible_facts(pool: asyncpg.Pool, user: UserKey, *, channel_id: str, history: bool) -> list[Fact]:
    """Newest first; with `history`, superseded and expired versions too."""
    async with fact_scope(pool, user, channel_id) as conn:
        return await facts.listing(conn, user, homes_for(user, channel_id), history=history)


async def remove_fact(pool: asyncpg.Pool, user: UserKey, *, channel_id: str, fact_id: int) -> Fact | None:
    """Remove a fact the person can see where they ask (with its earlier versions); None if none."""
    async with fact_scope(pool, user, channel_id) as conn:
        return await facts.remove(conn, user, fact_id)


def fact_line(fact: Fact, *, now: datetime) -> str:
    """One fact for a chat message: id, content, whose, and when ("12 · is called Sam · you · said …")."""
    whose = {"person": "you", "channel": "this channel", "workspace": "the workspace"}[fact.scope]
    if fact.scope != "person":
        whose += f", told by {fact.author_id}" if fact.author_id else ", told by someone forgotten since"
    return f"{fact.id} · {fact.content} · {whose} · {facts.describe(fact, now)}"
