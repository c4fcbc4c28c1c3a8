"""One evaluation, end to end: goldens through the real pipeline in a throwaway database, then scored.

The pipeline is the one `bot.app` builds, with the steps `bot.app.build_steps` wires (guard, memory,
media), so a run measures what production runs. The candidate can be changed (model, system prompt
through settings, guard off) to measure a deliberately different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.app import Steps, build_steps, started
from bot.settings import Settings
from core.pipeline import Pipeline
from core.steps import NoGuard
from evals.goldens import DATASETS_DIR
from evals.judge import JudgeChoice, build_judge
from evals.metrics import judge_workload, score_run
from evals.run import EvalRun, RunInfo
from evals.runner import collect
from evals.sandbox import serve_pages, throwaway_database
from evals.suites import Suite, plan_suite
from evals.thresholds import Threshold

StepsFactory = Callable[[Settings, asyncpg.Pool], Steps]


@dataclass(frozen=True, kw_only=True)
class EvalRequest:
    suite: Suite
    settings: Settings
    """The candidate's settings (see `evals.runner.candidate_settings`)."""
    judge: JudgeChoice
    thresholds: dict[str, Threshold]
    datasets: Path = DATASETS_DIR
    concurrency: int = 4
    guard: bool = True
    """False evaluates the candidate with the input and output rails replaced by pass-throughs."""
    release: str | None = None
    git_ref: str | None = None


async def evaluate(
    request: EvalRequest,
    *,
    pool: asyncpg.Pool | None = None,
    steps_factory: StepsFactory = build_steps,
    console: Console | None = None,
) -> EvalRun:
    """Run the suite; `pool` defaults to a fresh embedded Postgres deleted afterwards."""
    started = datetime.now(UTC)
    plan = plan_suite(request.suite, request.datasets)
    judge = build_judge(request.settings, request.judge.name) if request.judge.name else None
    with _progress(console) as progress:
        turns = progress.add_task("goldens", total=plan.size)
        async with (
            _database(pool) as db,
            serve_pages(request.datasets / "evals" / "pages") as pages_url,
            _started(request, db, steps_factory) as pipeline,
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
        model=request.settings.parley_model,
        judge=request.judge.name,
        judge_skip_reason=request.judge.reason,
        candidate=candidate_description(request.settings, guard=request.guard),
        release=request.release,
        git_ref=request.git_ref,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    return EvalRun(info=info, metrics=metrics, transcripts=transcripts)


def candidate_description(settings: Settings, *, guard: bool) -> dict[str, Any]:
    """What besides the model defines the candidate; a custom system prompt is named by its hash."""
    out: dict[str, Any] = {"guard": "on" if guard else "off"}
    if settings.parley_system_prompt:
        out["system_prompt_sha256"] = hashlib.sha256(settings.parley_system_prompt.encode()).hexdigest()[:12]
    return out


@asynccontextmanager
async def _started(request: EvalRequest, db: asyncpg.Pool, steps_factory: StepsFactory) -> AsyncIterator[Pipeline]:
    """The candidate's pipeline with its steps started (memory warms its model), closed afterwards,
    as `bot.app.running` does for a serving process."""
    steps = steps_factory(request.settings, db)
    if not request.guard:
        steps = replace(steps, guard=NoGuard())
    async with started(request.settings, db, steps) as pipeline:
        yield pipeline


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
