"""What Parley does with each Slack event, in background tasks outside the ack path.

Bolt listeners (registered in `adapters.slack.app`) only parse and `spawn`; the coroutines here do
the work: download files, run the turn with streaming, deliver, remember which messages are
Parley's, store reactions, answer `/parley`, publish the App Home.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import messages
from adapters.slack.commands import MemoryAdmin, SetProfile, ShowProfile, forgotten_text, home_view, profile_text
from adapters.slack.delivery import DeliveryOptions, Destination, ReplyWriter
from adapters.slack.events import ReactionEvent, SlackMessage, is_addressed, message_id, to_inbound
from adapters.slack.files import Downloads, download_all
from adapters.slack.formatting import file_notes
from adapters.slack.pacing import ChannelPacer
from core import turns
from core.models import Platform, Reply, UserKey, WorkspaceKey
from core.pipeline import Pipeline

log = logging.getLogger("parley.slack")
THINKING_STATUS = "is thinking…"
TITLE_CHARS = 60
DELIVERY_FAILED = "Sorry, I wrote an answer but could not post it here. Please try again."
Respond = Callable[..., Awaitable[object]]


@dataclass(frozen=True, kw_only=True, slots=True)
class AssistantHooks:
    """Bolt's Assistant utilities for one assistant thread (setStatus, setTitle)."""

    set_status: Callable[..., Awaitable[object]]
    set_title: Callable[..., Awaitable[object]]


@dataclass(frozen=True, kw_only=True, slots=True)
class FileLimits:
    max_bytes: int
    extra_hosts: frozenset[str]


class SlackHandlers:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        pool: asyncpg.Pool,
        memory: MemoryAdmin,
        http: httpx.AsyncClient,
        pacer: ChannelPacer,
        delivery: DeliveryOptions,
        files: FileLimits,
        thread_followups: bool,
    ) -> None:
        self.pipeline = pipeline
        self.pool = pool
        self.memory = memory
        self.http = http
        self.pacer = pacer
        self.delivery = delivery
        self.files = files
        self.thread_followups = thread_followups
        self._in_flight: set[str] = set()
        """Message keys being answered by this process: a mention's twin `message` event (or a
        retry) arriving meanwhile is dropped before it downloads anything; the pipeline's
        persistent dedupe covers other instances."""

    # -- messages ----------------------------------------------------------------------------
    async def message(
        self, message: SlackMessage, *, client: AsyncWebClient, token: str, assistant: AssistantHooks | None = None
    ) -> None:
        """Answer `message` if it is addressed to Parley; never raises."""
        if message.key in self._in_flight:
            return
        self._in_flight.add(message.key)
        try:
            in_thread = (
                not message.is_dm
                and not message.mentioned
                and message.thread_ts is not None
                and self.thread_followups
                and await messages.in_thread(
                    self.pool,
                    workspace_id=message.team_id,
                    channel_id=message.channel_id,
                    thread_ts=message.thread_ts,
                )
            )
            if is_addressed(message, in_parley_thread=in_thread, thread_followups=self.thread_followups):
                await self._answer(message, client=client, token=token, assistant=assistant)
        except Exception:
            log.exception("slack message failed", extra=_context(message))
            await self._apologise(message, client)
        finally:
            self._in_flight.discard(message.key)

    async def _answer(
        self, message: SlackMessage, *, client: AsyncWebClient, token: str, assistant: AssistantHooks | None
    ) -> None:
        downloads = (
            await download_all(
                message.files,
                http=self.http,
                token=token,
                max_bytes=self.files.max_bytes,
                extra_hosts=self.files.extra_hosts,
            )
            if message.files
            else Downloads(attachments=(), failures=())
        )
        destination = Destination(
            channel_id=message.channel_id,
            thread_ts=message.reply_thread_ts,
            team_id=message.team_id,
            user_id=message.user_id,
        )
        writer = ReplyWriter(client, destination, pacer=self.pacer, options=self.delivery)
        if not message.text.strip() and not downloads.attachments:
            workspace = WorkspaceKey(platform=Platform.SLACK, workspace_id=message.team_id)
            if downloads.failures and await turns.claim_event(self.pool, workspace, message.key):
                await writer.finish(file_notes([(f.name, f.reason) for f in downloads.failures]))
            return
        if assistant is not None:
            await self._assistant_started(message, assistant)
        reply = await self.pipeline.run(to_inbound(message, downloads.attachments), on_delta=writer.on_delta)
        if reply.duplicate:
            return
        problems = [(f.name, f.reason) for f in downloads.failures]
        problems += [(a.name, a.error) for a in reply.attachments if a.error]
        text = "\n\n".join(part for part in (reply.text, file_notes(problems)) if part)
        delivered = await writer.finish(text)
        primary = message_id(message.channel_id, delivered.primary)
        await self.pipeline.record_delivery(reply, primary)
        await messages.record_reply(
            self.pool,
            workspace_id=message.team_id,
            channel_id=message.channel_id,
            thread_ts=message.reply_thread_ts,
            ts=delivered.ts,
            reply_message_id=primary,
        )
        if reply.audio is not None:
            await self._upload_voice(reply, destination, client)

    async def _assistant_started(self, message: SlackMessage, assistant: AssistantHooks) -> None:
        """Show that Parley is working; name a new assistant thread after its first message."""
        try:
            await assistant.set_status(THINKING_STATUS)
            if message.thread_ts and not await messages.in_thread(
                self.pool, workspace_id=message.team_id, channel_id=message.channel_id, thread_ts=message.thread_ts
            ):
                await assistant.set_title(message.text[:TITLE_CHARS] or "Files")
        except SlackApiError as exc:
            log.info("assistant status/title refused: %s", exc.response.get("error"))

    async def _upload_voice(self, reply: Reply, destination: Destination, client: AsyncWebClient) -> None:
        assert reply.audio is not None
        try:
            await client.files_upload_v2(
                channel=destination.channel_id,
                thread_ts=destination.thread_ts,
                file=reply.audio,
                filename=f"parley-reply.{reply.audio_format or 'mp3'}",
                title="Spoken reply",
            )
        except SlackApiError as exc:
            log.warning("voice reply upload refused: %s", exc.response.get("error"))

    async def _apologise(self, message: SlackMessage, client: AsyncWebClient) -> None:
        try:
            await client.chat_postMessage(
                channel=message.channel_id, thread_ts=message.reply_thread_ts, text=DELIVERY_FAILED
            )
        except Exception as exc:
            log.warning("could not tell the person about a failure: %s", type(exc).__name__)

    # -- reactions ---------------------------------------------------------------------------
    async def reaction(self, event: ReactionEvent) -> int | None:
        """Store a 👍/👎 (or its removal) on the reply the reacted message belongs to."""
        reply_id = await messages.reply_message_id(
            self.pool, workspace_id=event.team_id, channel_id=event.channel_id, ts=event.ts
        )
        return await self.pipeline.react(event.to_reaction(reply_id or message_id(event.channel_id, event.ts)))

    # -- /parley and the App Home ------------------------------------------------------------
    async def profile_command(self, command: ShowProfile | SetProfile, user: UserKey, respond: Respond) -> None:
        try:
            if isinstance(command, SetProfile):
                profile = await self.memory.set_profile(user, command.field, command.value)
            else:
                profile = await self.memory.profile(user)
            text = profile_text(profile, await self.memory.memory_count(user))
        except ValueError as exc:
            text = f"I couldn't change that: {exc}"
        await respond(text=text, response_type="ephemeral")

    async def forget(self, user: UserKey, *, respond: Respond | None, client: AsyncWebClient | None) -> None:
        """Delete the person's rows; confirm in the ephemeral message or refresh the App Home."""
        counts = await self.memory.forget(user)
        if respond is not None:
            await respond(text=forgotten_text(counts), replace_original=True, response_type="ephemeral")
        if client is not None:
            await self.publish_home(user, client)

    async def publish_home(self, user: UserKey, client: AsyncWebClient) -> None:
        profile = await self.memory.profile(user)
        count = await self.memory.memory_count(user)
        await client.views_publish(user_id=user.user_id, view=home_view(profile, count))


def command_user(team_id: str, user_id: str) -> UserKey:
    return UserKey(platform=Platform.SLACK, workspace_id=team_id, user_id=user_id)


def _context(message: SlackMessage) -> dict[str, str]:
    return {"platform": "slack", "workspace": message.team_id, "channel": message.channel_id, "ts": message.ts}

