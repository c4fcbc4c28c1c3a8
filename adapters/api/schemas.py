"""Request and response bodies of the REST API, split by direction (pydantic at the edge)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.guard.masking import SECRET, mask_sensitive, scrub
from core.memory.facts import Fact
from core.models import Attachment, AttachmentText, Reply
from core.seams import Profile

SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"
USER_ID = r"^[A-Za-z0-9_.@:-]{1,128}$"
MAX_MESSAGE_CHARS = 20_000
MAX_ATTACHMENTS = 10


# -- errors -----------------------------------------------------------------------------------
class FieldProblem(BaseModel):
    field: str = Field(description="Where in the request, e.g. body.attachments.0.data.")
    problem: str


class ErrorBody(BaseModel):
    """Every error answer: what went wrong and what to do about it (seed property 53)."""

    error: str = Field(description="A stable machine-readable code, e.g. unauthorized.")
    message: str = Field(description="What went wrong, in a sentence.")
    fix: str = Field(description="What to do about it.")
    fields: list[FieldProblem] = Field(default_factory=list, description="Invalid fields, for 422 answers.")


# -- chat -------------------------------------------------------------------------------------
class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, examples=["notes.txt"])
    data: str = Field(description="The file's bytes, base64-encoded (standard alphabet, padded).")
    content_type: str | None = Field(default=None, max_length=255, examples=["text/plain"])

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("data must be base64 (standard alphabet, with = padding)") from exc
        return value

    def to_attachment(self) -> Attachment:
        return Attachment(name=self.name, data=base64.b64decode(self.data), content_type=self.content_type)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        max_length=MAX_MESSAGE_CHARS,
        description="What the person says. May be empty when attachments (e.g. a voice note) carry the message.",
        examples=["What is on my calendar today?"],
    )
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID,
        description="Continue this conversation; omit to start a new one (its id comes back).",
    )
    user_id: str | None = Field(
        default=None,
        pattern=USER_ID,
        description="Who is talking, inside the key's workspace; default: one user per API key.",
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    voice_reply: bool | None = Field(default=None, description="Ask for a spoken reply as well (base64 audio).")

    @field_validator("session_id", "user_id")
    @classmethod
    def _ids_are_not_secrets(cls, value: str | None) -> str | None:
        return not_a_secret(value)

    @model_validator(mode="after")
    def _something_to_answer(self) -> ChatRequest:
        if not self.message.strip() and not self.attachments:
            raise ValueError("send a non-empty message, an attachment, or both")
        return self


def not_a_secret(value: str | None) -> str | None:
    """Ids are stored, logged and shown: one that looks like a token or key is refused."""
    if value is not None and SECRET in mask_sensitive(value).kinds:
        raise ValueError("looks like a secret (an API key or token); use a random id instead")
    return value


class StepOut(BaseModel):
    tool: str
    args: dict[str, object]
    result: str
    ok: bool
    duration_ms: float


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    requests: int
    cost_usd: float | None


class AttachmentOut(BaseModel):
    name: str
    kind: Literal["image", "document", "audio", "unknown"]
    text: str | None = Field(default=None, description="What was read (OCR, transcript, text), secrets masked.")
    error: str | None = Field(default=None, description="Why the file could not be read, for the person.")

    @classmethod
    def of(cls, item: AttachmentText) -> AttachmentOut:
        text = scrub(item.text) if item.text is not None else None
        return cls(name=item.name, kind=item.kind, text=text, error=item.error)


class ChatResponse(BaseModel):
    """One turn's outcome (seed property 13: every field always present)."""

    reply: str = Field(description="Parley's answer, a kind refusal when blocked, or what went wrong.")
    blocked: bool
    rail: str | None = Field(description="The rail that blocked the turn, when blocked.")
    error: str | None = Field(description="Set when the turn failed (e.g. timeout, model_not_configured).")
    session_id: str
    turn_id: int | None = Field(description="Rate this turn with POST /v1/feedback.")
    steps: list[StepOut]
    usage: UsageOut
    latency_ms: float
    attachments: list[AttachmentOut]
    audio: str | None = Field(default=None, description="A spoken reply, base64, when asked for.")
    audio_format: str | None = None

    @classmethod
    def of(cls, reply: Reply, session_id: str) -> ChatResponse:
        return cls(
            reply=reply.text,
            blocked=reply.blocked,
            rail=reply.block_rail,
            error=reply.error,
            session_id=session_id,
            turn_id=reply.turn_id,
            steps=[StepOut(**asdict(s)) for s in reply.steps],
            usage=UsageOut(
                input_tokens=reply.usage.input_tokens,
                output_tokens=reply.usage.output_tokens,
                requests=reply.usage.requests,
                cost_usd=reply.usage.cost_usd,
            ),
            latency_ms=reply.latency_ms,
            attachments=[AttachmentOut.of(a) for a in reply.attachments],
            audio=base64.b64encode(reply.audio).decode() if reply.audio else None,
            audio_format=reply.audio_format if reply.audio else None,
        )


class DeltaEvent(BaseModel):
    """One `delta` server-sent event: text that passed the output rails so far."""

    text: str


# -- sessions ---------------------------------------------------------------------------------
class SessionMessage(BaseModel):
    id: int = Field(description="The message's place in the conversation; pass it as `before` for older ones.")
    role: Literal["user", "assistant"]
    content: str
    turn_id: int | None
    created_at: datetime
    interrupted: bool = Field(
        default=False,
        description="A user message left unanswered because the server stopped during its turn (a crash, a kill): "
        "no answer follows it; send it again for one (the history then holds it once).",
    )


class SessionOut(BaseModel):
    session_id: str
    workspace_id: str
    user_id: str
    created_at: datetime
    messages: list[SessionMessage] = Field(description="The page's messages, oldest first.")
    older: int | None = Field(
        default=None, description="When older messages remain: the `before` that reads the page before this one."
    )


class Deleted(BaseModel):
    deleted: bool = True
    counts: dict[str, int] = Field(default_factory=dict, description="Rows deleted per kind.")


# -- feedback ---------------------------------------------------------------------------------
class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turn_id: int = Field(ge=1, le=2**63 - 1, description="The turn_id of a /v1/chat answer.")
    score: Literal[1, -1] = Field(description="1 for 👍, -1 for 👎.")
    user_id: str | None = Field(default=None, pattern=USER_ID)

    @field_validator("user_id")
    @classmethod
    def _id_is_not_a_secret(cls, value: str | None) -> str | None:
        return not_a_secret(value)


class FeedbackOut(BaseModel):
    turn_id: int
    score: int


# -- capabilities -----------------------------------------------------------------------------
class Capabilities(BaseModel):
    model: str | None = Field(description="The configured model, or null when none is (turns then explain how).")
    model_notice: str | None = Field(
        default=None, description="A caveat to show beside the model (the small local demo model's), or null."
    )
    streaming: bool
    attachments: list[str] = Field(description="Kinds of files read: image (OCR), document, audio (speech to text).")
    max_file_mb: float
    max_attachments: int
    voice_reply: bool
    tools: list[str]
    memory: bool = Field(description="Profile and memory endpoints are available.")
    rate_limit_per_min: int


# -- profile and memories ---------------------------------------------------------------------
class ProfileOut(BaseModel):
    user_id: str
    display_name: str | None
    language: str | None
    timezone: str | None
    answer_style: str | None
    voice_replies: bool
    about: str | None

    @classmethod
    def of(cls, user_id: str, profile: Profile) -> ProfileOut:
        return cls(
            user_id=user_id,
            display_name=profile.display_name,
            language=profile.language,
            timezone=profile.timezone,
            answer_style=profile.answer_style,
            voice_replies=profile.voice_replies,
            about=profile.about,
        )


class FactOut(BaseModel):
    """One fact: the person's own, or a note told for a channel or the workspace (with its teller)."""

    id: int
    content: str
    scope: Literal["person", "channel", "workspace"]
    channel_id: str | None = Field(description="The channel a channel note is for.")
    author_id: str | None = Field(description="Who said it; null once that person was forgotten.")
    said_in: str | None = Field(description="The channel it was said in.")
    said_at: datetime
    valid_to: datetime | None = Field(description="When it was superseded or stopped being true.")
    expires_at: datetime | None
    superseded_by: int | None

    @classmethod
    def of(cls, fact: Fact) -> FactOut:
        return cls(
            id=fact.id,
            content=fact.content,
            scope=fact.scope,
            channel_id=fact.channel_id or None,
            author_id=fact.author_id,
            said_in=fact.said_in,
            said_at=fact.said_at,
            valid_to=fact.valid_to,
            expires_at=fact.expires_at,
            superseded_by=fact.superseded_by,
        )


class MemoriesOut(BaseModel):
    """What Parley knows: facts, not the transcript (the raw turns stay searchable for recall)."""

    user_id: str
    memories: list[FactOut]


# -- health -----------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok", "ready"]
