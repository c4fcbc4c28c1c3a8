"""What a run produced for each golden: the exchanges, as the person would have seen them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.models import Reply, Step
from evals.goldens import ConversationGolden, MemoryGolden, QualityGolden, SafetyPrompt, ToolGolden

Golden = QualityGolden | ConversationGolden | ToolGolden | MemoryGolden | SafetyPrompt


class Kind(StrEnum):
    QUALITY = "quality"
    CONVERSATION = "conversation"
    TOOLS = "tools"
    SAFETY = "safety"
    MEMORY = "memory"


class Role(StrEnum):
    """What an exchange is for; memory goldens have three (tell, recall, colleague)."""

    ASK = "ask"
    TELL = "tell"
    RECALL = "recall"
    COLLEAGUE = "colleague"


@dataclass(frozen=True, kw_only=True, slots=True)
class Exchange:
    """One message to Parley and its reply."""

    user_id: str
    thread_id: str
    message: str
    reply: str
    role: Role = Role.ASK
    blocked: bool = False
    error: str | None = None
    steps: tuple[Step, ...] = ()
    latency_ms: float = 0.0

    @classmethod
    def of(cls, reply: Reply, *, user_id: str, message: str, role: Role = Role.ASK) -> Exchange:
        return cls(
            user_id=user_id,
            thread_id=reply.thread_id,
            message=message,
            reply=reply.text,
            role=role,
            blocked=reply.blocked,
            error=reply.error,
            steps=reply.steps,
            latency_ms=reply.latency_ms,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Transcript:
    """A golden and everything that was said while running it."""

    kind: Kind
    golden: Golden
    exchanges: tuple[Exchange, ...]
    context: tuple[str, ...] = ()
    """What the answer had to stay faithful to (attached documents)."""

    @property
    def case_id(self) -> str:
        return self.golden.id

    @property
    def last(self) -> Exchange:
        return self.exchanges[-1]

    def by_role(self, role: Role) -> list[Exchange]:
        return [e for e in self.exchanges if e.role is role]
