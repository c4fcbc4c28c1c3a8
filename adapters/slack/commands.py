"""`/parley help|profile|memory|settings|forget` and the App Home tab: parsing and Block Kit, pure.

Profiles and forgetting belong to the memory area; the adapter reaches them through the small
`MemoryAdmin` protocol below (implemented on core.memory by `adapters.slack.memory_admin`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.slack.formatting import escape
from core.models import UserKey
from core.seams import Profile

FORGET_CONFIRM_ACTION = "parley_forget_confirm"
FORGET_CANCEL_ACTION = "parley_forget_cancel"
FIELD_ALIASES: dict[str, str] = {
    "name": "display_name",
    "display_name": "display_name",
    "language": "language",
    "lang": "language",
    "timezone": "timezone",
    "tz": "timezone",
    "style": "answer_style",
    "answer_style": "answer_style",
    "voice": "voice_replies",
    "voice_replies": "voice_replies",
    "about": "about",
}
FORGET_WARNING = (
    "This deletes everything I remember about you in this workspace: memories, profile, "
    "conversation history and feedback. It cannot be undone."
)


class MemoryAdmin(Protocol):
    """What the slash command and App Home need from the memory area."""

    async def profile(self, user: UserKey) -> Profile: ...

    async def set_profile(self, user: UserKey, field: str, value: str) -> Profile:
        """Set one profile field; raise ValueError with a sentence for the person on bad input."""
        ...

    async def memory_count(self, user: UserKey) -> int:
        """How many facts about the person are in force."""
        ...

    async def memory_lines(self, user: UserKey, *, channel_id: str, history: bool) -> list[str]:
        """What the person sees asking in `channel_id` ("" in a DM): one line per fact, id first."""
        ...

    async def remove_fact(self, user: UserKey, *, channel_id: str, fact_id: int) -> bool: ...

    async def forget(self, user: UserKey) -> dict[str, int]:
        """Delete every row of the person; the counts per table."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Help:
    unknown: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowProfile:
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class SetProfile:
    field: str
    value: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Forget:
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowMemory:
    history: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgetFact:
    fact_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ShowSettings:
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class SetSetting:
    key: str
    value: str
    """As typed: core.channel_settings.parse reads JSON where it parses, else the text."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsetSetting:
    key: str


MemoryCommand = ShowMemory | ForgetFact
SettingsCommand = ShowSettings | SetSetting | UnsetSetting
Command = Help | ShowProfile | SetProfile | Forget | MemoryCommand | SettingsCommand


def parse_command(text: str) -> Command:
    """The text after `/parley`."""
    words = text.strip().split()
    if not words or words[0].lower() == "help":
        return Help()
    head = words[0].lower()
    if head == "forget" and len(words) == 1:
        return Forget()
    if head == "memory":
        if len(words) == 1 or (len(words) == 2 and words[1].lower() in {"list", "history"}):
            return ShowMemory(history=len(words) == 2 and words[1].lower() == "history")
        if len(words) == 3 and words[1].lower() in {"forget", "remove"} and words[2].isdigit() and len(words[2]) < 19:
            return ForgetFact(fact_id=int(words[2]))
    if head == "settings":
        if len(words) == 1 or (len(words) == 2 and words[1].lower() == "show"):
            return ShowSettings()
        if words[1].lower() == "set" and len(words) >= 4:
            return SetSetting(key=words[2].lower(), value=text.strip().split(None, 3)[3])
        if words[1].lower() == "unset" and len(words) == 3:
            return UnsetSetting(key=words[2].lower())
    if head == "profile":
        if len(words) == 1 or (len(words) == 2 and words[1].lower() == "show"):
            return ShowProfile()
        if words[1].lower() == "set" and len(words) >= 4 and words[2].lower() in FIELD_ALIASES:
            return SetProfile(field=FIELD_ALIASES[words[2].lower()], value=text.strip().split(None, 3)[3])
        if words[1].lower() == "clear" and len(words) == 3 and words[2].lower() in FIELD_ALIASES:
            return SetProfile(field=FIELD_ALIASES[words[2].lower()], value="")
    return Help(unknown=text.strip())


def help_text(unknown: str | None = None) -> str:
    lines = [f"I don't know `/parley {escape(unknown)}`.", ""] if unknown else []
    return "\n".join(
        [
            *lines,
            "*Parley* answers when you mention it, in DMs, and in threads it is part of.",
            "• `/parley profile`: show how I answer you in this workspace",
            "• `/parley profile set <field> <value>`: fields `name`, `language`, `timezone`, `style` "
            "(short or detailed), `voice` (on or off), `about`",
            "• `/parley profile clear <field>`",
            "• `/parley memory`: what I know about you, this channel and the workspace "
            "(`/parley memory history` adds earlier versions)",
            "• `/parley memory forget <id>`: remove one of them",
            "• Say _remember for this channel: …_ or _remember for the workspace: …_ to tell everyone's Parley",
            "• `/parley settings`, `/parley settings set <key> <value>`, `/parley settings unset <key>`: this "
            "channel's settings (workspace admins and the channel's creator)",
            "• `/parley forget`: delete everything I remember about you here (asks first)",
            "React with :+1: or :-1: on my replies to tell me how I did.",
        ]
    )


def settings_text(stored: Sequence[tuple[str, Any, str]]) -> str:
    """The answer to `/parley settings`: each setting this channel or its workspace stores, and which."""
    if not stored:
        return "Nothing is set for this channel or workspace: Parley's defaults apply."
    lines = [
        f"• `{key}` = {escape(json.dumps(value) if not isinstance(value, str) else value)[:300]} "
        f"_(from {'this channel' if layer == 'channel' else 'the workspace'})_"
        for key, value, layer in stored
    ]
    return "\n".join(["*Settings here*", *lines, "Change one with `/parley settings set <key> <value>`."])


def profile_text(profile: Profile, memories: int | None = None) -> str:
    def shown(value: str | None) -> str:
        return escape(value) if value else "_not set_"

    lines = [
        "*Your profile in this workspace*",
        f"• Name: {shown(profile.display_name)}",
        f"• Language: {shown(profile.language)}",
        f"• Time zone: {shown(profile.timezone)}",
        f"• Answers: {shown(profile.answer_style)}",
        f"• Voice replies: {'on' if profile.voice_replies else 'off'}",
        f"• About you: {shown(profile.about)}",
    ]
    if memories is not None:
        lines.append(
            f"I remember {memories} {'thing' if memories == 1 else 'things'} about you here (`/parley memory`)."
        )
    return "\n".join(lines)


def memory_text(lines: list[str], *, history: bool) -> str:
    """The answer to `/parley memory`: one fact a line, with its id for `/parley memory forget <id>`."""
    if not lines:
        return "I don't know anything about you, this channel or the workspace yet."
    title = "*What I know here, with earlier versions*" if history else "*What I know here*"
    return "\n".join([title, *(f"• {escape(line)}" for line in lines), "Remove one with `/parley memory forget <id>`."])


def fact_removed_text(removed: bool, fact_id: int) -> str:
    if removed:
        return f"Done: I forgot fact {fact_id}."
    return f"I have no fact {fact_id} you can see here. `/parley memory` lists them with their ids."


def forget_confirmation_blocks() -> list[dict[str, Any]]:
    """The ephemeral question `/parley forget` answers with."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Forget me?* {FORGET_WARNING}"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": FORGET_CONFIRM_ACTION,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Forget everything"},
                    "value": "forget",
                },
                {
                    "type": "button",
                    "action_id": FORGET_CANCEL_ACTION,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": "cancel",
                },
            ],
        },
    ]


def home_view(profile: Profile, memories: int) -> dict[str, Any]:
    """The App Home tab: the person's profile, how many memories, and a button to forget (with
    Slack's own confirmation dialog)."""
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Parley"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": profile_text(profile, memories)}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "Change it with `/parley profile set <field> <value>`."}
                ],
            },
            {"type": "divider"},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": FORGET_CONFIRM_ACTION,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Forget me"},
                        "value": "forget",
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Forget everything?"},
                            "text": {"type": "mrkdwn", "text": FORGET_WARNING},
                            "confirm": {"type": "plain_text", "text": "Forget"},
                            "deny": {"type": "plain_text", "text": "Cancel"},
                            "style": "danger",
                        },
                    }
                ],
            },
        ],
    }


def forgotten_text(counts: dict[str, int]) -> str:
    summary = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
    return f"Done: I forgot everything about you in this workspace ({summary or 'nothing was stored'})."
