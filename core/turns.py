"""Persistence of turns: dedupe, the two messages, usage and cost, latency, the reply's platform id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import asyncpg

from core.models import Inbound, Reply, Step


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCall:
    """Usage of one model request inside a turn (seed property 3)."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


def total_cost(calls: Sequence[ModelCall]) -> float | None:
    """The turn's cost; None ("unknown") when there were no calls or any call's price is unknown, never 0."""
    if not calls or any(c.cost_usd is None for c in calls):
        return None
    return sum(c.cost_usd for c in calls if c.cost_usd is not None)


async def claim_event(pool: asyncpg.Pool, platform: str, event_id: str) -> bool:
    """True the first time an event is seen, on any instance sharing the database."""
    row = await pool.fetchval(
        "INSERT INTO processed_events (platform, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        platform,
        event_id,
    )
    return row is not None


async def start_turn(pool: asyncpg.Pool, inbound: Inbound, *, text: str, model: str | None) -> tuple[int, int]:
    """Open the turn and store the (already masked) user message in one statement; return (turn id, message id)."""
    row = await pool.fetchrow(
        """WITH turn AS (
               INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id, event_id, model)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
           )
           INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)
           SELECT $1, $2, $3, $4, $5, 'user', $8, id FROM turn
           RETURNING turn_id, id""",
        inbound.platform,
        inbound.workspace_id,
        inbound.channel_id,
        inbound.thread_id,
        inbound.user_id,
        inbound.event_id,
        model,
        text,
    )
    turn_id, message_id = row["turn_id"], row["id"]
    return int(turn_id), int(message_id)


async def record_blocked(pool: asyncpg.Pool, inbound: Inbound, *, rail: str | None) -> int:
    """A turn refused by the input rails: recorded with its rail, without the message."""
    turn_id = await pool.fetchval(
        """INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id, event_id, status,
                              blocked, block_rail)
           VALUES ($1, $2, $3, $4, $5, $6, 'blocked', true, $7) RETURNING id""",
        inbound.platform,
        inbound.workspace_id,
        inbound.channel_id,
        inbound.thread_id,
        inbound.user_id,
        inbound.event_id,
        rail,
    )
    return int(turn_id)


async def finish_turn(
    pool: asyncpg.Pool,
    inbound: Inbound,
    *,
    turn_id: int,
    reply: Reply,
    calls: Sequence[ModelCall],
    trace_id: str | None,
) -> None:
    """Store the reply (unless it was blocked), usage rows, totals and latency in one statement."""
    cost = total_cost(calls)
    answered = not reply.blocked and not reply.error
    await pool.execute(
        """WITH reply AS (
               INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)
               SELECT $2, $3, $14, $15, $4, 'assistant', $16, $1 WHERE $17
           ),
           calls AS (
               INSERT INTO usage
                   (turn_id, platform, workspace_id, user_id, model, input_tokens, output_tokens, cost_usd)
               SELECT $1, $2, $3, $4, c.model, c.input_tokens, c.output_tokens, c.cost_usd
               FROM unnest($18::text[], $19::int[], $20::int[], $21::float8[])
                   AS c (model, input_tokens, output_tokens, cost_usd)
           )
           UPDATE turns SET status = $5, blocked = $6, block_rail = $7, error = $8, latency_ms = $9,
               input_tokens = $10, output_tokens = $11, cost_usd = $12, trace_id = $13, steps = $22::jsonb
           WHERE id = $1""",
        turn_id,
        inbound.platform,
        inbound.workspace_id,
        inbound.user_id,
        "error" if reply.error else ("blocked" if reply.blocked else "answered"),
        reply.blocked,
        reply.block_rail,
        reply.error,
        reply.latency_ms,
        reply.usage.input_tokens,
        reply.usage.output_tokens,
        cost,
        trace_id,
        inbound.channel_id,
        inbound.thread_id,
        reply.text,
        answered,
        [c.model for c in calls],
        [c.input_tokens for c in calls],
        [c.output_tokens for c in calls],
        [c.cost_usd for c in calls],
        json.dumps([_step_json(s) for s in reply.steps]),
    )


def _step_json(step: Step) -> dict[str, object]:
    return asdict(step)


async def record_delivery(pool: asyncpg.Pool, turn_id: int, platform_message_id: str) -> None:
    """Remember which platform message carried the reply, so a reaction on it finds the turn."""
    await pool.execute(
        """WITH turn AS (UPDATE turns SET platform_message_id = $2 WHERE id = $1)
           UPDATE messages SET platform_message_id = $2 WHERE turn_id = $1 AND role = 'assistant'""",
        turn_id,
        platform_message_id,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageRow:
    platform: str
    workspace_id: str
    user_id: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


async def usage_since(pool: asyncpg.Pool, since: datetime) -> list[UsageRow]:
    rows = await pool.fetch(
        """SELECT platform, workspace_id, user_id, model, count(*) AS calls,
                  sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost
           FROM usage WHERE created_at >= $1
           GROUP BY platform, workspace_id, user_id, model ORDER BY platform, workspace_id, user_id, model""",
        since,
    )
    return [
        UsageRow(
            platform=r["platform"],
            workspace_id=r["workspace_id"],
            user_id=r["user_id"],
            model=r["model"],
            calls=r["calls"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cost_usd=float(r["cost"]) if r["cost"] is not None else None,
        )
        for r in rows
    ]
