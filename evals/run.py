"""One finished evaluation run: what ran, against what, and every metric's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evals.results import MetricResult, Status
from evals.transcripts import Transcript


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    suite: str
    model: str | None
    judge: str | None
    judge_skip_reason: str | None = None
    """Why judge metrics were skipped, when they were."""
    candidate: dict[str, Any] = field(default_factory=dict)
    """What else defines the candidate: guard on/off, a system-prompt override (its hash)."""
    release: str | None = None
    git_ref: str | None = None
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, kw_only=True)
class EvalRun:
    info: RunInfo
    metrics: list[MetricResult]
    transcripts: list[Transcript]

    @property
    def failing(self) -> list[str]:
        """Names of the metrics that ran and missed their threshold."""
        return [m.name for m in self.metrics if m.status is Status.FAILED]

    @property
    def judge_failed(self) -> list[str]:
        """Names of the metrics the judge could not measure."""
        return [m.name for m in self.metrics if m.status is Status.JUDGE_FAILED]

    @property
    def passed(self) -> bool:
        """Every metric that ran met its threshold, and none went unmeasured for a failing judge."""
        return not self.failing and not self.judge_failed

    def transcript(self, case_id: str) -> Transcript | None:
        return next((t for t in self.transcripts if t.case_id == case_id), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrendPoint:
    run_id: int
    finished_at: datetime
    release: str | None
    score: float | None


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """An earlier run to compare with (`--compare last-release` or `last`)."""

    run_id: int
    label: str
    finished_at: datetime
    scores: dict[str, float | None]
