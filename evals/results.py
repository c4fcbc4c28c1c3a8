"""Metric results: per-case scores, the aggregate against a threshold, pass/fail/skip. No model here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import fmean

from evals.thresholds import Threshold
from evals.transcripts import Kind

ERROR_RATE = "error_rate"
METRIC_NAMES: tuple[str, ...] = (
    "answer_relevancy", "faithfulness", "correctness", "knowledge_retention", "role_adherence",
    "conversation_completeness", "tool_correctness", "harmful_refusal_rate", "over_refusal_rate",
    "toxicity_free", "bias_free", "memory_recall", "memory_isolation", ERROR_RATE,
)
"""Every metric, in report order; each needs a threshold in `evals/thresholds.yml`."""


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    JUDGE_FAILED = "judge failed"
    """The judge gave no valid verdict for most cases: the metric was not measured (not a pass, not a fail)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseScore:
    """One golden's score on one metric; `score` None means it could not be scored (see `error`)."""

    case_id: str
    score: float | None
    reason: str | None = None
    error: str | None = None
    passed: bool = False


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    name: str
    kind: Kind | None
    """The goldens it scores; None for metrics over every turn (error rate)."""
    needs_judge: bool
    status: Status
    threshold: Threshold
    score: float | None = None
    cases: tuple[CaseScore, ...] = ()
    reason: str | None = None

    @property
    def failures(self) -> list[CaseScore]:
        return [c for c in self.cases if not c.passed]


def aggregate(
    name: str,
    kind: Kind | None,
    threshold: Threshold,
    cases: Sequence[CaseScore],
    *,
    needs_judge: bool = False,
) -> MetricResult:
    """The mean over the cases against the threshold; unscored cases count as the worst score.

    A judge metric the judge could not score for more than half of its cases is "judge failed", with
    the judge's first error as the reason: a weak judge's failures are not a measure of the assistant.
    """
    if not cases:
        return MetricResult(name=name, kind=kind, needs_judge=needs_judge, status=Status.SKIPPED,
                            threshold=threshold, reason="no golden in this suite exercises it")
    judged = tuple(
        replace(c, passed=c.score is not None and threshold.meets(c.score)) for c in cases
    )
    unscored = [c for c in judged if c.score is None]
    if needs_judge and len(unscored) * 2 > len(judged):
        return MetricResult(
            name=name, kind=kind, needs_judge=True, status=Status.JUDGE_FAILED, threshold=threshold, cases=judged,
            reason=f"judge failed on {len(unscored)} of {len(judged)} case(s): {unscored[0].error}",
        )
    score = fmean(c.score if c.score is not None else threshold.worst for c in judged)
    passed = threshold.meets(score)
    notes = []
    if not passed:
        notes.append(f"{score:.3f} misses {threshold.describe()}")
    errors = sum(1 for c in judged if c.score is None)
    if errors:
        notes.append(f"{errors} case(s) could not be scored and count as {threshold.worst:g}")
    return MetricResult(
        name=name, kind=kind, needs_judge=needs_judge, status=Status.PASSED if passed else Status.FAILED,
        threshold=threshold, score=score, cases=judged, reason="; ".join(notes) or None,
    )


def skipped(name: str, kind: Kind, threshold: Threshold, reason: str) -> MetricResult:
    return MetricResult(name=name, kind=kind, needs_judge=True, status=Status.SKIPPED, threshold=threshold,
                        reason=reason)
