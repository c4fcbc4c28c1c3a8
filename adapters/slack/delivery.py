"""Putting one reply into Slack: streamed while the model writes, then finished and split to fit.

The preferred path is `chat_stream` (chat.startStream / appendStream / stopStream), which Slack renders
as Markdown. When streaming is off, not possible (a top-level DM has no thread) or refused by
Slack, the reply is posted once and edited with chat.update at most once a second. A stream older
than `stream_max_age_s` (Slack ends them after about five minutes) is finished with chat.update.
The final text always wins: if it differs from what was streamed (blocked by the output rails, a
note about a file appended, too long for one message), the first message is replaced by its first
chunk and the rest follow as new messages, paced per channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.formatting import SLACK_TEXT_LIMIT, render_chunks, to_mrkdwn
from adapters.slack.pacing import ChannelPacer, stream_expired, update_due

log = logging.getLogger("parley.slack.delivery")
EMPTY_REPLY = "_(no reply)_"


@dataclass(frozen=True, kw_only=True, slots=True)
class Destination:
    """Where a reply goes; team and user are the stream's recipients in channels."""

    channel_id: str
    thread_ts: str | None
    team_id: str
    user_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryOptions:
    limit: int = SLACK_TEXT_LIMIT
    streaming: bool = True
    """Use chat_stream where possible; False always uses post + chat.update."""
    stream_buffer_chars: int = 256
    """Characters gathered before each appendStream call."""
    stream_max_age_s: float = 300.0
    update_interval_s: float = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivered:
    """The messages that carry the reply, in order; the first is the one reactions are keyed on."""

    ts: tuple[str, ...]

    @property
    def primary(self) -> str:
        return self.ts[0]


class Mode(Enum):
    IDLE = "idle"
    STREAM = "stream"
    UPDATE = "update"


class ReplyWriter:
    """One reply's delivery. `on_delta` is the pipeline's streaming callback; `finish` posts the rest."""

    def __init__(
        self,
        client: AsyncWebClient,
        destination: Destination,
        *,
        pacer: ChannelPacer,
        options: DeliveryOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.destination = destination
        self.pacer = pacer
        self.options = options
        self.clock = clock
        self.mode = Mode.IDLE
        self.streamed = ""
        """Markdown received so far."""
        self.frozen = False
        """Stop showing progress: too long for one message, or the stream expired."""
        self._stream: AsyncChatStream | None = None
        self._ts: str | None = None
        self._started: float | None = None
        self._last_update: float | None = None

    async def on_delta(self, delta: str) -> None:
        self.streamed += delta
        if self.frozen:
            return
        if len(self.streamed) > self.options.limit:
            self.frozen = True
            return
        now = self.clock()
        if self.mode is Mode.IDLE:
            await self._begin(now)
        if self.mode is Mode.STREAM:
            await self._append(delta, now)
        if self.mode is Mode.UPDATE:
            await self._show_progress(now)

    async def finish(self, markdown: str) -> Delivered:
        """Make Slack show exactly `markdown` (converted and split) and return the messages."""
        if self.mode is Mode.STREAM and self._stream is not None:
            done = await self._stop_stream(markdown)
            if done is not None:
                return done
        chunks = render_chunks(markdown, self.options.limit) or [EMPTY_REPLY]
        delivered: list[str] = []
        if self._ts is not None:
            await self.client.chat_update(channel=self.destination.channel_id, ts=self._ts, text=chunks[0])
            delivered.append(self._ts)
            chunks = chunks[1:]
        for chunk in chunks:
            delivered.append(await self._post(chunk))
        return Delivered(ts=tuple(delivered))

    # -- streaming ---------------------------------------------------------------------------
    async def _begin(self, now: float) -> None:
        self._started = now
        if self.options.streaming and self.destination.thread_ts is not None:
            async with self.pacer.slot(self.destination.channel_id):
                self._stream = await self.client.chat_stream(
                    channel=self.destination.channel_id,
                    thread_ts=self.destination.thread_ts,
                    recipient_team_id=self.destination.team_id,
                    recipient_user_id=self.destination.user_id,
                    buffer_size=self.options.stream_buffer_chars,
                )
            self.mode = Mode.STREAM
        else:
            self.mode = Mode.UPDATE

    async def _append(self, delta: str, now: float) -> None:
        assert self._stream is not None
        if stream_expired(started=self._started, now=now, max_age_s=self.options.stream_max_age_s):
            self.frozen = True
            return
        try:
            await self._stream.append(markdown_text=delta)
        except SlackApiError as exc:
            log.info("chat stream refused (%s); falling back to chat.update", exc.response.get("error"))
            self._ts = self._stream.ts
            self._stream = None
            self.mode = Mode.UPDATE

    async def _show_progress(self, now: float) -> None:
        if not update_due(last_update=self._last_update, now=now, interval_s=self.options.update_interval_s):
            return
        preview = to_mrkdwn(self.streamed)[: self.options.limit] or EMPTY_REPLY
        if self._ts is None:
            self._ts = await self._post(preview)
        else:
            await self.client.chat_update(channel=self.destination.channel_id, ts=self._ts, text=preview)
        self._last_update = now

    async def _stop_stream(self, markdown: str) -> Delivered | None:
        """Finish the stream. Returns the delivery when the stream already shows the whole reply;
        None when `finish` must replace its text with chat.update."""
        assert self._stream is not None
        stream, self._stream = self._stream, None
        expired = stream_expired(started=self._started, now=self.clock(), max_age_s=self.options.stream_max_age_s)
        whole = not self.frozen and markdown.startswith(self.streamed) and len(markdown) <= self.options.limit
        if not expired and whole and markdown.strip():
            try:
                await stream.stop(markdown_text=markdown[len(self.streamed):] or None)
            except SlackApiError as exc:
                log.info("chat.stopStream refused (%s); finishing with chat.update", exc.response.get("error"))
            else:
                assert stream.ts is not None
                return Delivered(ts=(stream.ts,))
        elif not expired and stream.ts is not None:
            try:
                await stream.stop()
            except SlackApiError as exc:
                log.info("chat.stopStream refused (%s)", exc.response.get("error"))
        self._ts = stream.ts
        return None

    async def _post(self, text: str) -> str:
        async with self.pacer.slot(self.destination.channel_id):
            response = await self.client.chat_postMessage(
                channel=self.destination.channel_id,
                thread_ts=self.destination.thread_ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(response["ts"])
