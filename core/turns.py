"""Persistence of turns: claims (exactly once, across crashes), the two messages, usage and cost, latency
(where the reply was delivered is core/deliveries.py). Every statement runs in the turn's tenant scope
(core/store/tenancy.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import asyncpg

from core import limits, ratelimit
from core.limits import Standing
from core.memory.facts import Fact, prefixed_fact
from core.memory.history import StoredMessage
from core.memory.store import NewMemory
from core.models import Inbound, Reply, Step
from core.ratelimit import Budget
from core.store.tenancy import TenantKey, scoped, self_scoped, tenant
from core.workspace import Layers, layers_of


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    claimed: bool
    """This instance answers the event: the first time it is seen on any instance sharing the database, or on
    a retry of an event whose turn never finished because its owner (instance `owner` of
    core/store/instance.py) is gone. Taking over closes the dead turn as `interrupted`."""
    wait_s: float
    """Over a rate budget: the seconds to wait (the event is claimed all the same)."""
    layers: Layers = field(default_factory=Layers)
    """The operator settings stored for the turn's channel and its workspace, read in the same statement."""
    standings: tuple[Standing, ...] = ()
    """The spend limits that apply to the turn and where it stands against them (core/limits.py)."""
    history: tuple[StoredMessage, ...] = ()
    """The last messages of the turn's thread, oldest first, read in the same statement."""


async def claim_turn(
    pool: asyncpg.Pool,
    workspace: TenantKey,
    event_id: str,
    *,
    owner: int | None,
    budgets: Sequence[Budget],
    channel_id: str = "",
    user_id: str = "",
    thread_id: str = "",
    history: int = 0,
    now: datetime | None = None,
    hold_s: float = 600.0,
) -> Claim:
    """Claim the event and, when claimed, take one hit from each rate budget; read the settings of
    `channel_id` and its workspace, the last `history` messages of the thread `thread_id` and how many
    spend limits of the channel, the person `user_id` and the workspace apply: one statement that names its
    tenant itself (migration 0034), no BEGIN or COMMIT. Where limits apply to a claimed turn within its rate
    budgets, a transaction of its own locks and checks them and reserves the turn's place (core/limits.py)."""
    buckets, rates = ratelimit.arguments(budgets)
    async with self_scoped(pool) as conn:
        row = await conn.fetchrow(
            "SELECT * FROM parley_claim_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            workspace.platform,
            workspace.workspace_id,
            event_id,
            owner,
            buckets,
            rates,
            ratelimit.WINDOW_S,
            channel_id,
            user_id,
            thread_id,
            history,
        )
    assert row is not None
    standings: Sequence[Standing] = ()
    if row["claimed"] and not row["wait_s"] and row["limits"]:
        async with tenant(pool, workspace) as conn:
            standings = await limits.reserve(
                conn, workspace, event_id=event_id, channel_id=channel_id, user_id=user_id,
                now=now or datetime.now(UTC), hold_s=hold_s,
            )
    stored = zip(row["channels"] or (), row["keys"] or (), row["vals"] or (), strict=True)
    recent = zip(row["message_ids"] or (), row["message_roles"] or (), row["message_contents"] or (), strict=True)
    return Claim(
        claimed=row["claimed"],
        wait_s=row["wait_s"],
        layers=layers_of(list(stored), channel_id),
        standings=tuple(standings),
        history=tuple(StoredMessage(id=i, role=r, content=c) for i, r, c in recent),
    )


INTERRUPTED_ERROR = "interrupted"
"""The error of a turn stopped before it answered: cancelled mid-way (Ctrl-C, a shutdown), or left open by a server
that stopped (closed so by the next start, migration 0034)."""


async def finish_event(pool: asyncpg.Pool, inbound: Inbound, *, error: str) -> None:
    """A turn that ended without being stored (refused early, timed out, failed): its event is done, so a
    retry is not answered twice, a turn it left `started` is closed with `error`, and its place under the
    spend limits is given back."""
    await _close_started(pool, inbound, error=error, event_done=True)


async def close_interrupted(pool: asyncpg.Pool, inbound: Inbound) -> None:
    """A turn stopped mid-way (Ctrl-C in the chat, a shutdown's cancel): closed as interrupted at once, not left
    `started` until the next start, and its place under the spend limits given back. Its event stays claimed and
    unfinished, so a platform's retry after a restart is still answered (`claim_turn` takes over a stopped owner's
    event)."""
    await _close_started(pool, inbound, error=INTERRUPTED_ERROR, event_done=False)


async def _close_started(pool: asyncpg.Pool, inbound: Inbound, *, error: str, event_done: bool) -> None:
    """Close the event's `started` turn with `error` and give back its spend reservation; with `event_done`, mark
    the event finished too."""
    await scoped(pool, inbound.user).execute(
        """WITH done AS (
               UPDATE processed_events SET finished_at = now()
               WHERE $5 AND platform = $1 AND workspace_id = $2 AND event_id = $3 AND finished_at IS NULL
           ),
           released AS (
               DELETE FROM spend_reservations WHERE platform = $1 AND workspace_id = $2 AND event_id = $3
           )
           UPDATE turns SET status = 'error', error = $4
           WHERE platform = $1 AND workspace_id = $2 AND event_id = $3 AND status = 'started'""",
        inbound.platform,
        inbound.workspace_id,
        inbound.event_id,
        error,
        event_done,
    )


INTERRUPTED = """((t.status = 'error' AND t.error = 'interrupted')
      OR (t.status = 'started' AND t.instance IS NOT NULL AND NOT parley_instance_alive(t.instance)))"""
"""SQL over a turn `t`: its server stopped before answering it (closed as `interrupted` by the next start, or still
open by an instance that is gone)."""


async def start_turn(
    pool: asyncpg.Pool, inbound: Inbound, *, text: str, model: str | None, instance: int | None = None
) -> tuple[int, int]:
    """Open the turn and store the (already masked) user message in one statement that names its tenant itself
    (migration 0038, the person's scope): its own transaction, no BEGIN or COMMIT. Return (turn id, message id).

    The same message left unanswered in this conversation by an interrupted turn (a client retrying after
    a crash, `INTERRUPTED`) is removed, so the history holds it once."""
    async with self_scoped(pool) as conn:
        row = await conn.fetchrow(
            "SELECT * FROM parley_start_turn($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            inbound.platform,
            inbound.workspace_id,
            inbound.channel_id,
            inbound.thread_id,
            inbound.user_id,
            inbound.event_id,
            model,
            text,
            instance,
        )
    assert row is not None
    return int(row["started_turn"]), int(row["started_message"])


async def record_blocked(pool: asyncpg.Pool, inbound: Inbound, *, rail: str | None) -> int:
    """A turn refused by the input rails: recorded with its rail, without the message; its place under the
    spend limits is given back."""
    turn_id = await scoped(pool, inbound.user).fetchval(
        """WITH done AS (
               UPDATE processed_events SET finished_at = now()
               WHERE platform = $1 AND workspace_id = $2 AND event_id = $6
           ),
           released AS (
               DELETE FROM spend_reservations WHERE platform = $1 AND workspace_id = $2 AND event_id = $6
           )
           INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id, event_id, status,
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
    memory: NewMemory | None = None,
) -> list[Fact] | None:
    """Store the reply (unless it was blocked), usage rows, totals and latency, mark the event done, add the
    turn's use to the running totals of the person, channel and workspace that a spend limit names and give
    back the place the limit check reserved for it (the totals then hold the real figure); with `memory`, write
    the message's memory row too. One statement that names its tenant itself (migration 0038's
    `parley_finish_turn`, the person's scope): one transaction, so all of it is stored or none. Returns the
    person's newest facts not closed, as many as `memory.known_facts` asks (None where it asks none)."""
    cost = total_cost(calls)
    answered = not reply.blocked and not reply.error
    wanted = memory.known_facts if memory is not None else 0
    async with self_scoped(pool) as conn:
        rows = await conn.fetch(
            "SELECT * FROM parley_finish_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
            " $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)",
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
            inbound.event_id,
            *_memory_arguments(memory),
            wanted,
        )
    return [prefixed_fact(row) for row in rows] if wanted else None


def _memory_arguments(memory: NewMemory | None) -> tuple[object, ...]:
    """`parley_finish_turn`'s memory row arguments, in order; all NULL for a turn that keeps none."""
    if memory is None:
        return (None,) * 6
    return (memory.content, memory.content_hash, memory.embedding, memory.model, memory.source_message_id,
            memory.thread_id)


def _step_json(step: Step) -> dict[str, object]:
    return asdict(step)


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
