"""What a turn's prompt is given of a person before recall: their profile and the facts in force where they
ask (their own, the workspace's and, outside a DM, the channel's), read in one statement that names its
tenant itself (migration 0038's `parley_turn_context`): one round trip, no BEGIN or COMMIT."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from core.memory.facts import Fact
from core.memory.profiles import profile_of
from core.models import UserKey
from core.seams import Profile
from core.store.tenancy import self_scoped

_FACT = "fact_"


async def turn_context(
    pool: asyncpg.Pool, user: UserKey, *, channel_id: str, now: datetime
) -> tuple[list[Fact], Profile]:
    """The facts in force at `now` (oldest first, as `core.memory.facts.in_force` reads them) and the profile;
    `channel_id` "" in a DM, where no channel's facts are seen."""
    async with self_scoped(pool) as conn:
        rows = await conn.fetch(
            "SELECT * FROM parley_turn_context($1, $2, $3, $4, $5)",
            user.platform,
            user.workspace_id,
            user.user_id,
            channel_id,
            now,
        )
    profile = profile_of(rows[0]) if rows and rows[0]["has_profile"] else Profile()
    facts = [
        Fact(**{key.removeprefix(_FACT): value for key, value in row.items() if key.startswith(_FACT)})
        for row in rows
        if row["fact_id"] is not None
    ]
    return facts, profile
