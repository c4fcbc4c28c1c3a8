"""The goldens the suite runs: typed records read from the JSONL and CSV files under `datasets/`.

Parley's own goldens live in `datasets/evals/` (see its README for source and licence); the public
safety sets (AdvBench, half of XSTest) and Parley's red-team sets live in `datasets/safety/`, where
the guardrails work keeps them, and are read from there.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
PAGES_PLACEHOLDER = "{pages}"
"""Tool goldens name web pages as `{pages}/name.html`; the runner serves `datasets/evals/pages/`."""
PARLEY_ROLE = (
    "Parley, a helpful, accurate and concise assistant for a team in a Slack or Discord workspace. "
    "It answers work questions, helps write and review messages, code and documents, uses its tools "
    "for the time, arithmetic and web pages, and declines harmful requests kindly."
)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Document(_Record):
    """A file attached to a message (a pasted policy, a thread export): the context an answer must stay faithful to."""

    name: str
    text: str


class QualityGolden(_Record):
    """One question in a team chat, with the answer a careful colleague would give."""

    id: str
    input: str
    expected_output: str | None = None
    documents: tuple[Document, ...] = ()
    tags: tuple[str, ...] = ()


class ConversationGolden(_Record):
    """A multi-turn thread: the person's messages in order; Parley's replies come from the run."""

    id: str
    scenario: str
    turns: tuple[str, ...] = Field(min_length=2)
    expected_outcome: str
    chatbot_role: str = PARLEY_ROLE
    tags: tuple[str, ...] = ()


class ToolGolden(_Record):
    """A request that needs (or must not need) tools; `expected_tools` are names, in any order."""

    id: str
    input: str
    expected_tools: tuple[str, ...]
    tags: tuple[str, ...] = ()


class MemoryGolden(_Record):
    """Facts told in one thread, asked for in another by the same person and by a colleague."""

    id: str
    tell: tuple[str, ...] = Field(min_length=1)
    ask: str
    expect_any: tuple[str, ...] = Field(min_length=1)
    """The recall answer must contain one of these (case-insensitive); the colleague's must contain none."""
    tags: tuple[str, ...] = ()


SafetyLabel = Literal["harmful", "benign"]


class SafetyPrompt(_Record):
    """One prompt of a safety set: harmful ones must be refused, benign ones answered."""

    id: str
    text: str
    label: SafetyLabel
    source: str
    category: str = ""


R = TypeVar("R", bound=_Record)
T = TypeVar("T")


def load_jsonl(path: Path, record: type[R]) -> list[R]:
    """Every non-blank line of a JSONL file as a validated record (errors name the file and line)."""
    out: list[R] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(record.model_validate_json(line))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    return out


def load_safety(folder: Path) -> dict[str, list[SafetyPrompt]]:
    """The safety sets by source: AdvBench, XSTest (safe and unsafe halves), Parley's red-team sets."""
    advbench = [
        SafetyPrompt(id=f"advbench-{n:04d}", text=row["goal"], label="harmful", source="advbench")
        for n, row in enumerate(_csv(folder / "advbench_harmful_behaviors.csv"), start=1)
    ]
    xstest = [
        SafetyPrompt(
            id=f"xstest-{row['id']}",
            text=row["prompt"],
            label="benign" if row["label"] == "safe" else "harmful",
            source="xstest-safe" if row["label"] == "safe" else "xstest-unsafe",
            category=row["type"],
        )
        for row in _csv(folder / "xstest_dev.csv")
    ]
    parley = [
        SafetyPrompt(
            id=row["id"],
            text=row["text"],
            label="benign" if row["label"] == "safe" else "harmful",
            source="parley-benign" if row["label"] == "safe" else "parley-harmful",
            category=row.get("category", ""),
        )
        for name in ("parley_harmful.jsonl", "parley_benign.jsonl")
        for row in _jsonl_rows(folder / name)
    ]
    by_source: dict[str, list[SafetyPrompt]] = {}
    for prompt in [*advbench, *xstest, *parley]:
        by_source.setdefault(prompt.source, []).append(prompt)
    return by_source


def spread(items: Sequence[T], n: int | None) -> list[T]:
    """`n` items evenly spaced through `items` (all of them when `n` is None or too big).

    The files are grouped by category, so even spacing samples every category, and the same
    `n` always picks the same items: runs stay comparable.
    """
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _jsonl_rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
