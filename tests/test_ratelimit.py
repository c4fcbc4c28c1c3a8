"""Rate budgets per user, workspace, API key and address (seed property 28), kept in Postgres so every
worker and instance shares them: checked against a trivially correct sliding window in memory."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import WorkspaceKey
from core.ratelimit import Budget, take, turn_budgets
from core.store.tenancy import scoped

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class ReferenceWindow:
    """At most `limit` hits in any `window_s` seconds; a refused hit is not counted."""

    limit: int
    window_s: float = 60.0
    times: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        while self.times and now - self.times[0] >= self.window_s:
            self.times.popleft()
        return self.window_s - (now - self.times[0]) if len(self.times) >= self.limit else 0.0


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def bucket() -> str:
    return f"test:{uuid.uuid4().hex}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(1, 6),
    gaps=st.lists(st.integers(0, 30_000).map(lambda ms: ms / 1000), min_size=1, max_size=25),
)
async def test_p28_the_shared_window_agrees_with_a_sliding_window_in_memory(
    pool: asyncpg.Pool, limit: int, gaps: list[float]
) -> None:
    budget, reference, now = Budget(bucket=bucket(), limit=limit), ReferenceWindow(limit), 0.0
    for gap in gaps:
        now += gap
        expected = reference.wait(now)
        if not expected:
            reference.times.append(now)
        assert await take(pool, [budget], at=at(now)) == pytest.approx(expected, abs=1e-3)


async def test_the_wait_says_when_the_next_hit_is_allowed(pool: asyncpg.Pool) -> None:
    budget = Budget(bucket=bucket(), limit=1)
    assert await take(pool, [budget], at=at(0)) == 0
    assert await take(pool, [budget], at=at(15)) == 45
    assert await take(pool, [budget], at=at(60)) == 0


async def test_a_refused_person_does_not_use_up_the_workspace_budget(pool: asyncpg.Pool) -> None:
    workspace = uuid.uuid4().hex

    def budgets(user: str) -> list[Budget]:
        return turn_budgets(platform="slack", workspace_id=workspace, user_id=user, per_user=1, per_workspace=2)

    assert await take(pool, budgets("a"), at=at(0)) == 0
    assert await take(pool, budgets("a"), at=at(1)) > 0
    assert await take(pool, budgets("b"), at=at(2)) == 0


async def test_buckets_are_independent(pool: asyncpg.Pool) -> None:
    assert await take(pool, [Budget(bucket=bucket(), limit=1)], at=at(0)) == 0
    assert await take(pool, [Budget(bucket=bucket(), limit=1)], at=at(0)) == 0


async def test_the_app_role_takes_from_a_budget_but_cannot_read_the_hits(pool: asyncpg.Pool) -> None:
    app = scoped(pool, WorkspaceKey(platform="slack", workspace_id="T1"))
    assert await take(app, [Budget(bucket=bucket(), limit=1)]) == 0
    try:
        await app.fetch("SELECT * FROM rate_hits")
    except asyncpg.InsufficientPrivilegeError:
        return
    raise AssertionError("the app role read rate_hits")
