"""The shared, platform-neutral types of one turn.

Adapters convert SDK payloads into these at the edge; nothing past an adapter sees a Slack or
Discord object. Internal values are frozen keyword-only dataclasses; pydantic lives at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal


class Platform(StrEnum):
    """Where a turn came from; part of every tenancy key."""

    CONSOLE = "console"
    SLACK = "slack"
    DISCORD = "discord"
    API = "api"
    EVAL = "eval"


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkspaceKey:
    """One tenant: a Slack team, a Discord guild, an API workspace, a console 'local'."""

    platform: str
    workspace_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class UserKey:
    """One person inside one workspace. Memories and profiles are keyed by this, never by user alone."""

    platform: str
    workspace_id: str
    user_id: str

    @property
    def workspace(self) -> WorkspaceKey:
        return WorkspaceKey(platform=self.platform, workspace_id=self.workspace_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConversationKey:
    """One conversation: a Slack thread, a Discord reply chain or thread, an API session."""

    platform: str
    workspace_id: str
    channel_id: str
    thread_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    """A file that came with a message, already downloaded (platform URLs expire)."""

    name: str
    data: bytes
    content_type: str | None = None
    """What the platform claimed; the media stage decides the real type from the content."""


AttachmentKind = Literal["image", "document", "audio", "unknown"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttachmentText:
    """What the media stage made of one attachment: its text, or why it could not be read."""

    name: str
    kind: AttachmentKind
    text: str | None = None
    error: str | None = None
    image: bytes | None = None
    """The image itself, for models that accept images."""
    image_media_type: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Inbound:
    """A message addressed to Parley, as an adapter hands it to the pipeline."""

    platform: str
    workspace_id: str
    channel_id: str
    thread_id: str
    user_id: str
    text: str
    event_id: str
    is_dm: bool = False
    attachments: tuple[Attachment, ...] = ()
    user_name: str | None = None
    channel_name: str | None = None
    voice_reply: bool | None = None
    """Ask for a spoken reply; None means: follow the user's profile."""
    viewing_channel: str | None = None
    """In a DM: the name of the channel the person is looking at (Slack's agent view)."""

    @property
    def user(self) -> UserKey:
        return UserKey(platform=self.platform, workspace_id=self.workspace_id, user_id=self.user_id)

    @property
    def conversation(self) -> ConversationKey:
        return ConversationKey(
            platform=self.platform,
            workspace_id=self.workspace_id,
            channel_id=self.channel_id,
            thread_id=self.thread_id,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Reaction:
    """A 👍/👎 (or its removal) on a message Parley sent."""

    platform: str
    workspace_id: str
    user_id: str
    platform_message_id: str
    emoji: str
    removed: bool = False
    source: str | None = None
    """How the rating was given, as stored; None stores the emoji (a platform's feedback button names itself)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One reasoning step of a turn: a tool call with its arguments, outcome and timing."""

    tool: str
    args: dict[str, object]
    result: str
    ok: bool
    duration_ms: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolProgress:
    """A tool call changing state during a turn, for adapters that show progress (status lines, task cards)."""

    call_id: str
    tool: str
    args: dict[str, object]
    """Masked, like a Step's."""
    status: Literal["pending", "in_progress", "complete", "error"]
    output: str | None = None
    """A short, masked summary of the result once the call is over."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """The outcome of one turn, ready for an adapter to render."""

    text: str
    thread_id: str
    blocked: bool = False
    block_rail: str | None = None
    error: str | None = None
    """Set when the turn failed; `text` then explains it to the person."""
    turn_id: int | None = None
    steps: tuple[Step, ...] = ()
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    attachments: tuple[AttachmentText, ...] = ()
    audio: bytes | None = None
    audio_format: str | None = None
    duplicate: bool = False
    """The event was seen before; adapters send nothing."""
    created_at: datetime | None = None
