"""Rate budgets shared by every worker and instance: sliding windows kept in Postgres.

Each budget is a bucket ('user:slack/T1/U1') with a limit of hits per window. The window itself is
`parley_rate_take` of migration 0012: it checks several buckets in one statement, all or nothing (a
person refused does not use up the workspace's share), and returns the seconds to wait. One round trip
per check, and for a turn none at all: the claim of its event carries its budgets (core/turns.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

WINDOW_S = 60.0
TAKE = "parley_rate_take($1::text[], $2::integer[], $3::float8, $4::timestamptz)"


class Executor(Protocol):
    async def fetchval(self, query: str, *args: Any) -> Any: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """At most `limit` hits per window in `bucket`."""

    bucket: str
    limit: int


def turn_budgets(*, platform: str, workspace_id: str, user_id: str, per_user: int, per_workspace: int) -> list[Budget]:
    """A turn counts against its person and its workspace."""
    workspace = f"{platform}/{workspace_id}"
    return [
        Budget(bucket=f"workspace:{workspace}", limit=per_workspace),
        Budget(bucket=f"user:{workspace}/{user_id}", limit=per_user),
    ]


def arguments(budgets: Sequence[Budget]) -> tuple[list[str], list[int]]:
    """The buckets and limits as `parley_rate_take` takes them."""
    return [b.bucket for b in budgets], [b.limit for b in budgets]


async def take(
    db: Executor, budgets: Sequence[Budget], *, window_s: float = WINDOW_S, at: datetime | None = None
) -> float:
    """Count one hit in every budget and return 0, or return the seconds to wait and count nothing.
    `at` is the database's clock unless given (tests pass their own)."""
    buckets, limits = arguments(budgets)
    wait: float = await db.fetchval(f"SELECT {TAKE}", buckets, limits, window_s, at)
    return wait
