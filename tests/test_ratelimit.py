"""Rate budgets per user and workspace (seed property 28)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.ratelimit import RateBudget, SlidingWindow


@given(
    limit=st.integers(1, 10),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=80),
)
def test_p28_never_more_than_the_limit_in_any_window(limit: int, gaps: list[float]) -> None:
    window = SlidingWindow(limit=limit, window_s=60)
    now, accepted = 0.0, []
    for gap in gaps:
        now += gap
        if window.try_acquire("k", now) == 0:
            accepted.append(now)
    for i, t in enumerate(accepted):
        assert sum(1 for u in accepted[i:] if u - t < 60) <= limit


def test_the_wait_says_when_the_next_event_is_allowed() -> None:
    window = SlidingWindow(limit=1, window_s=60)
    assert window.try_acquire("k", 0) == 0
    assert window.try_acquire("k", 15) == 45
    assert window.try_acquire("k", 60) == 0


def test_a_refused_user_does_not_use_up_the_workspace_budget() -> None:
    budget = RateBudget(per_user=SlidingWindow(limit=1), per_workspace=SlidingWindow(limit=2))
    assert budget.check(workspace="w", user="a", now=0) == 0
    assert budget.check(workspace="w", user="a", now=1) > 0
    assert budget.check(workspace="w", user="b", now=2) == 0


def test_keys_are_independent() -> None:
    window = SlidingWindow(limit=1)
    assert window.try_acquire("a", 0) == 0
    assert window.try_acquire("b", 0) == 0
