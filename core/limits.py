"""Spend limits: tokens or USD per day or per month (UTC), for a person, a channel or a workspace.

Use is kept as running totals per day (`spend_totals`, migration 0023) for every person, channel and
workspace a limit names, added by each turn's finishing statement; a monthly limit sums at most 31 rows.
The check runs inside the turn's claim (core/turns.py), so it costs no transaction of its own: the claim
locks the limits that apply, then one statement compares them with the totals plus the turns already let
through and not finished, reserves a place for this turn when none is reached, and records the 80 %
warnings it gives (once per person, limit and period). Everything is in Postgres, shared by every worker
and instance. The decision is a pure function of the standings. A turn whose cost is unknown (the
provider gave no price) counts towards token limits only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from core import audit
from core.store.tenancy import TenantKey, tenant

Scope = Literal["person", "channel", "workspace"]
Metric = Literal["tokens", "usd"]
Period = Literal["day", "month"]
WARN_AT = 0.8
MAX_AMOUNT = 999_999_999_999.0
"""The largest limit stored (tokens or USD): spend_limits.amount is numeric(18, 6), under 10^12."""
WHO_CAN_RAISE = "a Parley operator of this workspace can raise it (`parley limits set` or the admin page)"


@dataclass(frozen=True, kw_only=True, slots=True)
class SpendLimit:
    platform: str
    workspace_id: str
    scope: Scope
    subject: str
    """The person's or channel's id; '' for a workspace limit."""
    metric: Metric
    period: Period
    amount: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Standing:
    """A limit that applies to a turn and what was used against it in the current period."""

    limit: SpendLimit
    used: float
    reserved: float = 0.0
    """What the turns already let through and not yet finished are expected to use."""
    warn: bool = False
    """This turn gives the 80 % warning (recorded, so it is given once a period)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    refusal: str | None = None
    """Over a limit: the reply instead of calling the model."""
    warning: str | None = None
    """A note to add to the reply."""


# -- pure logic -------------------------------------------------------------------------------
def period_start(period: Period, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def resets_at(period: Period, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def decide(standings: Sequence[Standing], now: datetime) -> Decision:
    """Refuse on any limit reached (naming the one that lasts longest); otherwise warn on the first one the
    database recorded a warning for."""
    over = [s for s in standings if s.used + s.reserved >= s.limit.amount]
    if over:
        worst = max(over, key=lambda s: (resets_at(s.limit.period, now), s.used / max(s.limit.amount, 1e-9)))
        return Decision(refusal=refusal_text(worst, now))
    warned = [s for s in standings if s.warn]
    return Decision(warning=warning_text(warned[0], now) if warned else None)


def refusal_text(standing: Standing, now: datetime) -> str:
    limit = standing.limit
    pending = ", more in answers being written" if standing.reserved else ""
    return (
        f"You've reached {_whose(limit)} {_adjective(limit.period)} limit of {_amount(limit.metric, limit.amount)} "
        f"({_number(limit.metric, standing.used)} used{pending}), so I won't answer until it resets "
        f"{_when(limit.period, now)}. If you need more sooner, {WHO_CAN_RAISE}."
    )


def warning_text(standing: Standing, now: datetime) -> str:
    limit = standing.limit
    share = standing.used / limit.amount if limit.amount else 1.0
    return (
        f"Heads-up: {share:.0%} of {_whose(limit)} {_adjective(limit.period)} limit is used "
        f"({_number(limit.metric, standing.used)} of {_amount(limit.metric, limit.amount)}); "
        f"it resets {_when(limit.period, now)}."
    )


def _whose(limit: SpendLimit) -> str:
    return {"person": "your", "channel": "this channel's", "workspace": "this workspace's"}[limit.scope]


def _adjective(period: Period) -> str:
    return "daily" if period == "day" else "monthly"


def _amount(metric: Metric, value: float) -> str:
    return f"{value:,.0f} tokens" if metric == "tokens" else f"${value:,.2f}"


def _number(metric: Metric, value: float) -> str:
    return f"{value:,.0f}" if metric == "tokens" else f"${value:,.2f}"


def _when(period: Period, now: datetime) -> str:
    at = resets_at(period, now)
    left = at - now
    hours, rest = divmod(int(left.total_seconds()) // 60, 60)
    span = f"{left.days} days" if left.days >= 2 else f"{hours} h {rest} min" if hours else f"{rest} min"
    return f"at {at:%H:%M} UTC on {at:%d %b %Y} (in {span})"


# -- the check before a turn ------------------------------------------------------------------
_LOCK_SQL = """
SELECT id FROM spend_limits
WHERE platform = $1 AND workspace_id = $2
  AND (scope = 'workspace' OR (scope = 'channel' AND subject = $3) OR (scope = 'person' AND subject = $4))
ORDER BY id FOR UPDATE"""

_CHECK_SQL = """
WITH lim AS (
    SELECT l.*, CASE l.period WHEN 'day' THEN $5::timestamptz ELSE $6::timestamptz END AS starts
    FROM spend_limits l
    WHERE l.platform = $1 AND l.workspace_id = $2
      AND (l.scope = 'workspace' OR (l.scope = 'channel' AND l.subject = $3) OR (l.scope = 'person' AND l.subject = $4))
), totals AS (
    SELECT lim.*, t.tokens, t.usd, t.turns, t.priced, (
        SELECT count(*) FROM spend_reservations r
        WHERE r.platform = $1 AND r.workspace_id = $2 AND r.event_id <> $8
          AND r.reserved_at > now() - make_interval(secs => $9)
          AND (lim.scope = 'workspace' OR (lim.scope = 'channel' AND r.channel_id = $3)
               OR (lim.scope = 'person' AND r.user_id = $4))
    ) AS in_flight
    FROM lim CROSS JOIN LATERAL (
        SELECT coalesce(sum(s.tokens), 0)::float8 AS tokens, coalesce(sum(s.usd), 0)::float8 AS usd,
               coalesce(sum(s.turns), 0) AS turns, coalesce(sum(s.priced_turns), 0) AS priced
        FROM spend_totals s
        WHERE s.platform = $1 AND s.workspace_id = $2 AND s.scope = lim.scope AND s.subject = lim.subject
          AND s.day >= (lim.starts AT TIME ZONE 'UTC')::date
    ) t
), standing AS (
    SELECT totals.*,
           CASE WHEN metric = 'tokens' THEN tokens ELSE usd END AS used,
           in_flight * CASE WHEN metric = 'tokens' THEN tokens / greatest(turns, 1) ELSE usd / greatest(priced, 1) END
               AS reserved
    FROM totals
), verdict AS (
    SELECT EXISTS (SELECT 1 FROM standing WHERE used + reserved >= amount::float8) AS over
), reserve AS (
    INSERT INTO spend_reservations (platform, workspace_id, event_id, user_id, channel_id)
    SELECT $1, $2, $8, $4, $3 FROM verdict WHERE NOT over
    ON CONFLICT (platform, workspace_id, event_id) DO UPDATE SET reserved_at = now()
), warned AS (
    INSERT INTO spend_warnings (platform, workspace_id, user_id, limit_id, period_start)
    SELECT $1, $2, $4, id, starts FROM standing
    WHERE used < amount::float8 AND used >= amount::float8 * $7::float8 AND NOT (SELECT over FROM verdict)
    ON CONFLICT DO NOTHING RETURNING limit_id
)
SELECT platform, workspace_id, scope, subject, metric, period, amount::float8 AS amount, used, reserved,
       EXISTS (SELECT 1 FROM warned w WHERE w.limit_id = standing.id) AS warn
FROM standing ORDER BY id"""


async def reserve(
    conn: asyncpg.Connection,
    workspace: TenantKey,
    *,
    event_id: str,
    channel_id: str,
    user_id: str,
    now: datetime,
    hold_s: float,
) -> list[Standing]:
    """On a connection inside a transaction of the turn's workspace: lock the turn's limits (in one order,
    so two turns never deadlock; a second turn then checks only once the first one's reservation is
    committed), then check them against their running totals and the turns in flight and, when none is
    reached, reserve a place for this turn (released by its finish) and record the 80 % warnings it gives.
    Two statements: the check must come after the lock, whose wait its snapshot must not predate.

    A turn in flight counts at its subject's average use per turn so far this period; a reservation older
    than `hold_s` (the turn timeout: its process died) no longer counts."""
    await conn.execute(_LOCK_SQL, workspace.platform, workspace.workspace_id, channel_id, user_id)
    rows = await conn.fetch(
        _CHECK_SQL,
        workspace.platform,
        workspace.workspace_id,
        channel_id,
        user_id,
        period_start("day", now),
        period_start("month", now),
        WARN_AT,
        event_id,
        hold_s,
    )
    return [Standing(limit=_limit(r), used=r["used"], reserved=r["reserved"], warn=r["warn"]) for r in rows]


# -- operators' edits -------------------------------------------------------------------------
async def set_limit(pool: asyncpg.Pool, workspace: TenantKey, limit: SpendLimit, *, by: audit.Actor) -> float | None:
    """Create or change a limit; return the amount it replaced."""
    if not 0 <= limit.amount <= MAX_AMOUNT:
        raise ValueError(f"a limit is between 0 and {MAX_AMOUNT:,.0f}")
    if (limit.scope == "workspace") != (limit.subject == ""):
        raise ValueError("a workspace limit names no subject; a person or channel limit names one")
    async with tenant(pool, workspace) as conn:
        old = await conn.fetchval(
            """WITH old AS (
                   SELECT amount FROM spend_limits WHERE platform = $1 AND workspace_id = $2 AND scope = $3
                     AND subject = $4 AND metric = $5 AND period = $6 FOR UPDATE
               ), up AS (
                   INSERT INTO spend_limits (platform, workspace_id, scope, subject, metric, period, amount)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (platform, workspace_id, scope, subject, metric, period)
                   DO UPDATE SET amount = EXCLUDED.amount, updated_at = now()
               )
               SELECT amount::float8 FROM old""",
            *_key(workspace, limit),
            limit.amount,
        )
        await _recount(conn, workspace, limit)
        await audit.record(conn, workspace, by=by, action="limit.set", target=describe(limit), old=old,
                           new=limit.amount)
    return float(old) if old is not None else None


async def _recount(conn: asyncpg.Connection, workspace: TenantKey, limit: SpendLimit) -> None:
    """The running totals of the limit's subject this month, counted afresh from its turns: turns only
    keep them for subjects a limit names, so a new limit starts from what was used before it."""
    key = (workspace.platform, workspace.workspace_id, limit.scope, limit.subject)
    month = period_start("month", datetime.now(UTC))
    await conn.execute(
        """DELETE FROM spend_totals WHERE platform = $1 AND workspace_id = $2 AND scope = $3 AND subject = $4
             AND day >= ($5::timestamptz AT TIME ZONE 'UTC')::date""",
        *key,
        month,
    )
    await conn.execute(
        """INSERT INTO spend_totals (platform, workspace_id, scope, subject, day, tokens, usd, turns, priced_turns)
           SELECT $1, $2, $3, $4, (t.created_at AT TIME ZONE 'UTC')::date, sum(t.input_tokens + t.output_tokens),
                  coalesce(sum(t.cost_usd), 0), count(*) FILTER (WHERE t.input_tokens + t.output_tokens > 0),
                  count(t.cost_usd)
           FROM turns t
           WHERE t.platform = $1 AND t.workspace_id = $2 AND t.created_at >= $5
             AND ($3 = 'workspace' OR ($3 = 'channel' AND t.channel_id = $4) OR ($3 = 'person' AND t.user_id = $4))
           GROUP BY 5""",
        *key,
        month,
    )


async def clear_limit(pool: asyncpg.Pool, workspace: TenantKey, limit: SpendLimit, *, by: audit.Actor) -> float | None:
    """Remove a limit (its amount is ignored); return the amount it had, None when there was none."""
    async with tenant(pool, workspace) as conn:
        old = await conn.fetchval(
            """DELETE FROM spend_limits WHERE platform = $1 AND workspace_id = $2 AND scope = $3 AND subject = $4
                 AND metric = $5 AND period = $6 RETURNING amount::float8""",
            *_key(workspace, limit),
        )
        if old is not None:
            await audit.record(conn, workspace, by=by, action="limit.clear", target=describe(limit), old=old)
    return float(old) if old is not None else None


async def list_limits(
    pool: asyncpg.Pool, *, platform: str | None = None, workspace_id: str | None = None
) -> list[SpendLimit]:
    """Every limit an operator's pool can see, optionally of one workspace."""
    rows = await pool.fetch(
        """SELECT platform, workspace_id, scope, subject, metric, period, amount::float8 AS amount
           FROM spend_limits WHERE ($1::text IS NULL OR platform = $1) AND ($2::text IS NULL OR workspace_id = $2)
           ORDER BY platform, workspace_id, scope, subject, metric, period""",
        platform,
        workspace_id,
    )
    return [_limit(r) for r in rows]


def describe(limit: SpendLimit) -> str:
    """`person U1 tokens/day`, `workspace usd/month`: how a limit is named in the audit log and listings."""
    who = limit.scope if limit.scope == "workspace" else f"{limit.scope} {limit.subject}"
    return f"{who} {limit.metric}/{limit.period}"


def _key(workspace: TenantKey, limit: SpendLimit) -> tuple[str, str, str, str, str, str]:
    return (workspace.platform, workspace.workspace_id, limit.scope, limit.subject, limit.metric, limit.period)


def _limit(row: asyncpg.Record) -> SpendLimit:
    return SpendLimit(
        platform=row["platform"],
        workspace_id=row["workspace_id"],
        scope=row["scope"],
        subject=row["subject"],
        metric=row["metric"],
        period=row["period"],
        amount=float(row["amount"]),
    )
