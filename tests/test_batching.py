"""The micro-batcher: concurrent callers' items share passes of one function."""

from __future__ import annotations

import asyncio

import pytest

from core.batching import MicroBatcher


class Recorder:
    """A pass that records its batches and, while `hold` is set, waits for `release`."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.hold = False
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(items)
        self.started.set()
        if self.hold:
            await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError(f"cannot do {self.fail_on}")
        return [item.upper() for item in items]


Held = tuple[Recorder, MicroBatcher[str, str], "asyncio.Future[list[str]]"]


async def a_held_pass(recorder: Recorder | None = None) -> Held:
    """A batcher running a pass on "first" that stays running until `recorder.release` is set."""
    recorder = recorder or Recorder()
    recorder.hold = True
    batcher = MicroBatcher(recorder, max_batch=8)
    first = asyncio.ensure_future(batcher.submit(["first"]))
    await recorder.started.wait()
    return recorder, batcher, first


async def test_a_lone_call_runs_one_pass_and_gets_its_results_in_order() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8)
    assert await batcher.submit(["b", "a", "b"]) == ["B", "A", "B"]
    assert recorder.batches == [["b", "a"]]


async def test_callers_arriving_during_a_pass_share_the_next_one() -> None:
    recorder, batcher, first = await a_held_pass()
    later = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(5)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == ["FIRST"]
    assert [await task for task in later] == [[f"T{i}"] for i in range(5)]
    assert recorder.batches == [["first"], [f"t{i}" for i in range(5)]]
    assert batcher.passes == 2


async def test_a_pass_takes_at_most_max_batch_items() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=3)
    assert await batcher.submit([f"t{i}" for i in range(7)]) == [f"T{i}" for i in range(7)]
    assert [len(batch) for batch in recorder.batches] == [3, 3, 1]


async def test_an_item_already_in_a_running_pass_waits_for_that_pass() -> None:
    recorder, batcher, first = await a_held_pass()
    again = asyncio.ensure_future(batcher.submit(["first", "new"]))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await again == ["FIRST", "NEW"]
    assert await first == ["FIRST"]
    assert recorder.batches == [["first"], ["new"]]


async def test_a_failing_pass_fails_every_waiter_and_the_next_pass_runs() -> None:
    recorder, batcher, first = await a_held_pass(Recorder(fail_on="bad"))
    same_pass = [asyncio.ensure_future(batcher.submit([name])) for name in ("bad", "innocent")]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == ["FIRST"]
    for task in same_pass:
        with pytest.raises(RuntimeError, match="cannot do bad"):
            await task
    assert await batcher.submit(["innocent"]) == ["INNOCENT"]


async def test_a_cancelled_caller_leaves_the_pass_to_the_others() -> None:
    recorder, batcher, first = await a_held_pass()
    sharer = asyncio.ensure_future(batcher.submit(["first"]))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    recorder.release.set()
    assert await sharer == ["FIRST"]
    assert first.cancelled()
    assert batcher.passes == 1


async def test_a_pass_with_the_wrong_number_of_results_fails_its_callers() -> None:
    async def short(items: list[str]) -> list[str]:
        return items[:1]

    batcher = MicroBatcher(short, max_batch=8)
    with pytest.raises(RuntimeError, match="over 2 items returned 1"):
        await batcher.submit(["a", "b"])


async def test_stopping_the_batcher_cancels_its_waiters_instead_of_stranding_them() -> None:
    recorder, batcher, first = await a_held_pass()
    queued = asyncio.ensure_future(batcher.submit(["queued"]))
    await asyncio.sleep(0)
    drain = batcher._drain  # the task a shutdown cancels along with everything else on the loop
    assert drain is not None
    drain.cancel()
    for task in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    recorder.hold = False
    assert await batcher.submit(["again"]) == ["AGAIN"]


def test_each_event_loop_gets_a_fresh_queue() -> None:
    async def upper(items: list[str]) -> list[str]:
        return [item.upper() for item in items]

    batcher = MicroBatcher(upper, max_batch=8)
    assert asyncio.run(batcher.submit(["one"])) == ["ONE"]
    assert asyncio.run(batcher.submit(["two"])) == ["TWO"]


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(Recorder(), max_batch=0)
