"""Load shedding for turns: a worker takes at most `limit` API turns at once, and none while its event
loop is running late; the next one is refused at once.

A turn over what the worker carries would wait behind every turn already taken, so under overload
latency grows without bound (9 s p95 measured before this) while the client cannot tell why. Refusing
it with 503 and Retry-After costs the server nothing (no database work, no model call) and tells the
client exactly what to do. Two signals say the worker is full: the turns in flight reached the limit
(counted from admission until the turn's task ends, so a streaming turn holds its slot for as long as it
runs, and a client that hangs up does not free a slot its turn still uses), or the event loop runs
its timers late, which means the CPU, not the limit, is what runs out (a shared or smaller machine),
and every turn taken now would slow every turn in flight and every Slack ack.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Admission:
    """The turns one worker has taken and may still take."""

    limit: int
    max_lag_s: float | None = None
    """Refuse while the event loop runs this late (see `LoopLag`); None: never for lateness."""
    lag: LoopLag | None = None
    in_flight: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the admission limit must be at least 1")

    def enter(self) -> Ticket | None:
        """A slot for one turn, or None when every slot is taken or the loop runs late."""
        if self.full():
            return None
        self.in_flight += 1
        return Ticket(admission=self)

    def full(self) -> bool:
        """No room for another turn now (read from the HTTP door's thread too: a plain look, no change)."""
        lag_s = self.lag.lag_s if self.lag is not None else 0.0
        return not admits(in_flight=self.in_flight, limit=self.limit, lag_s=lag_s, max_lag_s=self.max_lag_s)


def admits(*, in_flight: int, limit: int, lag_s: float, max_lag_s: float | None) -> bool:
    """Room for one more turn: a free slot, and an event loop that keeps time."""
    return in_flight < limit and (max_lag_s is None or lag_s <= max_lag_s)


@dataclass(kw_only=True)
class Ticket:
    """One admitted turn's slot: given back once, by whoever holds it last."""

    admission: Admission
    released: bool = False
    handed_over: bool = field(default=False, repr=False)

    def hand_to(self, task: asyncio.Task[object]) -> None:
        """The slot is now the task's: it is given back when the task ends, however it ends."""
        self.handed_over = True
        task.add_done_callback(lambda _: self.release())

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.in_flight -= 1


@dataclass(kw_only=True)
class LoopLag:
    """How late the event loop runs a timer, smoothed: about the wait a request arriving now would see
    before the worker even reads it."""

    interval_s: float = 0.05
    lag_s: float = 0.0

    async def watch(self) -> None:
        """Measure until cancelled (one short timer per interval: no measurable cost)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval_s)
            self.note(loop.time() - started - self.interval_s)

    def note(self, late_s: float) -> None:
        self.lag_s = (self.lag_s + max(0.0, late_s)) / 2
