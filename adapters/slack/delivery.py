"""Putting one reply into Slack: streamed while the model writes, then finished and split to fit.

The preferred path is `chat_stream` (chat.startStream / appendStream / stopStream), which Slack renders
as Markdown. When streaming is off, not possible (a top-level DM has no thread) or refused by
Slack, the reply is posted once and edited with chat.update at most once a second. A stream older
than `stream_max_age_s` (Slack ends them after about five minutes) is finished with chat.update.
The final text always wins: if it differs from what was streamed (blocked by the output rails, a
note about a file appended, too long for one message), the first message is replaced by its first
chunk and the rest follow as new messages, paced per channel.

While streaming, tool calls show as task cards (and a plan once a turn takes several steps); a
workspace that refuses those chunks gets the text alone. A rateable answer ends with Slack's
feedback buttons. `SlackSink` is the turn's view of all this (core.sink.ReplySink), with the DM
thread's status line and the spoken reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock
from slack_sdk.models.messages.chunk import Chunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.events import message_id
from adapters.slack.feedback import feedback_blocks
from adapters.slack.formatting import SLACK_TEXT_LIMIT, file_notes, render_chunks, split_message, to_mrkdwn
from adapters.slack.pacing import ChannelPacer, stream_expired, update_due
from adapters.slack.progress import plan_chunk, status_line, task_chunk
from core.models import Reply, ToolProgress

log = logging.getLogger("parley.slack.delivery")
EMPTY_REPLY = "_(no reply)_"
SECTION_LIMIT = 3000
"""A section block's text limit: the message carrying the feedback buttons holds its text in one."""


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
    task_cards: bool = True
    """Stream tool calls as task cards; False (or a workspace refusing them) streams the text alone."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivered:
    """The messages that carry the reply, in order (a reaction on any of them rates the turn)."""

    ts: tuple[str, ...]


class SlackSink:
    """One turn's reply in Slack (core.sink.ReplySink): the text and task cards through a `ReplyWriter`,
    the DM thread's status line, notes about files that could not be read, and a spoken reply."""

    streams = True

    def __init__(
        self,
        writer: ReplyWriter,
        thread_status: ThreadStatus | None,
        *,
        client: AsyncWebClient,
        failures: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.writer = writer
        self.thread_status = thread_status
        self.client = client
        self.failures = list(failures)
        """(file name, reason) of the files the adapter could not download."""

    async def delta(self, text: str) -> None:
        await self.writer.on_delta(text)

    async def status(self, text: str) -> None:
        if self.thread_status is not None:
            await self.thread_status.show(text)

    async def tool(self, progress: ToolProgress) -> None:
        await self.writer.on_tool(progress)
        if self.thread_status is not None and progress.status == "in_progress":
            await self.thread_status.show(status_line(progress))

    async def finish(self, reply: Reply) -> Sequence[str]:
        problems = self.failures + [(a.name, a.error) for a in reply.attachments if a.error]
        text = "\n\n".join(part for part in (reply.text, file_notes(problems)) if part)
        delivered = await self.writer.finish(text, feedback=reply.turn_id is not None)
        if reply.audio is not None:
            await self._upload_voice(reply.audio, reply.audio_format)
        channel = self.writer.destination.channel_id
        return [message_id(channel, ts) for ts in delivered.ts]

    async def _upload_voice(self, audio: bytes, audio_format: str | None) -> None:
        destination = self.writer.destination
        try:
            await self.client.files_upload_v2(
                channel=destination.channel_id,
                thread_ts=destination.thread_ts,
                file=audio,
                filename=f"parley-reply.{audio_format or 'mp3'}",
                title="Spoken reply",
            )
        except SlackApiError as exc:
            log.warning("voice reply upload refused: %s", exc.response.get("error"))


class ThreadStatus:
    """The status line under a DM thread (assistant.threads.setStatus); Slack clears it when the answer
    is posted. A workspace that refuses it is told nothing more for this turn."""

    def __init__(self, client: AsyncWebClient, *, channel_id: str, thread_ts: str) -> None:
        self.client = client
        self.channel_id = channel_id
        self.thread_ts = thread_ts
        self.enabled = True

    async def show(self, status: str) -> None:
        if not self.enabled:
            return
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel_id, thread_ts=self.thread_ts, status=status
            )
        except SlackApiError as exc:
            log.info("assistant status refused: %s", exc.response.get("error"))
            self.enabled = False

    async def name(self, title: str) -> None:
        try:
            await self.client.assistant_threads_setTitle(
                channel_id=self.channel_id, thread_ts=self.thread_ts, title=title
            )
        except SlackApiError as exc:
            log.info("assistant title refused: %s", exc.response.get("error"))



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
        self.task_cards = options.task_cards
        self._calls: dict[str, str] = {}
        """Tool call id -> tool, in the order the calls began."""
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

    async def on_tool(self, progress: ToolProgress) -> None:
        """Show a tool call as a task card in the stream, and the turn as a plan once it takes several steps."""
        if self.frozen or not self.task_cards:
            return
        if self.mode is Mode.IDLE:
            await self._begin(self.clock())
        if self.mode is not Mode.STREAM or self._stream is None:
            return
        if stream_expired(started=self._started, now=self.clock(), max_age_s=self.options.stream_max_age_s):
            self.frozen = True
            return
        chunks: list[Chunk] = [task_chunk(progress)]
        if progress.call_id not in self._calls:
            self._calls[progress.call_id] = progress.tool
            if len(self._calls) > 1:
                chunks.insert(0, plan_chunk(list(self._calls.values())))
        try:
            await self._stream.append(chunks=chunks)
        except SlackApiError as exc:
            log.info("task cards refused (%s); streaming the text alone", exc.response.get("error"))
            self.task_cards = False

    async def finish(self, markdown: str, *, feedback: bool = False) -> Delivered:
        """Make Slack show exactly `markdown` (converted and split) and return the messages; with
        `feedback`, the last one carries the feedback buttons."""
        buttons = feedback_blocks() if feedback else None
        if self.mode is Mode.STREAM and self._stream is not None:
            done = await self._stop_stream(markdown, buttons)
            if done is not None:
                return done
        chunks = render_chunks(markdown, self.options.limit) or [EMPTY_REPLY]
        if buttons is not None and len(chunks[-1]) > SECTION_LIMIT:
            chunks[-1:] = split_message(chunks[-1], SECTION_LIMIT)
        delivered: list[str] = []
        for i, chunk in enumerate(chunks):
            blocks = _with_buttons(chunk, buttons) if buttons is not None and i == len(chunks) - 1 else None
            if i == 0 and self._ts is not None:
                await self.client.chat_update(
                    channel=self.destination.channel_id, ts=self._ts, text=chunk, blocks=blocks
                )
                delivered.append(self._ts)
            else:
                delivered.append(await self._post(chunk, blocks))
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
            log.info("%s refused (%s); falling back to chat.update", refused_method(exc), exc.response.get("error"))
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

    async def _stop_stream(self, markdown: str, buttons: list[Block] | None) -> Delivered | None:
        """Finish the stream. Returns the delivery when the stream already shows the whole reply;
        None when `finish` must replace its text with chat.update."""
        assert self._stream is not None
        stream, self._stream = self._stream, None
        expired = stream_expired(started=self._started, now=self.clock(), max_age_s=self.options.stream_max_age_s)
        whole = not self.frozen and markdown.startswith(self.streamed) and len(markdown) <= self.options.limit
        if not expired and whole and markdown.strip():
            try:
                await stream.stop(markdown_text=markdown[len(self.streamed):] or None, blocks=buttons)
            except SlackApiError as exc:
                log.info("%s refused (%s); finishing with chat.update", refused_method(exc), exc.response.get("error"))
            else:
                assert stream.ts is not None
                return Delivered(ts=(stream.ts,))
        elif not expired and stream.ts is not None:
            try:
                await stream.stop()
            except SlackApiError as exc:
                log.info("%s refused (%s)", refused_method(exc), exc.response.get("error"))
        self._ts = stream.ts
        return None

    async def _post(self, text: str, blocks: list[Block] | None = None) -> str:
        async with self.pacer.slot(self.destination.channel_id):
            response = await self.client.chat_postMessage(
                channel=self.destination.channel_id,
                thread_ts=self.destination.thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(response["ts"])


def _with_buttons(mrkdwn: str, buttons: list[Block]) -> list[Block]:
    """A message's text as a section (with blocks, `text` is only the notification fallback) and the buttons."""
    return [SectionBlock(text=MarkdownTextObject(text=mrkdwn)), *buttons]


def refused_method(exc: SlackApiError) -> str:
    """The Web API method Slack refused: a stream's stop may be its first call (chat.startStream), since the
    SDK buffers appended text until it flushes."""
    return str(getattr(exc.response, "api_url", "")).rsplit("/", 1)[-1] or "chat stream"
