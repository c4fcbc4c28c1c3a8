"""The lines `parley guard check` reads, and the summary it prints of them.

Public safety sets come in their own shapes: HarmBench's CSV has `Behavior`, StrongREJECT's
`forbidden_prompt`, XSTest's `prompt` with a `label` of safe/unsafe and a `type`. An operator should
be able to point the command at any of them as downloaded, so the text, the id, the expected label
and the category are each read from the first field present among the usual names, and a file whose
lines say what they expect gets a summary of what was blocked per label and per category.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, TextIO

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

Expected = Literal["harmful", "safe"]

_HARMFUL = frozenset(["unsafe", "harmful", "harm", "block", "blocked", "refuse", "1", "true", "yes"])
_SAFE = frozenset(["safe", "benign", "allow", "allowed", "comply", "ok", "0", "false", "no"])


class CheckLine(BaseModel):
    """One line to check: its text, and optionally an id, the expected verdict and a category."""

    model_config = ConfigDict(extra="ignore")

    id: str | int | None = None
    text: str = Field(
        validation_alias=AliasChoices(
            "text", "prompt", "forbidden_prompt", "Behavior", "behavior", "goal", "input", "message", "content"
        )
    )
    attachments: list[str] = []
    label: str | None = Field(default=None, validation_alias=AliasChoices("label", "expected", "harmful", "unsafe"))
    category: str | None = Field(
        default=None, validation_alias=AliasChoices("category", "SemanticCategory", "type", "kind")
    )

    @field_validator("label", "category", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> str | None:
        """Labels come as strings, booleans or 0/1 ("harmful": true); all are read as text."""
        return None if value is None or value == "" else str(value)

    @property
    def expected(self) -> Expected | None:
        """What the line says the rails should do with it, if it says anything we can read."""
        if self.label is None:
            return None
        word = self.label.strip().lower()
        return "harmful" if word in _HARMFUL else "safe" if word in _SAFE else None


class BadLine(ValueError):
    """A line that holds no text to check; `number` is its line (or CSV row) number."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number


def read_lines(stream: TextIO, *, csv_file: bool) -> Iterator[CheckLine]:
    """The lines of a JSONL (or CSV, with a header row) stream, each with an id (its line number if it
    has none). Blank JSONL lines are skipped; a line without text raises `BadLine`."""
    rows = _csv_rows(stream) if csv_file else _jsonl_rows(stream)
    for number, row in rows:
        try:
            line = CheckLine.model_validate(row)
        except ValidationError as exc:
            raise BadLine(number, _reason(exc)) from exc
        yield line if line.id is not None else line.model_copy(update={"id": number})


def _jsonl_rows(stream: TextIO) -> Iterator[tuple[int, object]]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadLine(number, f"not JSON ({exc.msg})") from exc


def _csv_rows(stream: TextIO) -> Iterator[tuple[int, object]]:
    # Row numbers count the header as line 1, as a spreadsheet shows them.
    yield from enumerate(csv.DictReader(stream), start=2)


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "missing":
        return 'expected a "text" field (or prompt, forbidden_prompt, Behavior, goal, input, message)'
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


@dataclass(slots=True)
class Tally:
    """How many lines were checked and blocked, in all, per expected label and per category."""

    checked: int = 0
    blocked: int = 0
    by_label: Counter[tuple[str, bool]] = field(default_factory=Counter)
    by_category: Counter[tuple[str, str, bool]] = field(default_factory=Counter)

    def add(self, line: CheckLine, *, blocked: bool) -> None:
        self.checked += 1
        self.blocked += blocked
        expected = line.expected
        if expected is not None:
            self.by_label[expected, blocked] += 1
            if line.category:
                self.by_category[expected, line.category, blocked] += 1

    def summary(self) -> list[str]:
        """One line in all, then one per expected label and per (label, category), as rates."""
        lines = [f"Checked {self.checked} line(s): {self.blocked} blocked{_rate(self.blocked, self.checked)}."]
        for label in ("harmful", "safe"):
            hit, total = self.by_label[label, True], self.by_label[label, True] + self.by_label[label, False]
            if total:
                lines.append(f"  {label}: {hit} of {total} blocked{_rate(hit, total)}")
            categories = sorted({c for (lab, c, _) in self.by_category if lab == label})
            for category in categories:
                hit = self.by_category[label, category, True]
                total = hit + self.by_category[label, category, False]
                lines.append(f"    {category}: {hit} of {total}{_rate(hit, total)}")
        return lines


def _rate(part: int, whole: int) -> str:
    return f" ({100 * part / whole:.1f} %)" if whole else ""
