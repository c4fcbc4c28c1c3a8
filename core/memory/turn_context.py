"""What a turn's prompt is given of a person: their profile, the facts in force where they ask (their own, the
workspace's and, outside a DM, the channel's) and the recall's candidates for the message, read in one statement
that names its tenant itself (migration 0038's `parley_turn_context`): one round trip, no BEGIN or COMMIT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from core.memory.facts import Fact, prefixed_fact
from core.memory.profiles import profile_of
from core.memory.ranking import Candidate
from core.memory.search import candidate_of, recall_arguments
from core.models import UserKey
from core.seams import Profile
from core.store.tenancy import self_scoped

_SQL = "SELECT * FROM parley_turn_context($1, $2, $3, $4, $5" + "".join(f", ${i}" for i in range(6, 16)) + ")"


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnContext:
    facts: list[Fact]
    """In force at the turn's time, oldest first (as `core.memory.facts.in_force` reads them)."""
    profile: Profile
    candidates: list[Candidate]
    """The recall's, as `core.memory.search.search` finds them, for ranking."""


async def turn_context(
    pool: asyncpg.Pool,
    user: UserKey,
    *,
    channel_id: str,
    now: datetime,
    query: str,
    vector: np.ndarray | None,
    model: str,
    pool_size: int,
    recent: int,
) -> TurnContext:
    """The person's context for a turn in `channel_id` ("" in a DM, where no channel's facts are seen), with
    the recall's candidates for the masked `query` and its `vector` (the arguments of `core.memory.search`)."""
    recall = recall_arguments(user, query=query, vector=vector, model=model, pool_size=pool_size, recent=recent)
    async with self_scoped(pool) as conn:
        # the person's keys, the channel and the time, then the recall's arguments after its own person's keys
        rows = await conn.fetch(_SQL, user.platform, user.workspace_id, user.user_id, channel_id, now, *recall[3:])
    return TurnContext(
        facts=[prefixed_fact(row) for row in rows if row["fact_id"] is not None],
        profile=profile_of(rows[0]) if rows[0]["has_profile"] else Profile(),
        candidates=[candidate_of(row) for row in rows if row["id"] is not None],
    )
