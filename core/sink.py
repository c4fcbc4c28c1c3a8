"""Where one turn's reply goes: the small protocol every adapter implements for the pipeline.

An adapter turns a platform event into an `Inbound`, builds a sink for it (a Slack stream, Discord
messages being edited, a server-sent-event stream, a terminal) and calls `pipeline.run(inbound,
sink)`. The pipeline streams the reply through the sink (after the output rails), shows what it is
doing, and finally hands over the finished `Reply`; the sink answers with the ids of the platform
messages that carry it, which the turn records (core/deliveries.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.models import Reply, ToolProgress

THINKING = "is thinking…"
"""The status a turn shows once it has taken its event, before the model answers."""


class ReplySink(Protocol):
    streams: bool
    """True: show the reply while it is written (`delta`); False: only the finished reply matters, and the
    turn makes one plain model request."""

    async def delta(self, text: str) -> None:
        """More of the reply, already passed by the output rails; the final reply may still replace it."""
        ...

    async def status(self, text: str) -> None:
        """What Parley is doing now ("is thinking…"), for platforms that show a status line."""
        ...

    async def tool(self, progress: ToolProgress) -> None:
        """A tool call was queued, started, or ended."""
        ...

    async def finish(self, reply: Reply) -> Sequence[str]:
        """Show exactly the final reply (it replaces whatever streamed) and return the ids of the
        platform messages that carry it, in order; empty when nothing can be reacted to."""
        ...
