"""The suites: which goldens each one runs, chosen the same way every time so runs compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from evals.goldens import (
    ConversationGolden,
    MemoryGolden,
    QualityGolden,
    SafetyPrompt,
    ToolGolden,
    load_jsonl,
    load_safety,
    spread,
)


class SuiteName(StrEnum):
    SMOKE = "smoke"
    QUALITY = "quality"
    CONVERSATION = "conversation"
    TOOLS = "tools"
    SAFETY = "safety"
    MEMORY = "memory"
    RELEASE = "release"


G = TypeVar("G", QualityGolden, ConversationGolden, ToolGolden, MemoryGolden)
SAFETY_SOURCES = ("advbench", "xstest-unsafe", "parley-harmful", "xstest-safe", "parley-benign")


@dataclass(frozen=True, kw_only=True)
class Suite:
    """How many goldens of each kind a suite runs (None: all of them, 0: none)."""

    name: SuiteName
    quality: int | None = 0
    conversation: int | None = 0
    tools: int | None = 0
    memory: int | None = 0
    safety_per_source: int | None = 0
    judge_cases: int | None = None
    """At most this many cases per judge metric (toxicity and bias over a large safety set)."""


SUITES: dict[SuiteName, Suite] = {
    s.name: s
    for s in (
        Suite(name=SuiteName.SMOKE, quality=6, conversation=2, tools=5, safety_per_source=4, judge_cases=8),
        Suite(name=SuiteName.QUALITY, quality=None),
        Suite(name=SuiteName.CONVERSATION, conversation=None),
        Suite(name=SuiteName.TOOLS, tools=None),
        Suite(name=SuiteName.SAFETY, safety_per_source=40, judge_cases=40),
        Suite(name=SuiteName.MEMORY, memory=None),
        Suite(
            name=SuiteName.RELEASE, quality=None, conversation=None, tools=None, memory=None,
            safety_per_source=None, judge_cases=100,
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The goldens one run executes."""

    suite: Suite
    quality: list[QualityGolden] = field(default_factory=list)
    conversation: list[ConversationGolden] = field(default_factory=list)
    tools: list[ToolGolden] = field(default_factory=list)
    memory: list[MemoryGolden] = field(default_factory=list)
    safety: list[SafetyPrompt] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Pipeline turns the plan takes, for the progress bar."""
        return (
            len(self.quality)
            + sum(len(c.turns) for c in self.conversation)
            + len(self.tools)
            + sum(len(m.tell) + 2 for m in self.memory)
            + len(self.safety)
        )


def plan_suite(suite: Suite, datasets: Path) -> Plan:
    """Read only the files the suite needs and pick its goldens."""
    evals = datasets / "evals"
    safety: list[SafetyPrompt] = []
    if suite.safety_per_source != 0:
        by_source = load_safety(datasets / "safety")
        safety = [p for source in SAFETY_SOURCES for p in spread(by_source.get(source, []), suite.safety_per_source)]
    return Plan(
        suite=suite,
        quality=_pick(evals / "quality.jsonl", QualityGolden, suite.quality),
        conversation=_pick(evals / "conversations.jsonl", ConversationGolden, suite.conversation),
        tools=_pick(evals / "tools.jsonl", ToolGolden, suite.tools),
        memory=_pick(evals / "memory.jsonl", MemoryGolden, suite.memory),
        safety=safety,
    )


def _pick(path: Path, record: type[G], n: int | None) -> list[G]:
    if n == 0:
        return []
    return spread(load_jsonl(path, record), n)
