"""The channel a person is looking at while they talk to Parley in the agent view.

Slack says so with `app_context_changed` (agent view: an `entities` list whose channel entity is
`slack#/types/channel_id`), on DM messages as `app_context`, or, for `assistant_view` apps, with
`assistant_thread_context_changed` (`assistant_thread.context.channel_id`). The last channel seen
per person is kept in memory for a while; a turn gets its name, and its recent messages when the
person asks about "this channel".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cachetools import TTLCache

CHANNEL_ENTITY = "slack#/types/channel_id"
REMEMBER_S = 3600.0
MAX_PEOPLE = 10_000
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,30}")
_ABOUT_CHANNEL = re.compile(r"\b(?:this|the|current) (?:channel|conversation|discussion)\b|\bin here\b", re.IGNORECASE)


def viewed_channel(event: Mapping[str, Any]) -> str | None:
    """The channel an `app_context_changed` event, a DM message's `app_context`, or an
    `assistant_thread_context_changed` event names; None when it names none (or not a channel)."""
    for holder in (event.get("context"), event.get("app_context"), event):
        entities = holder.get("entities") if isinstance(holder, Mapping) else None
        for entity in entities if isinstance(entities, list) else ():
            if isinstance(entity, Mapping) and entity.get("type") == CHANNEL_ENTITY:
                return _channel(entity.get("value"))
    thread = event.get("assistant_thread")
    context = thread.get("context") if isinstance(thread, Mapping) else None
    return _channel(context.get("channel_id")) if isinstance(context, Mapping) else None


def asks_about_channel(text: str) -> bool:
    """The person refers to the channel they are viewing ("summarise this channel", "what's new in here")."""
    return _ABOUT_CHANNEL.search(text) is not None


def channel_transcript(messages: list[Mapping[str, Any]]) -> str:
    """conversations.history (newest first) as lines, oldest first: people's messages only."""
    lines = [
        f"{m.get('user')}: {' '.join(str(m.get('text') or '').split())}"
        for m in reversed(messages)
        if m.get("user") and not m.get("bot_id") and not m.get("subtype") and m.get("text")
    ]
    return "\n".join(lines)


class ViewedChannels:
    """(team, user) -> the channel last seen in view, forgotten after `REMEMBER_S`."""

    def __init__(self, *, ttl_s: float = REMEMBER_S, max_people: int = MAX_PEOPLE) -> None:
        self._seen: TTLCache[tuple[str, str], str] = TTLCache(maxsize=max_people, ttl=ttl_s)

    def note(self, team_id: str, user_id: str, channel_id: str) -> None:
        self._seen[(team_id, user_id)] = channel_id

    def get(self, team_id: str, user_id: str) -> str | None:
        return self._seen.get((team_id, user_id))


def _channel(value: object) -> str | None:
    return value if isinstance(value, str) and _CHANNEL_ID.fullmatch(value) else None
