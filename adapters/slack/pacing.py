"""Slack's posting limits: about one message per second per channel, and at most one edit per second
of a message being updated while it streams. 429s themselves are retried by slack_sdk's
`AsyncRateLimitErrorRetryHandler`, which honours Retry-After."""

from __future__ import annotations

from collections import OrderedDict

from aiolimiter import AsyncLimiter

MAX_TRACKED_CHANNELS = 2048


class ChannelPacer:
    """One leaky bucket per channel; `async with pacer.slot(channel):` before posting a message."""

    def __init__(self, messages_per_s: float) -> None:
        if messages_per_s <= 0:
            raise ValueError("messages_per_s must be positive")
        self._period = 1.0 / messages_per_s
        self._limiters: OrderedDict[str, AsyncLimiter] = OrderedDict()

    def slot(self, channel_id: str) -> AsyncLimiter:
        limiter = self._limiters.get(channel_id)
        if limiter is None:
            limiter = AsyncLimiter(1, self._period)
            self._limiters[channel_id] = limiter
            if len(self._limiters) > MAX_TRACKED_CHANNELS:
                self._limiters.popitem(last=False)
        else:
            self._limiters.move_to_end(channel_id)
        return limiter


def update_due(*, last_update: float | None, now: float, interval_s: float) -> bool:
    """Whether a streaming message may be edited again (never more often than `interval_s`)."""
    return last_update is None or now - last_update >= interval_s


def stream_expired(*, started: float | None, now: float, max_age_s: float) -> bool:
    """Slack ends a stream after about five minutes; past `max_age_s` the reply is finished with
    chat.update instead."""
    return started is not None and now - started > max_age_s
