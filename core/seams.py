"""The seams of the turn: the media, guard and memory stages the pipeline calls by name.

Each is a Protocol so the pipeline depends on the shape, not on NeMo, tesseract or pgvector.
`bot/` wires the real implementations; tests may pass the pass-through ones below. (A "step" is
something else: one tool call shown in a reply, `core.models.Step`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from core.models import Attachment, AttachmentText, UserKey

if TYPE_CHECKING:
    from core.memory.facts import Fact
    from core.memory.store import NewMemory


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """What a rail decided about one text."""

    blocked: bool
    text: str
    """The text to carry on with: masked when the rail masked something."""
    rail: str | None = None
    reason: str | None = None
    score: float = 0.0
    message: str | None = None
    """The short, kind message the person sees when blocked."""
    harm_score: float | None = None
    """A passed message's harmful-request score, the evidence the output rail weighs its reply with (None:
    not scored, e.g. the harm rail failed open)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryHit:
    id: int
    content: str
    score: float
    created_at: str = ""


class KnownFact(Protocol):
    """A fact as the prompt shows it (`core.memory.facts.Fact`)."""

    @property
    def scope(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def author_id(self) -> str | None: ...

    @property
    def said_at(self) -> datetime: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """How one person in one workspace wants to be answered; always in the prompt context."""

    display_name: str | None = None
    language: str | None = None
    timezone: str | None = None
    answer_style: str | None = None
    voice_replies: bool = False
    about: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class MediaSeam(Protocol):
    async def extract(self, attachments: Sequence[Attachment]) -> list[AttachmentText]:
        """Turn each attachment into text (or a clear error); never raises for bad input."""
        ...

    async def speak(self, text: str) -> tuple[bytes, str]:
        """Text to speech: (audio bytes, format such as 'ogg' or 'mp3')."""
        ...


class GuardSeam(Protocol):
    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        """`threshold`: a channel's or workspace's cut on the harmful-request score (None: the guard's own)."""
        ...

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        """`request`: the input rails' verdict on the message this text answers (None: judge the text alone)."""
        ...


class MemorySeam(Protocol):
    async def memory_row(self, user: UserKey, text: str, *, message_id: int | None) -> NewMemory | None:
        """The memory a turn's message is kept as (masked, embedded), for the turn's finish to write with its
        reply (core/turns.py `finish_turn`); None: nothing to keep."""
        ...

    async def learn(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        channel_id: str = "",
        is_dm: bool = True,
        known: list[Fact] | None = None,
    ) -> None:
        """Once the turn is stored: learn the message's facts, in the background; `known`: the person's facts
        the turn's finish read for it, where `memory_row` asked for them."""
        ...

    async def context(
        self, user: UserKey, query: str, *, k: int, channel_id: str, is_dm: bool
    ) -> tuple[Sequence[KnownFact], Profile, list[MemoryHit]]:
        """What a turn in `channel_id` is given: the facts in force (the person's, the workspace's, the
        channel's), the person's profile and the `k` memories best recalled for `query`."""
        ...

    async def profile(self, user: UserKey) -> Profile: ...


class NoMedia:
    """Reads plain-text attachments only; used when the media stage is not wired."""

    async def extract(self, attachments: Sequence[Attachment]) -> list[AttachmentText]:
        out: list[AttachmentText] = []
        for a in attachments:
            try:
                out.append(AttachmentText(name=a.name, kind="document", text=a.data.decode("utf-8")))
            except UnicodeDecodeError:
                out.append(AttachmentText(name=a.name, kind="unknown", error="unsupported file type"))
        return out

    async def speak(self, text: str) -> tuple[bytes, str]:
        raise RuntimeError("text-to-speech is not configured")


class NoGuard:
    """Lets everything through; only for unit tests of other steps."""

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        return Verdict(blocked=False, text=text)

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        return Verdict(blocked=False, text=text)


class NoMemory:
    """Remembers nothing beyond the thread history; used before memory is wired."""

    async def recall(self, user: UserKey, query: str, *, k: int) -> list[MemoryHit]:
        return []

    async def memory_row(self, user: UserKey, text: str, *, message_id: int | None) -> NewMemory | None:
        return None

    async def learn(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        channel_id: str = "",
        is_dm: bool = True,
        known: list[Fact] | None = None,
    ) -> None:
        return None

    async def context(
        self, user: UserKey, query: str, *, k: int, channel_id: str, is_dm: bool
    ) -> tuple[Sequence[KnownFact], Profile, list[MemoryHit]]:
        return [], await self.profile(user), await self.recall(user, query, k=k)

    async def profile(self, user: UserKey) -> Profile:
        return Profile()
