"""Rate budgets per user and per workspace: a sliding window, pure, with the clock passed in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class SlidingWindow:
    """At most `limit` events in any `window_s` seconds for each key."""

    limit: int
    window_s: float = 60.0
    events: dict[str, deque[float]] = field(default_factory=dict)

    def try_acquire(self, key: str, now: float) -> float:
        """Record an event and return 0, or return the seconds to wait without recording."""
        times = self.events.setdefault(key, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return self.window_s - (now - times[0])
        times.append(now)
        return 0.0


@dataclass
class RateBudget:
    """Both walls at once: a person may not take the whole workspace's share."""

    per_user: SlidingWindow
    per_workspace: SlidingWindow

    def check(self, *, workspace: str, user: str, now: float) -> float:
        wait = self.per_workspace.try_acquire(workspace, now)
        if wait:
            return wait
        wait = self.per_user.try_acquire(f"{workspace}/{user}", now)
        if wait:
            ws = self.per_workspace.events[workspace]
            ws.pop()
        return wait
