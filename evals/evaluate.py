"""One evaluation, end to end: goldens through the real pipeline in a throwaway database, then scored.

The caller (`bot/`) passes a pipeline factory that builds the pipeline production runs, with its
guard, memory and media, so a run measures what production runs; a deliberately different candidate
(model, system prompt, guard off) is a different factory. The judge is passed in as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from deepeval.models import DeepEvalBaseLLM
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.pipeline import Pipeline
from evals.goldens import DATASETS_DIR
from evals.judge import JudgeChoice
from evals.metrics import judge_workload, score_run
from evals.run import EvalRun, RunInfo
from evals.runner import collect
from evals.sandbox import serve_pages, throwaway_database
from evals.suites import Suite, plan_suite
from evals.thresholds import Threshold

PipelineFactory = Callable[[asyncpg.Pool], AbstractAsyncContextManager[Pipeline]]
"""The candidate's pipeline on a database, started, and closed when the context exits."""


@dataclass(frozen=True, kw_only=True)
class EvalRequest:
    suite: Suite
    model: str | None
    """The candidate's model name, as reported."""
    judge: JudgeChoice
    thresholds: dict[str, Threshold]
    candidate: dict[str, Any] = field(default_factory=dict)
    """What besides the model defines the candidate: guard on/off, a system-prompt override (its hash)."""
    datasets: Path = DATASETS_DIR
    concurrency: int = 4
    release: str | None = None
    git_ref: str | None = None


async def evaluate(
    request: EvalRequest,
    *,
    pipelines: PipelineFactory,
    judge: DeepEvalBaseLLM | None,
    pool: asyncpg.Pool | None = None,
    console: Console | None = None,
) -> EvalRun:
    """Run the suite on the candidate `pipelines` builds, scored by `judge` (None: judge metrics are
    skipped with `request.judge.reason`); `pool` defaults to a fresh embedded Postgres deleted afterwards."""
    started = datetime.now(UTC)
    plan = plan_suite(request.suite, request.datasets)
    with _progress(console) as progress:
        turns = progress.add_task("goldens", total=plan.size)
        async with (
            _database(pool) as db,
            serve_pages(request.datasets / "evals" / "pages") as pages_url,
            pipelines(db) as pipeline,
        ):
            transcripts = await collect(
                plan, pipeline, pages_url=pages_url, concurrency=request.concurrency,
                on_turn=lambda: progress.advance(turns),
            )
        workload = judge_workload(request.suite, transcripts, judge)
        judging = progress.add_task("judging", total=workload, visible=workload > 0)
        metrics = await score_run(
            request.suite, transcripts, judge=judge, judge_reason=request.judge.reason,
            thresholds=request.thresholds, concurrency=request.concurrency,
            on_case=lambda: progress.advance(judging),
        )
    info = RunInfo(
        suite=request.suite.name,
        model=request.model,
        judge=request.judge.name,
        judge_skip_reason=request.judge.reason,
        candidate=request.candidate,
        release=request.release,
        git_ref=request.git_ref,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    return EvalRun(info=info, metrics=metrics, transcripts=transcripts)


@asynccontextmanager
async def _database(pool: asyncpg.Pool | None) -> AsyncIterator[asyncpg.Pool]:
    if pool is not None:
        yield pool
        return
    async with throwaway_database() as fresh:
        yield fresh


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console or Console(stderr=True),
    )
