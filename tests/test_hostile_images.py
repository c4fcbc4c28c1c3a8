"""Image decoding has a process-wide budget (issue 14, finding 6): however many images arrive at
once, in one request or across requests, the pixels decoded at the same time stay within it."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from core.media import images
from core.media.config import MediaConfig
from core.media.errors import Unreadable
from core.media.images import PixelBudget


class RecordingBudget(PixelBudget):
    """The real budget, remembering the most pixels it ever let through at once."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.peak = 0
        self.holders = 0

    @contextmanager
    def hold(self, pixels: int, *, timeout_s: float) -> Iterator[None]:
        with super().hold(pixels, timeout_s=timeout_s):
            self.peak = max(self.peak, self.in_use)
            self.holders += 1
            yield


def blank_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), "white").save(out, format="PNG")
    return out.getvalue()


async def test_concurrent_images_never_decode_more_than_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    side = 700
    budget = RecordingBudget(capacity=2 * side * side)
    monkeypatch.setattr(images, "DECODING", budget)
    data = blank_png(side)
    results = await asyncio.gather(*(images.read_image(data, MediaConfig()) for _ in range(10)))
    assert [r.text for r in results] == [""] * 10
    assert budget.holders == 10
    assert budget.peak <= budget.capacity
    assert budget.in_use == 0


def test_an_image_waits_for_room_then_proceeds() -> None:
    budget = PixelBudget(100)
    first_in, release_first, second_done = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.hold(80, timeout_s=5):
            first_in.set()
            release_first.wait(5)

    def second() -> None:
        with budget.hold(80, timeout_s=5):
            second_done.set()

    holder = threading.Thread(target=first)
    holder.start()
    first_in.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    assert not second_done.wait(0.2), "the second image must wait while the first holds the budget"
    release_first.set()
    assert second_done.wait(5)
    holder.join()
    waiter.join()
    assert budget.in_use == 0


def test_a_wait_past_the_timeout_is_a_clear_error() -> None:
    budget = PixelBudget(100)
    with (
        budget.hold(100, timeout_s=1),
        pytest.raises(Unreadable, match="too many images"),
        budget.hold(1, timeout_s=0.05),
    ):
        pass
    assert budget.in_use == 0


def test_an_image_larger_than_the_budget_runs_alone() -> None:
    budget = PixelBudget(100)
    with budget.hold(10_000, timeout_s=1):
        assert budget.in_use == 100
    assert budget.in_use == 0


async def test_images_waiting_for_the_budget_leave_the_shared_threads_free(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = PixelBudget(capacity=100)
    monkeypatch.setattr(images, "DECODING", budget)
    data = blank_png(50)
    with budget.hold(100, timeout_s=5):
        waiting = [asyncio.ensure_future(images.read_image(data, MediaConfig())) for _ in range(10)]
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), timeout=5) == "free"
    results = await asyncio.gather(*waiting)
    assert len(results) == 10 and budget.in_use == 0
