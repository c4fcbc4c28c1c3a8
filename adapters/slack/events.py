"""Slack event payloads -> Parley's values. Pure: no Slack client, no database.

A message is identified by (team, channel, ts): Slack delivers a mention twice (`app_mention` and
`message`, different event ids, same ts) and retries with the same ts, so the key given to the
pipeline's dedupe is built from the ts, not from `event_id`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.models import Attachment, Inbound, Platform, Reaction


class MalformedEvent(ValueError):
    """A signed event with fields of types Slack does not send: skipped with a warning, never retried."""


ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
"""Message subtypes a person writes; every other subtype (message_changed, bot_message, joins...)
is ignored."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackFile:
    """A file shared with a message, as the event describes it (not yet downloaded)."""

    id: str
    name: str
    url: str | None
    size: int | None
    mimetype: str | None
    subtype: str | None = None
    """`slack_audio` for a voice clip recorded in Slack."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackMessage:
    """A message a person wrote, in a channel, a thread or a DM."""

    team_id: str
    channel_id: str
    user_id: str
    ts: str
    thread_ts: str | None
    """The thread the message was written in; None for a top-level message."""
    text: str
    """The text with Parley's own mention removed."""
    is_dm: bool
    mentioned: bool
    files: tuple[SlackFile, ...] = ()

    @property
    def key(self) -> str:
        """The dedupe key: one message, however many times and as whichever event it arrives."""
        return f"{self.team_id}:{self.channel_id}:{self.ts}"

    @property
    def reply_thread_ts(self) -> str | None:
        """Where to reply: in channels always in a thread (the mention starts one); in a DM in the
        thread written in, or at the top level for a top-level DM."""
        if self.is_dm:
            return self.thread_ts
        return self.thread_ts or self.ts

    @property
    def conversation_id(self) -> str:
        """The pipeline's thread id: the Slack thread, or the whole DM for top-level DMs."""
        return self.reply_thread_ts or self.channel_id


def parse_message(event: Mapping[str, Any], *, team_id: str, bot_user_id: str | None) -> SlackMessage | None:
    """A `message` or `app_mention` event as a SlackMessage; None for anything Parley must not answer
    (its own messages, other bots, edits, deletions, joins). Raises MalformedEvent on wrong types.

    The tenant is always `team_id`, the installation the event came to: the event's own `team` names the
    sender's organisation, which in a Slack Connect channel is another one, whose memories, notes and
    settings must not answer in this workspace's channel."""
    if _string(event, "subtype") not in ANSWERED_SUBTYPES or event.get("bot_id") or event.get("hidden"):
        return None
    user = _string(event, "user")
    channel = _string(event, "channel")
    ts = _string(event, "ts")
    if not user or not channel or not ts or user == bot_user_id:
        return None
    text = _string(event, "text") or ""
    mentioned = event.get("type") == "app_mention" or (bot_user_id is not None and _mention(bot_user_id) in text)
    thread_ts = _string(event, "thread_ts")
    return SlackMessage(
        team_id=team_id,
        channel_id=channel,
        user_id=user,
        ts=ts,
        thread_ts=thread_ts if thread_ts and thread_ts != ts else None,
        text=strip_mention(text, bot_user_id),
        is_dm=_string(event, "channel_type") == "im" or channel.startswith("D"),
        mentioned=mentioned,
        files=tuple(f for f in (parse_file(raw) for raw in _objects(event, "files")) if f is not None),
    )


def is_addressed(message: SlackMessage, *, in_parley_thread: bool, thread_followups: bool) -> bool:
    """Parley answers DMs, mentions, and (when enabled) follow-ups in threads it takes part in."""
    if message.is_dm or message.mentioned:
        return True
    return thread_followups and message.thread_ts is not None and in_parley_thread


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """The text without `<@BOT>` (or `<@BOT|name>`), whitespace tidied."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def parse_file(raw: Mapping[str, Any]) -> SlackFile | None:
    """A file object from an event; None for a file hidden from the app (`mode: tombstone`...)."""
    file_id = _string(raw, "id")
    if not file_id or _string(raw, "mode") in {"tombstone", "hidden_by_limit"}:
        return None
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | float)):
        raise MalformedEvent(f"file size is a {type(size).__name__}, not a number")
    return SlackFile(
        id=file_id,
        name=_string(raw, "name") or _string(raw, "title") or file_id,
        url=_string(raw, "url_private_download") or _string(raw, "url_private"),
        size=int(size) if size is not None else None,
        mimetype=_string(raw, "mimetype"),
        subtype=_string(raw, "subtype"),
    )


def to_inbound(message: SlackMessage, attachments: tuple[Attachment, ...]) -> Inbound:
    return Inbound(
        platform=Platform.SLACK,
        workspace_id=message.team_id,
        channel_id=message.channel_id,
        thread_id=message.conversation_id,
        user_id=message.user_id,
        text=message.text,
        event_id=message.key,
        is_dm=message.is_dm,
        attachments=attachments,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ReactionEvent:
    """A reaction on one of Parley's messages (reactions on other messages never get here)."""

    team_id: str
    channel_id: str
    ts: str
    user_id: str
    emoji: str
    removed: bool

    def to_reaction(self, platform_message_id: str) -> Reaction:
        return Reaction(
            platform=Platform.SLACK,
            workspace_id=self.team_id,
            user_id=self.user_id,
            platform_message_id=platform_message_id,
            emoji=self.emoji,
            removed=self.removed,
        )


def parse_reaction(event: Mapping[str, Any], *, team_id: str, bot_user_id: str | None) -> ReactionEvent | None:
    """`reaction_added` / `reaction_removed` on a message Parley wrote; None otherwise. Raises
    MalformedEvent on wrong types."""
    item = event.get("item") or {}
    if not isinstance(item, Mapping):
        raise MalformedEvent(f"item is a {type(item).__name__}, not an object")
    if _string(item, "type") != "message" or not bot_user_id or _string(event, "item_user") != bot_user_id:
        return None
    user = _string(event, "user")
    channel = _string(item, "channel")
    ts = _string(item, "ts")
    if not user or user == bot_user_id or not channel or not ts:
        return None
    return ReactionEvent(
        team_id=team_id,
        channel_id=channel,
        ts=ts,
        user_id=user,
        emoji=_string(event, "reaction") or "",
        removed=event.get("type") == "reaction_removed",
    )


def message_id(channel_id: str, ts: str) -> str:
    """Parley's platform message id for a Slack message: ts is unique only within a channel."""
    return f"{channel_id}:{ts}"


def _mention(user_id: str) -> str:
    return f"<@{user_id}"


def _string(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedEvent(f"{key} is a {type(value).__name__}, not a string")


def _objects(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MalformedEvent(f"{key} is not a list of objects")
    return value
