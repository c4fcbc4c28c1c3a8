"""Parley on Discord: an AutoShardedClient that turns messages, reactions and slash commands into
pipeline calls and replies into Discord messages.

The client translates only. Which messages it answers and in which conversation is
`routing.route`; splitting is `chunking`; streaming edits are `streaming`; the turn itself is
`core.pipeline`. `build_discord` is the one entry point: it points discord.py at the configured
REST base and gateway (process-wide class attributes of discord.py) and returns the client.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import discord
import httpx
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.commands import build_tree
from adapters.discord.config import DM_WORKSPACE, DiscordConfig
from adapters.discord.convert import SkippedFile, clean_text, download, notes, with_quote
from adapters.discord.feedback import FEEDBACK_SOURCE, FeedbackButtons, buttons_for_answer, thanks
from adapters.discord.invite import required_intents
from adapters.discord.routing import MessageFacts, ReplyFacts, Target, ThreadFacts, moves_to_thread, route, thread_name
from adapters.discord.streaming import Streamer
from adapters.discord.surfaces import NOBODY, ChannelSurface, InteractionSurface
from adapters.discord.voice import measure, send_voice_message
from core import deliveries, discord_conversations
from core.discord_conversations import NewMessage
from core.feedback import score_of
from core.media.errors import Unreadable
from core.models import Inbound, Platform, Reaction, Reply, ToolProgress, WorkspaceKey
from core.pipeline import Pipeline
from core.store.pool import Pool
from core.workspace import answers_unmentioned_in

log = logging.getLogger("parley.discord")
DISCORD_GATEWAY = "wss://gateway.discord.gg/"
ORDINARY_TYPES = (discord.MessageType.default, discord.MessageType.reply)
VOICE_DECODE_TIMEOUT_S = 60.0


def build_discord(config: DiscordConfig, pipeline: Pipeline, pool: Pool) -> ParleyDiscordClient:
    """The Discord client for `config`; `await client.start()` runs it, `await client.close()` stops it."""
    Route.BASE = config.api_base.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url or DISCORD_GATEWAY)
    return ParleyDiscordClient(config, pipeline, pool)


class ParleyDiscordClient(discord.AutoShardedClient):
    def __init__(self, config: DiscordConfig, pipeline: Pipeline, pool: Pool) -> None:
        # Parley never joins voice channels: discord.py's warnings about missing voice libraries would mislead.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        optional: dict[str, Any] = {}
        if config.shard_ids is not None:
            optional["shard_ids"] = list(config.shard_ids)
        if config.application_id:
            optional["application_id"] = int(config.application_id)
        super().__init__(
            intents=required_intents(),
            shard_count=config.shard_count,
            allowed_mentions=NOBODY,
            chunk_guilds_at_startup=False,
            **optional,
        )
        self.config = config
        self.pipeline = pipeline
        self.pool = pool
        self.tree = build_tree(self, pool=pool, ask=self.ask)
        self.uploads = httpx.AsyncClient(timeout=httpx.Timeout(60.0))
        """Puts voice messages to the upload URLs Discord hands out."""

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, token: str | None = None, *, reconnect: bool = True) -> None:
        """Log in, sync the slash commands, connect every shard and serve until closed."""
        await super().start(token or self.config.token, reconnect=reconnect)

    async def close(self) -> None:
        await super().close()
        await self.uploads.aclose()

    async def setup_hook(self) -> None:
        self.add_view(FeedbackButtons(self.rate))
        synced = await self.tree.sync()
        log.info("slash commands synced: %s", ", ".join(c.name for c in synced))

    async def launch_shards(self) -> None:
        """With DISCORD_GATEWAY_URL set, ask /gateway/bot only for the shard count, then connect there."""
        if self.config.gateway_url is not None and self.shard_count is None:
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        await super().launch_shards()

    # -- messages -------------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        if self.user is None or message.author.bot:
            return
        try:
            await self._on_message(message)
        except discord.HTTPException as exc:
            log.warning("Discord refused a write (%s %s)", exc.status, exc.code, extra=_where(message))
        except Exception:
            log.exception("answering a Discord message failed", extra=_where(message))

    async def _on_message(self, message: discord.Message) -> None:
        assert self.user is not None
        workspace = str(message.guild.id) if message.guild else DM_WORKSPACE
        facts, home = await self._facts(message, workspace)
        target = route(facts)
        if target is None:
            return
        text = clean_text(message.content, parley_ids=_parley_ids(message, self.user.id), names=_names(message))
        referenced = message.reference.resolved if message.reference else None
        if target.reason == "mention" and isinstance(referenced, discord.Message):
            text = with_quote(text, author=referenced.author.display_name, quoted=referenced.clean_content)
        files, skipped = await download(message.attachments, max_bytes=self.config.max_file_bytes)
        channel: discord.abc.Messageable = message.channel
        channel_id = message.channel.id
        reply_to: discord.Message | None = message
        if facts.thread is None and await self._moves_to_thread(target, workspace, message.channel):
            thread = await self._start_thread(message, name=thread_name(text), home=home, target=target)
            if thread is not None:
                channel, channel_id, reply_to = thread, thread.id, None
        inbound = Inbound(
            platform=Platform.DISCORD,
            workspace_id=workspace,
            channel_id=home,
            thread_id=target.thread_id,
            user_id=str(message.author.id),
            user_name=message.author.display_name,
            channel_name=getattr(message.channel, "name", None) or "direct message",
            text=text,
            event_id=str(message.id),
            is_dm=facts.is_dm,
            attachments=files,
        )
        await discord_conversations.remember_messages(
            self.pool, workspace_id=workspace, user_id=inbound.user_id, thread_id=target.thread_id,
            messages=[NewMessage(message_id=str(message.id), channel_id=str(message.channel.id))],
        )
        surface = ChannelSurface(channel, channel_id=channel_id, reply_to=reply_to, asker_id=message.author.id)
        await self._deliver(inbound, surface, skipped=skipped, typing=channel)

    async def _facts(self, message: discord.Message, workspace: str) -> tuple[MessageFacts, str]:
        """What routing needs to know, and the conversation's home channel (a thread's parent)."""
        assert self.user is not None
        channel = message.channel
        home = str(channel.id)
        thread: ThreadFacts | None = None
        if message.guild is not None and not isinstance(channel, discord.abc.GuildChannel):
            known_thread = await discord_conversations.parley_thread(self.pool, workspace, str(channel.id))
            if isinstance(channel, discord.Thread) or known_thread is not None:
                owner = getattr(channel, "owner_id", None)
                thread = ThreadFacts(
                    thread_id=str(channel.id),
                    started_by_parley=owner == self.user.id or known_thread is not None,
                    conversation_id=known_thread.conversation_id if known_thread else None,
                )
                parent = getattr(channel, "parent_id", None)
                home = known_thread.parent_channel_id if known_thread else str(parent or channel.id)
        mentioned = _mentions(message, self.user.id)
        return (
            MessageFacts(
                message_id=str(message.id),
                channel_id=str(channel.id),
                is_dm=message.guild is None,
                from_bot=message.author.bot,
                ordinary=message.type in ORDINARY_TYPES,
                mentions_parley=mentioned,
                thread=thread,
                reply_to=await self._reply_facts(message, workspace),
                answers_unmentioned=message.guild is not None
                and not mentioned
                and await answers_unmentioned_in(self.pool, _workspace(workspace), home),
            ),
            home,
        )

    async def _reply_facts(self, message: discord.Message, workspace: str) -> ReplyFacts | None:
        assert self.user is not None
        reference = message.reference
        if reference is None or reference.message_id is None or message.type != discord.MessageType.reply:
            return None
        replied = str(reference.message_id)
        ours = await deliveries.find(self.pool, _workspace(workspace), replied)
        known = None if ours is not None else await discord_conversations.known_message(self.pool, workspace, replied)
        resolved = reference.resolved if isinstance(reference.resolved, discord.Message) else None
        to_parley = resolved.author.id == self.user.id if resolved else ours is not None
        return ReplyFacts(
            message_id=replied,
            to_parley=to_parley,
            conversation_id=ours.thread_id if ours else known.thread_id if known else None,
        )

    async def _start_thread(
        self, message: discord.Message, *, name: str, home: str, target: Target
    ) -> discord.Thread | None:
        """A Parley thread from the person's message, or None (answer in place) if Discord refuses."""
        workspace = str(message.guild.id) if message.guild else DM_WORKSPACE
        try:
            thread = await message.create_thread(name=name)
        except discord.HTTPException as exc:
            log.warning("could not start a thread (%s %s); answering in the channel", exc.status, exc.code,
                        extra=_where(message))
            return None
        await discord_conversations.remember_thread(
            self.pool, workspace_id=workspace, user_id=str(message.author.id), thread_id=str(thread.id),
            parent_channel_id=home, conversation_id=target.thread_id,
        )
        return thread

    async def _moves_to_thread(self, target: Target, workspace: str, channel: discord.abc.Messageable) -> bool:
        if not self.config.auto_thread or not isinstance(channel, discord.TextChannel):
            return False
        count = await discord_conversations.people_messages(self.pool, workspace, target.thread_id)
        return moves_to_thread(
            enabled=True, target=target, in_thread=False, user_messages=count, after=self.config.auto_thread_after
        )

    # -- slash command /ask -----------------------------------------------------------------------
    async def ask(self, interaction: discord.Interaction, question: str, file: discord.Attachment | None) -> None:
        """/ask: the same turn as a mention; the answer streams into the interaction's response
        (privately in a server that never installed Parley: only the asker did, to their account)."""
        private = interaction.guild_id is not None and not interaction.is_guild_integration()
        await interaction.response.defer(thinking=True, ephemeral=private)
        workspace = str(interaction.guild_id) if interaction.guild_id else DM_WORKSPACE
        channel = interaction.channel
        if isinstance(channel, discord.Thread):
            known_thread = await discord_conversations.parley_thread(self.pool, workspace, str(channel.id))
            home = str(channel.parent_id)
            thread_id = known_thread.conversation_id if known_thread else str(channel.id)
        else:
            home = str(interaction.channel_id)
            thread_id = home if interaction.guild_id is None else str(interaction.id)
        files, skipped = await download([file] if file else [], max_bytes=self.config.max_file_bytes)
        inbound = Inbound(
            platform=Platform.DISCORD,
            workspace_id=workspace,
            channel_id=home,
            thread_id=thread_id,
            user_id=str(interaction.user.id),
            user_name=interaction.user.display_name,
            channel_name=getattr(channel, "name", None) or "direct message",
            text=question,
            event_id=str(interaction.id),
            is_dm=interaction.guild_id is None,
            attachments=files,
        )
        await self._deliver(inbound, InteractionSurface(interaction, ephemeral=private), skipped=skipped, typing=None)

    # -- one turn, start to delivery -----------------------------------------------------------------
    async def _deliver(
        self,
        inbound: Inbound,
        surface: ChannelSurface | InteractionSurface,
        *,
        skipped: tuple[SkippedFile, ...],
        typing: discord.abc.Messageable | None,
    ) -> None:
        """Run the turn with a typing indicator; it streams into `surface` and records its delivery."""
        sink = DiscordSink(self, surface, skipped=skipped)
        async with typing.typing() if typing is not None else contextlib.nullcontext():
            await self.pipeline.run(inbound, sink)

    async def send_voice(
        self, audio: bytes, audio_format: str | None, surface: ChannelSurface | InteractionSurface
    ) -> None:
        """A native voice message where Parley posts in the channel; the audio file otherwise (an
        interaction's answer, an MP3, or a voice message Discord refused)."""
        if isinstance(surface, ChannelSurface) and audio_format == "ogg":
            try:
                meta = await measure(audio, timeout_s=VOICE_DECODE_TIMEOUT_S)
                sent = await send_voice_message(
                    self.http, self.uploads, channel_id=surface.channel_id, audio=audio, meta=meta
                )
            except (discord.HTTPException, httpx.HTTPError, Unreadable, TimeoutError) as exc:
                log.warning("voice message not possible (%s); uploading the audio file", type(exc).__name__)
            else:
                surface.add_sent(str(sent["id"]))
                return
        name = f"parley-reply.{audio_format or 'ogg'}"
        await surface.upload(discord.File(io.BytesIO(audio), filename=name))

    # -- feedback: buttons and reactions -------------------------------------------------------
    async def rate(self, interaction: discord.Interaction, score: int) -> None:
        """A 👍/👎 button under an answer: store it for the answer's turn (a second click replaces the
        first) and tell only the person who clicked."""
        message_id = str(interaction.message.id) if interaction.message is not None else ""
        workspace = str(interaction.guild_id) if interaction.guild_id else DM_WORKSPACE
        turn = await self.pipeline.react(
            Reaction(
                platform=Platform.DISCORD,
                workspace_id=workspace,
                user_id=str(interaction.user.id),
                platform_message_id=message_id,
                emoji="👍" if score > 0 else "👎",
                source=FEEDBACK_SOURCE,
            )
        )
        await interaction.response.send_message(thanks(score, stored=turn is not None), ephemeral=True)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._react(payload, removed=False)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._react(payload, removed=True)

    async def _react(self, payload: discord.RawReactionActionEvent, *, removed: bool) -> None:
        """👍/👎 on one of Parley's messages rates its turn; every other reaction is ignored."""
        if self.user is None or payload.user_id == self.user.id or score_of(str(payload.emoji)) is None:
            return
        if payload.message_author_id is not None and payload.message_author_id != self.user.id:
            return
        workspace = str(payload.guild_id) if payload.guild_id else DM_WORKSPACE
        turn = await self.pipeline.react(
            Reaction(
                platform=Platform.DISCORD,
                workspace_id=workspace,
                user_id=str(payload.user_id),
                platform_message_id=str(payload.message_id),
                emoji=str(payload.emoji),
                removed=removed,
            )
        )
        log.info("reaction %s on turn %s", "removed" if removed else "stored", turn)


class DiscordSink:
    """One turn's reply on Discord (core.sink.ReplySink): streamed edits on its surface, notes about files
    that were skipped, 👍/👎 buttons under a rateable answer (on the final text's write when there is
    one), and a spoken reply."""

    streams = True

    def __init__(
        self,
        client: ParleyDiscordClient,
        surface: ChannelSurface | InteractionSurface,
        *,
        skipped: tuple[SkippedFile, ...],
    ) -> None:
        self.client = client
        self.surface = surface
        self.skipped = skipped
        self.streamer = Streamer(surface, interval=client.config.edit_interval_s)

    async def delta(self, text: str) -> None:
        await self.streamer.on_delta(text)

    async def status(self, text: str) -> None:
        """The typing indicator around the turn says it."""

    async def tool(self, progress: ToolProgress) -> None:
        """Discord shows no tool progress; the typing indicator goes on."""

    async def finish(self, reply: Reply) -> list[str]:
        text = "\n\n".join(p for p in (reply.text, notes(self.skipped, reply.attachments)) if p)
        view = buttons_for_answer(self.client.rate) if reply.turn_id is not None else None
        if not await self.streamer.finish(text, view=view) and view is not None:
            try:
                await self.surface.add_buttons(view)
            except discord.HTTPException as exc:
                log.warning("could not add feedback buttons (%s %s)", exc.status, exc.code)
        if reply.audio is not None:
            await self.client.send_voice(reply.audio, reply.audio_format, self.surface)
        return [message_id for message_id, _ in self.surface.sent()]


def _workspace(workspace_id: str) -> WorkspaceKey:
    return WorkspaceKey(platform=Platform.DISCORD, workspace_id=workspace_id)


def _parley_ids(message: discord.Message, parley_id: int) -> set[int]:
    """Parley's user id and the ids of its integration role mentioned here (people pick either)."""
    return {parley_id} | {r.id for r in message.role_mentions if r.tags is not None and r.tags.bot_id == parley_id}


def _mentions(message: discord.Message, parley_id: int) -> bool:
    return any(u.id == parley_id for u in message.mentions) or len(_parley_ids(message, parley_id)) > 1


def _names(message: discord.Message) -> dict[int, str]:
    return {u.id: u.display_name for u in message.mentions}


def _where(message: discord.Message) -> dict[str, str]:
    return {
        "platform": Platform.DISCORD,
        "workspace": str(message.guild.id) if message.guild else DM_WORKSPACE,
        "channel": str(message.channel.id),
        "event_id": str(message.id),
    }
