"""Micro-batching: concurrent callers' items go through one function in shared passes.

A model call costs much less per item in a batch than alone (MiniLM: 10.6 ms for one short text,
4.7 ms each in a batch of 16, measured), and concurrent turns often ask at the same moment. A
`MicroBatcher` queues the items callers submit; one drain task runs the passes back to back, and
each pass takes every item waiting (up to `max_batch`). An item that is already queued or in a
running pass is not queued again: the caller waits for that pass's result. A failing pass fails
every caller waiting on its items and the next pass runs as usual; a caller that is cancelled stops
waiting without cancelling the pass the others wait for.

The pass itself is the caller's `run` coroutine: CPU-bound work belongs in an executor there, so
nothing expensive runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Runs `run(items) -> results` (in order, one per item) over the items of concurrent callers."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.run = run
        self.max_batch = max_batch
        self.passes = 0
        """Passes run so far (tests and metrics read it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[Item, asyncio.Future[Result]] = {}
        self._queue: list[Item] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """The result of every item, in order; each distinct item goes through one pass."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        waits: dict[Item, asyncio.Future[Result]] = {}
        for item in dict.fromkeys(items):
            future = self._pending.get(item)
            if future is None:
                future = self._pending[item] = loop.create_future()
                future.add_done_callback(_retrieve)
                self._queue.append(item)
            waits[item] = future
        if self._queue and self._drain is None:
            self._drain = loop.create_task(self._run_queue())
        results = {item: await asyncio.shield(future) for item, future in waits.items()}
        return [results[item] for item in items]

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Futures belong to one event loop; a new loop (a test, a restarted CLI) starts a fresh queue."""
        if self._loop is not loop:
            self._loop, self._pending, self._queue, self._drain = loop, {}, [], None

    async def _run_queue(self) -> None:
        batch: list[Item] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self.passes += 1
                try:
                    results = await self.run(batch)
                    if len(results) != len(batch):
                        raise RuntimeError(f"a pass over {len(batch)} items returned {len(results)} results")
                except Exception as exc:
                    for item in batch:
                        self._pending.pop(item).set_exception(exc)
                    continue
                for item, result in zip(batch, results, strict=True):
                    self._pending.pop(item).set_result(result)
        finally:
            self._drain = None
            for item in [*batch, *self._queue]:
                future = self._pending.pop(item, None)
                if future is not None and not future.done():
                    future.cancel()
            self._queue = []


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: every caller got it already, or was cancelled and no longer cares."""
    if not future.cancelled():
        future.exception()
