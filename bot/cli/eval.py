"""`parley eval`: score the assistant with the evaluation suite; `harvest` 👎 turns; `online` scores."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic_ai.exceptions import UserError
from rich.console import Console

from bot.app import models_for
from bot.cli.common import err, load_settings, parse_since, run, wide_table
from bot.database import open_pool
from bot.local_model import model_notice, with_default_model
from bot.settings import MISSING_MODEL_HELP, Settings
from core.llm import ModelNotConfigured
from evals.goldens import DATASETS_DIR
from evals.harvest import harvest, to_jsonl
from evals.history import CompareWith, baseline, save_run, trends
from evals.online import daily_scores
from evals.report import ReportFiles, delta, write_reports
from evals.results import METRIC_NAMES, Status
from evals.run import Baseline, EvalRun
from evals.suites import SUITES, SuiteName
from evals.thresholds import DEFAULT_THRESHOLDS, load_thresholds

if TYPE_CHECKING:
    from evals.evaluate import EvalRequest

out = Console()
app = typer.Typer(
    help="Evaluate Parley: run a suite of goldens through the real pipeline and score it with DeepEval.",
    invoke_without_command=True,
)


@app.callback()
def eval_suite(
    ctx: typer.Context,
    suite: Annotated[SuiteName, typer.Option(help="Which goldens to run.")] = SuiteName.SMOKE,
    model: Annotated[str | None, typer.Option(help="Candidate model (default PARLEY_MODEL).")] = None,
    judge: Annotated[str | None, typer.Option(
        help="Judge model, or 'none' for deterministic metrics only (default PARLEY_JUDGE_MODEL, then PARLEY_MODEL)."
    )] = None,
    report: Annotated[Path, typer.Option(help="Folder for the JSON, JUnit XML and HTML reports.")] = Path(
        "eval-report"
    ),
    compare: Annotated[CompareWith | None, typer.Option(help="Show score changes against an earlier run.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Goldens (and judge calls) at once.")] = 4,
    guard: Annotated[bool, typer.Option("--guard/--no-guard",
                                        help="--no-guard evaluates the candidate without its rails.")] = True,
    thresholds: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Thresholds file.")] = (
        DEFAULT_THRESHOLDS
    ),
    release: Annotated[str | None, typer.Option(help="Record this run as release TAG (for --compare).")] = None,
    git_ref: Annotated[str | None, typer.Option(envvar="GITHUB_SHA", help="Commit evaluated.")] = None,
    datasets: Annotated[Path, typer.Option(exists=True, file_okay=False, envvar="PARLEY_DATASETS_DIR",
                                           help="The datasets folder (the container sets it).")] = DATASETS_DIR,
    history: Annotated[bool, typer.Option("--history/--no-history",
                                          help="Store the run in Postgres and chart trends.")] = True,
    verbose: Annotated[bool, typer.Option(help="Keep Parley's per-turn log lines.")] = False,
    judge_max_tokens: Annotated[int | None, typer.Option(
        min=16, help="Longest verdict the judge may write (default: its own bound; lower for a slow local judge)."
    )] = None,
) -> None:
    """Run a suite; exit 1 naming the failing metrics, 0 when every metric that ran passed."""
    if ctx.invoked_subcommand is not None:
        return
    # DeepEval takes seconds to import: only `parley eval` itself pays for it, not every command.
    from bot.evaluation import candidate_description, candidate_settings
    from evals.evaluate import EvalRequest
    from evals.judge import choose_judge

    settings = load_settings()
    if not verbose:
        logging.getLogger("parley").setLevel(logging.WARNING)
    candidate = with_default_model(candidate_settings(settings, model=model))
    if not candidate.parley_model:
        err.print(f"[red]{MISSING_MODEL_HELP}[/red]")
        raise typer.Exit(2)
    if notice := model_notice(candidate):
        err.print(f"[yellow]{notice}[/yellow]")
    try:
        marks = load_thresholds(thresholds, METRIC_NAMES)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    request = EvalRequest(
        suite=SUITES[suite], model=candidate.parley_model,
        judge=choose_judge(judge, judge_model=settings.parley_judge_model, model=candidate.parley_model),
        thresholds=marks, candidate=candidate_description(candidate, guard=guard), datasets=datasets,
        concurrency=concurrency, release=release, git_ref=git_ref,
    )
    try:
        result, files, base = run(
            _evaluate_and_report(candidate, request, report, guard=guard, compare=compare, history=history,
                                 judge_max_tokens=judge_max_tokens)
        )
    except (UserError, ModelNotConfigured) as exc:  # an unknown model name, a provider without its key
        err.print(f"[red]Cannot build the candidate or the judge: {exc}[/red]")
        raise typer.Exit(2) from exc
    print_summary(result, files, base, console=out)
    if result.judge_failed:
        err.print(f"[yellow]Judge failed (not measured): {', '.join(result.judge_failed)}. The judge model gave no "
                  "valid verdicts; pick a stronger one with --judge or PARLEY_JUDGE_MODEL.[/yellow]")
    if result.failing:
        err.print(f"[red]Failing metrics: {', '.join(result.failing)}[/red]")
    if not result.passed:
        raise typer.Exit(1)


async def _evaluate_and_report(
    candidate: Settings, request: EvalRequest, folder: Path, *, guard: bool, compare: CompareWith | None,
    history: bool, judge_max_tokens: int | None,
) -> tuple[EvalRun, ReportFiles, Baseline | None]:
    from bot.evaluation import build_judge, candidate_pipelines
    from evals.evaluate import evaluate

    judge_name = request.judge.name
    async with models_for(candidate, also=[judge_name] if judge_name else []) as models:
        assert models is not None, "the candidate has a model (checked before)"
        result = await evaluate(
            request,
            pipelines=candidate_pipelines(candidate, models, guard=guard),
            judge=build_judge(candidate, models, judge_name, max_tokens=judge_max_tokens) if judge_name else None,
            console=err,
        )
    if not history:
        return result, write_reports(result, folder), None
    pool = await open_pool(candidate, max_size=2)
    try:
        run_id = await save_run(pool, result)
        base = await baseline(pool, compare, suite=result.info.suite, before=run_id) if compare else None
        files = write_reports(result, folder, trends=await trends(pool, result.info.suite), baseline=base)
    finally:
        await pool.close()
    return result, files, base


def print_summary(result: EvalRun, files: ReportFiles, base: Baseline | None, *, console: Console) -> None:
    table = wide_table("metric", "goldens", "score", "threshold", "status", *(["Δ " + base.label] if base else []),
                       "notes", title=f"parley eval --suite {result.info.suite}")
    colours = {
        Status.PASSED: "green", Status.FAILED: "red", Status.SKIPPED: "yellow", Status.JUDGE_FAILED: "magenta",
    }
    for m in result.metrics:
        change = delta(m, base)
        table.add_row(
            m.name, m.kind or "all", f"{m.score:.3f}" if m.score is not None else "–", m.threshold.describe(),
            f"[{colours[m.status]}]{m.status}[/]",
            *([f"{change:+.3f}" if change is not None else "–"] if base else []),
            m.reason or "",
        )
    console.print(table)
    console.print(f"reports: {files.html}  {files.json}  {files.junit}")


@app.command("harvest")
def harvest_command(
    out_file: Annotated[Path, typer.Option("--out", dir_okay=False, help="JSONL file for the candidates.")],
    since: Annotated[str, typer.Option(help="7d, 24h, or an ISO date.")] = "7d",
) -> None:
    """Write 👎-rated turns (masked) as candidate goldens for review."""
    settings = load_settings()
    cutoff = parse_since(since)

    async def main() -> int:
        pool = await open_pool(settings, max_size=2)
        try:
            candidates = await harvest(pool, cutoff)
        finally:
            await pool.close()
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(to_jsonl(candidates), encoding="utf-8")
        return len(candidates)

    count = run(main())
    out.print(f"wrote {count} candidate golden(s) to {out_file}; review them before adding to datasets/evals/")


@app.command("online")
def online_command(since: Annotated[str, typer.Option(help="7d, 24h, or an ISO date.")] = "7d") -> None:
    """Online scores of live turns per day (PARLEY_ONLINE_EVAL_FRACTION > 0 turns them on)."""
    settings = load_settings()

    async def main() -> None:
        pool = await open_pool(settings, max_size=2)
        try:
            rows = await daily_scores(pool, parse_since(since))
        finally:
            await pool.close()
        table = wide_table("day", "metric", "turns", "mean score", "judge errors")
        for r in rows:
            table.add_row(r.day.isoformat(), r.metric, str(r.turns), f"{r.mean:.3f}" if r.mean is not None else "–",
                          str(r.errors))
        out.print(table)

    run(main())
