"""Work handed between event loops that run in different threads.

`parley serve` answers HTTP on a loop of its own (bot/front_door.py) while turns run on the
pipeline's loop: asyncpg pools, HTTP clients and tasks belong to the loop that made them, so work
that touches them is sent to that loop, and what only the door needs stays on the door's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def on_loop(loop: asyncio.AbstractEventLoop, work: Callable[[], Awaitable[T]]) -> T:
    """What `work()` gives, awaited on `loop` (this one, or another thread's; `work` is called there);
    cancelling the wait cancels it there."""
    if loop is asyncio.get_running_loop():
        return await work()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_run(work), loop))


async def _run(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def call_on(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Call `callback` on `loop`: now when it is the running loop, else as soon as that loop gets to it."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        callback()
    else:
        loop.call_soon_threadsafe(callback)
