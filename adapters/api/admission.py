"""Load shedding for turns: a worker takes at most `limit` API turns at once and refuses the next at once.

A turn over the limit would wait for a free slot behind every turn already taken, so under overload
latency grows without bound (9 s p95 measured before this) while the client cannot tell why. Refusing
it with 503 and Retry-After costs the server nothing (no database work, no model call) and tells the
client exactly what to do. The limit counts a turn from admission until its task ends, so a streaming
turn holds its slot for as long as it runs, and a client that hangs up does not free a slot its turn
still uses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Admission:
    """The turns one worker has taken and may still take."""

    limit: int
    in_flight: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the admission limit must be at least 1")

    def enter(self) -> Ticket | None:
        """A slot for one turn, or None when every slot is taken."""
        if self.in_flight >= self.limit:
            return None
        self.in_flight += 1
        return Ticket(admission=self)


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
