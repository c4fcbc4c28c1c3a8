"""What Parley does with each Slack event, in background tasks outside the ack path.

Bolt listeners (registered in `adapters.slack.app`) only parse and `spawn`; the coroutines here do
the work: download files, hand the turn an Inbound and a `SlackSink` (the turn streams, delivers and
records its messages itself), store reactions and feedback-button clicks, answer `/parley`, publish
the App Home, offer suggested prompts in the agent view.

In the agent messaging experience (`agent_view`) every top-level DM starts a thread of its own, which
the answer, its status ("is thinking…", the tool in use) and later follow-ups share.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.commands import (
    MemoryAdmin,
    MemoryCommand,
    SetProfile,
    SetSetting,
    SettingsCommand,
    ShowMemory,
    ShowProfile,
    UnsetSetting,
    fact_removed_text,
    forgotten_text,
    home_view,
    memory_text,
    profile_text,
    settings_text,
)
from adapters.slack.delivery import DeliveryOptions, Destination, ReplyWriter, SlackSink, ThreadStatus
from adapters.slack.events import ReactionEvent, SlackMessage, is_addressed, message_id, to_inbound
from adapters.slack.feedback import FEEDBACK_SOURCE, THANKS, FeedbackClick
from adapters.slack.files import Downloads, download_all
from adapters.slack.pacing import ChannelPacer
from adapters.slack.viewing import ViewedChannels, asks_about_channel, channel_transcript
from core import deliveries
from core.audit import Actor
from core.channel_settings import ADMIN_ONLY_REFUSAL, KEYS, WORKSPACE_ADMIN_KEYS, UnknownSetting, parse
from core.models import Attachment, ConversationKey, Inbound, Platform, Reaction, UserKey, WorkspaceKey
from core.pipeline import Pipeline
from core.store.pool import Pool
from core.workspace import answers_unmentioned_in, load_layers, set_override, unset_override

log = logging.getLogger("parley.slack")
TITLE_CHARS = 60
GREETING = "Hi, I'm Parley. Ask me anything, or send me a file, a screenshot or a voice clip."
PROMPTS_TITLE = "Try asking"
SUGGESTED_PROMPTS: tuple[dict[str, str], ...] = (
    {"title": "Summarise this channel", "message": "Summarise what happened in this channel recently."},
    {"title": "Summarise a file", "message": "Summarise the file I'm about to send."},
    {"title": "What do you remember?", "message": "What do you remember about me?"},
)
"""The same prompts as the manifest's `agent_view.suggested_prompts`."""
DELIVERY_FAILED = "Sorry, I wrote an answer but could not post it here. Please try again."
FEEDBACK_LOST = "I couldn't find the answer you rated, so nothing was stored."
CHANNEL_HISTORY = 50
"""Recent messages of the viewed channel a turn may read when the person asks about it."""
Respond = Callable[..., Awaitable[object]]


@dataclass(frozen=True, kw_only=True, slots=True)
class FileLimits:
    max_bytes: int
    extra_hosts: frozenset[str]


class SlackHandlers:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        pool: Pool,
        memory: MemoryAdmin,
        http: httpx.AsyncClient,
        pacer: ChannelPacer,
        delivery: DeliveryOptions,
        files: FileLimits,
        thread_followups: bool,
        agent_view: bool,
    ) -> None:
        self.pipeline = pipeline
        self.pool = pool
        self.memory = memory
        self.http = http
        self.pacer = pacer
        self.delivery = delivery
        self.files = files
        self.thread_followups = thread_followups
        self.agent_view = agent_view
        self.viewing = ViewedChannels()
        self._in_flight: set[str] = set()
        """Message keys being answered by this process: a mention's twin `message` event (or a
        retry) arriving meanwhile is dropped before it downloads anything; the pipeline's
        persistent dedupe covers other instances."""

    # -- messages ----------------------------------------------------------------------------
    async def message(self, message: SlackMessage, *, client: AsyncWebClient, token: str) -> None:
        """Answer `message` if it is addressed to Parley; never raises."""
        if message.key in self._in_flight:
            return
        if self.agent_view and message.is_dm and message.thread_ts is None:
            message = replace(message, thread_ts=message.ts)
        self._in_flight.add(message.key)
        try:
            in_thread = (
                not message.is_dm
                and not message.mentioned
                and message.thread_ts is not None
                and self.thread_followups
                and await deliveries.in_conversation(
                    self.pool,
                    ConversationKey(
                        platform=Platform.SLACK,
                        workspace_id=message.team_id,
                        channel_id=message.channel_id,
                        thread_id=message.thread_ts,
                    ),
                )
            )
            if is_addressed(
                message, in_parley_thread=in_thread, thread_followups=self.thread_followups
            ) or await answers_unmentioned_in(
                self.pool, WorkspaceKey(platform=Platform.SLACK, workspace_id=message.team_id), message.channel_id
            ):
                await self._answer(message, client=client, token=token)
        except Exception:
            log.exception("slack message failed", extra=_context(message))
            await self._apologise(message, client)
        finally:
            self._in_flight.discard(message.key)

    async def _answer(self, message: SlackMessage, *, client: AsyncWebClient, token: str) -> None:
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
        if not message.text.strip() and not downloads.attachments and not downloads.failures:
            return
        destination = Destination(
            channel_id=message.channel_id,
            thread_ts=message.reply_thread_ts,
            team_id=message.team_id,
            user_id=message.user_id,
        )
        inbound = to_inbound(message, downloads.attachments)
        if message.is_dm:
            inbound = await self._with_viewed_channel(inbound, message, client)
        sink = SlackSink(
            ReplyWriter(client, destination, pacer=self.pacer, options=self.delivery),
            await self._thread_status(message, inbound, client),
            client=client,
            failures=[(f.name, f.reason) for f in downloads.failures],
        )
        await self.pipeline.run(inbound, sink)

    async def _with_viewed_channel(self, inbound: Inbound, message: SlackMessage, client: AsyncWebClient) -> Inbound:
        """The channel the person is viewing (agent view): its name for the turn, and its recent messages
        as a text attachment when they ask about it. Slack returns only what Parley may read there."""
        channel = self.viewing.get(message.team_id, message.user_id)
        if channel is None:
            return inbound
        try:
            info = await client.conversations_info(channel=channel)
        except SlackApiError as exc:
            log.info("the viewed channel is not visible to Parley: %s", exc.response.get("error"))
            return inbound
        name = str(info["channel"].get("name") or channel)
        inbound = replace(inbound, viewing_channel=name)
        if not asks_about_channel(message.text):
            return inbound
        try:
            history = await client.conversations_history(channel=channel, limit=CHANNEL_HISTORY)
        except SlackApiError as exc:
            log.info("the viewed channel's messages are not readable: %s", exc.response.get("error"))
            return inbound
        transcript = channel_transcript(history.get("messages") or [])
        if not transcript:
            return inbound
        recent = Attachment(name=f"#{name} recent messages.txt", data=transcript.encode(), content_type="text/plain")
        return replace(inbound, attachments=(*inbound.attachments, recent))

    async def _thread_status(
        self, message: SlackMessage, inbound: Inbound, client: AsyncWebClient
    ) -> ThreadStatus | None:
        """In a DM thread: its status line, and a new thread named after its first message."""
        if not message.is_dm or message.reply_thread_ts is None:
            return None
        status = ThreadStatus(client, channel_id=message.channel_id, thread_ts=message.reply_thread_ts)
        if not await deliveries.in_conversation(self.pool, inbound.conversation):
            await status.name(message.text[:TITLE_CHARS] or "Files")
        return status

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
        return await self.pipeline.react(event.to_reaction(message_id(event.channel_id, event.ts)))

    async def feedback(self, click: FeedbackClick, respond: Respond) -> None:
        """Store a feedback-button click on the reply it sits under (a second click replaces the first)
        and tell the person, only them, that it was registered."""
        turn = await self.pipeline.react(
            Reaction(
                platform=Platform.SLACK,
                workspace_id=click.team_id,
                user_id=click.user_id,
                platform_message_id=message_id(click.channel_id, click.ts),
                emoji="+1" if click.score > 0 else "-1",
                source=FEEDBACK_SOURCE,
            )
        )
        text = THANKS[click.score] if turn is not None else FEEDBACK_LOST
        await respond(text=text, response_type="ephemeral", replace_original=False)

    # -- /parley, the App Home, the agent view -----------------------------------------------
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

    async def memory_command(self, command: MemoryCommand, user: UserKey, channel_id: str, respond: Respond) -> None:
        """`/parley memory [history]` and `/parley memory forget <id>`, for where the person asked."""
        if isinstance(command, ShowMemory):
            lines = await self.memory.memory_lines(user, channel_id=channel_id, history=command.history)
            text = memory_text(lines, history=command.history)
        else:
            removed = await self.memory.remove_fact(user, channel_id=channel_id, fact_id=command.fact_id)
            text = fact_removed_text(removed, command.fact_id)
        await respond(text=text, response_type="ephemeral")

    async def settings_command(
        self, command: SettingsCommand, user: UserKey, channel_id: str, *, client: AsyncWebClient, respond: Respond
    ) -> None:
        """`/parley settings …` for the channel asked in, for workspace admins and owners and the channel's
        creator (Slack offers apps no "channel manager" check); each change is audited with the member's id."""
        if not channel_id:
            text = "Settings belong to a channel: use `/parley settings` in the channel you want to change."
        elif (manager := await self._manager(client, user.user_id, channel_id)) is None:
            text = "Only workspace admins and the channel's creator can see or change Parley's settings here."
        else:
            text = await self._settings(command, user, channel_id, admin=manager == "admin")
        await respond(text=text, response_type="ephemeral")

    async def _settings(self, command: SettingsCommand, user: UserKey, channel_id: str, *, admin: bool) -> str:
        by = Actor(who=user.user_id, door="slack")
        if isinstance(command, SetSetting | UnsetSetting) and command.key not in KEYS:
            return f"I don't know the setting `{command.key}`. Settings: {', '.join(f'`{k}`' for k in KEYS)}."
        if isinstance(command, SetSetting | UnsetSetting) and command.key in WORKSPACE_ADMIN_KEYS and not admin:
            return ADMIN_ONLY_REFUSAL.format(key=command.key)
        if isinstance(command, SetSetting):
            try:
                await set_override(self.pool, user.workspace, command.key, parse(command.key, command.value),
                                   by=by, channel_id=channel_id)
            except UnknownSetting as exc:
                return f"That didn't work: {exc}"
            return f"Saved: `{command.key}` for this channel."
        if isinstance(command, UnsetSetting):
            old = await unset_override(self.pool, user.workspace, command.key, by=by, channel_id=channel_id)
            return f"Removed `{command.key}`." if old is not None else f"This channel did not set `{command.key}`."
        return settings_text((await load_layers(self.pool, user.workspace, channel_id)).stored())

    async def _manager(
        self, client: AsyncWebClient, user_id: str, channel_id: str
    ) -> Literal["admin", "creator"] | None:
        """Whether the member may manage this channel's settings: as a workspace admin or owner, as the
        channel's creator, or not at all."""
        try:
            member = (await client.users_info(user=user_id)).get("user") or {}
            if member.get("is_admin") or member.get("is_owner"):
                return "admin"
            channel = (await client.conversations_info(channel=channel_id)).get("channel") or {}
        except SlackApiError as exc:
            log.warning("could not check who may change settings: %s", exc.response.get("error"))
            return None
        return "creator" if channel.get("creator") == user_id else None

    async def forget(self, user: UserKey, *, respond: Respond | None, client: AsyncWebClient | None) -> None:
        """Delete the person's rows; confirm in the ephemeral message or refresh the App Home."""
        counts = await self.memory.forget(user)
        if respond is not None:
            await respond(text=forgotten_text(counts), replace_original=True, response_type="ephemeral")
        if client is not None:
            await self.publish_home(user, client)

    async def suggest_prompts(self, channel_id: str, client: AsyncWebClient) -> None:
        """Offer the suggested prompts at the top of the app's Messages tab (the agent view)."""
        try:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=channel_id, title=PROMPTS_TITLE, prompts=list(SUGGESTED_PROMPTS)
            )
        except SlackApiError as exc:
            log.info("suggested prompts refused: %s", exc.response.get("error"))

    async def publish_home(self, user: UserKey, client: AsyncWebClient) -> None:
        profile = await self.memory.profile(user)
        count = await self.memory.memory_count(user)
        await client.views_publish(user_id=user.user_id, view=home_view(profile, count))


def command_user(team_id: str, user_id: str) -> UserKey:
    return UserKey(platform=Platform.SLACK, workspace_id=team_id, user_id=user_id)


def _context(message: SlackMessage) -> dict[str, str]:
    return {"platform": "slack", "workspace": message.team_id, "channel": message.channel_id, "ts": message.ts}

