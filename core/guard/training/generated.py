"""Prompt sets generated from template families: the family, its rows, and writing them out.

A family is one way of asking; its templates' slots are filled from a module's vocabulary. Whole
families go to one split: a family whose name starts with `v_` is validation, so the validation
phrasings are ones the classifier was never tuned on.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True, slots=True)
class Family:
    name: str
    category: str
    templates: tuple[str, ...]
    harmful: bool = False

    @property
    def split(self) -> str:
        return "validation" if self.name.startswith("v_") else "dev"


def family_rows(
    families: tuple[Family, ...],
    fill: Callable[[str, random.Random], list[str]],
    *,
    seed: int,
    prefix: str,
    size: Callable[[Family], int],
) -> list[dict[str, str]]:
    """Each family's templates filled by `fill`, shuffled, at most `size(family)` rows; ids stable for a seed."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for family in families:
        texts = sorted({t for template in family.templates for t in fill(template, rng)})
        rng.shuffle(texts)
        for i, text in enumerate(texts[: size(family)]):
            rows.append(
                {
                    "id": f"{prefix}-{family.name}-{i:02d}",
                    "text": text,
                    "category": family.category,
                    "family": family.name,
                    "split": family.split,
                    "label": "unsafe" if family.harmful else "safe",
                }
            )
    return rows


def write_set(out: Path, rows: list[dict[str, str]], families: int) -> None:
    """Write `rows` to `out` (JSONL) and print how many there are per split and label."""
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    counts = Counter(f"{r['split']}:{r['label']}" for r in rows)
    print(json.dumps({"rows": len(rows), **dict(sorted(counts.items())), "families": families}))
