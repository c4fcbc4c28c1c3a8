"""Streaming a reply into Discord messages without edit storms.

The reply text grows as the model streams. At most once per `interval` the streamer plans the
messages the text needs (`split_message`) and brings what is on screen in line with the plan: new
messages are sent, changed ones edited, surplus ones deleted. The last write waits for the interval
too, so one reply never edits faster than once a second; discord.py's own rate limiter handles
the buckets behind it.

The rating buttons ride on the last message's write. Where Discord refuses components (400: an app or
channel that may not use them), that write goes again without them: the answer's text must land.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import discord

from adapters.discord.chunking import DISCORD_LIMIT, split_message

log = logging.getLogger("parley.discord")
EMPTY_REPLY = "_(I have nothing to add.)_"
"""Discord refuses empty messages; a turn that produced no text says so."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Send:
    index: int
    content: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Edit:
    index: int
    content: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Delete:
    index: int


Op = Send | Edit | Delete


def diff(shown: Sequence[str], wanted: Sequence[str]) -> list[Op]:
    """The writes that turn the messages on screen into the wanted ones (surplus deleted last-first)."""
    ops: list[Op] = []
    for index, content in enumerate(wanted):
        if index >= len(shown):
            ops.append(Send(index=index, content=content))
        elif shown[index] != content:
            ops.append(Edit(index=index, content=content))
    ops.extend(Delete(index=index) for index in reversed(range(len(wanted), len(shown))))
    return ops


@dataclass(kw_only=True, slots=True)
class Throttle:
    """At most one write burst per `interval` seconds; the clock is passed in."""

    interval: float
    last: float | None = None

    def wait(self, now: float) -> float:
        """Seconds until the next burst may go (0 when it may go now)."""
        return 0.0 if self.last is None else max(0.0, self.last + self.interval - now)

    def mark(self, now: float) -> None:
        self.last = now


class Surface(Protocol):
    """Where one reply's messages live: a channel (replying to a message) or an interaction."""

    async def send(self, index: int, content: str, view: discord.ui.View | None = None) -> None: ...

    async def edit(self, index: int, content: str, view: discord.ui.View | None = None) -> None: ...

    async def delete(self, index: int) -> None: ...


class Streamer:
    """Shows a growing reply on a `Surface`; `on_delta` is the pipeline's streaming callback."""

    def __init__(
        self,
        surface: Surface,
        *,
        interval: float,
        limit: int = DISCORD_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.surface = surface
        self.limit = limit
        self.throttle = Throttle(interval=interval)
        self.text = ""
        self.shown: list[str] = []
        self._clock = clock
        self._sleep = sleep

    async def on_delta(self, delta: str) -> None:
        """Take more text; show it now if the last write is an interval old, else at a later delta."""
        self.text += delta
        if self.throttle.wait(self._clock()) == 0 and self.text.strip():
            await self._show(split_message(self.text, self.limit))

    async def finish(self, text: str, *, view: discord.ui.View | None = None) -> bool:
        """Show the final text (which replaces whatever streamed: a refusal, an error, the notes).

        `view` rides on the write of the last message, so buttons cost no call of their own. False
        when that message was already final on screen: no write went out and `view` was not offered.
        """
        wanted = split_message(text, self.limit) or [EMPTY_REPLY]
        if wanted == self.shown:
            return False
        await self._sleep(self.throttle.wait(self._clock()))
        return await self._show(wanted, view=view)

    async def _show(self, wanted: list[str], *, view: discord.ui.View | None = None) -> bool:
        """Write the difference; True when `view` was offered with the last wanted message's write (sent, or
        refused by Discord and left off)."""
        last = len(wanted) - 1
        carried = False
        for op in diff(self.shown, wanted):
            match op:
                case Send(index=index, content=content):
                    await _refused_view_left_off(
                        partial(self.surface.send, index, content), view if index == last else None
                    )
                    self.shown.append(content)
                    carried |= index == last
                case Edit(index=index, content=content):
                    await _refused_view_left_off(
                        partial(self.surface.edit, index, content), view if index == last else None
                    )
                    self.shown[index] = content
                    carried |= index == last
                case Delete(index=index):
                    await self.surface.delete(index)
                    del self.shown[index]
        self.throttle.mark(self._clock())
        return carried and view is not None


async def _refused_view_left_off(
    write: Callable[[discord.ui.View | None], Awaitable[None]], view: discord.ui.View | None
) -> None:
    """`write(view)`; if Discord answers 400 to a write carrying components, the same write without them."""
    try:
        await write(view)
    except discord.HTTPException as exc:
        if view is None or exc.status != 400:
            raise
        log.warning("Discord refused the rating buttons (%s %s: %s); the answer went out without them",
                    exc.status, exc.code, " ".join(exc.text.split()))
        await write(None)
