"""Pass marks per metric, read from the checked-in `evals/thresholds.yml`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, RootModel, model_validator

DEFAULT_THRESHOLDS = Path(__file__).with_name("thresholds.yml")


class Threshold(BaseModel):
    """Either a floor (`min`, higher is better) or a ceiling (`max`, lower is better)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Threshold:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min or max")
        return self

    @property
    def direction(self) -> Literal["min", "max"]:
        return "min" if self.min is not None else "max"

    @property
    def value(self) -> float:
        bound = self.min if self.min is not None else self.max
        assert bound is not None
        return bound

    @property
    def worst(self) -> float:
        """The score a case that could not be scored counts as."""
        return 0.0 if self.direction == "min" else 1.0

    def meets(self, score: float) -> bool:
        return score >= self.value if self.direction == "min" else score <= self.value

    def describe(self) -> str:
        return f"{'≥' if self.direction == 'min' else '≤'} {self.value:g}"


class _File(RootModel[dict[str, Threshold]]):
    pass


def load_thresholds(path: Path, required: Iterable[str] = ()) -> dict[str, Threshold]:
    """The thresholds in `path`; every metric named in `required` must have one."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    thresholds = _File.model_validate(data).root
    missing = sorted(set(required) - set(thresholds))
    if missing:
        raise ValueError(f"{path} has no threshold for: {', '.join(missing)}")
    return thresholds
