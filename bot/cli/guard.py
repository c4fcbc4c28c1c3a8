"""`parley guard ...`: run the rails over JSONL offline, and list stored safety events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal, TextIO

import typer
from rich.console import Console
from rich.progress import Progress

from bot.cli.common import err, load_settings, operator, parse_since, run, wide_table

app = typer.Typer(help="Guardrails: check texts offline, list safety events.", no_args_is_help=True)
out = Console()


@app.command("check")
def check_command(
    source: Annotated[
        str,
        typer.Argument(
            help='A JSONL file of {"text": ...} lines (or prompt, forbidden_prompt, Behavior, ...), a CSV file '
            "with such a column, or - for JSONL on stdin."
        ),
    ] = "-",
    rails: Annotated[Literal["input", "output"], typer.Option(help="Which rails to run.")] = "input",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write results here instead of stdout.")] = None,
    expect: Annotated[
        Literal["harmful", "safe"] | None,
        typer.Option(help="What lines without a label should get, for the summary (a set of one kind)."),
    ] = None,
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace id for its policy file.")] = "cli",
    platform: Annotated[str, typer.Option("--platform", "-p", help="Platform of that workspace.")] = "console",
) -> None:
    """Run the input (or output) rails over each line; print {"id", "blocked", "rail", "score"} per line.

    No language model and no network: only the local rails run. A summary goes to stderr: how many
    were blocked, and, where lines carry a label (safe/unsafe, harmful/benign, true/false) or
    --expect gives one, the share blocked per label and per category.
    """
    settings = load_settings()
    from bot.cli.guard_lines import BadLine, Tally, read_lines
    from core.guard.guard import Guard
    from core.guard.settings import GuardConfig
    from core.models import UserKey

    user = UserKey(platform=platform, workspace_id=workspace, user_id="cli")
    tally = Tally()

    async def main(stream: TextIO, sink: TextIO) -> None:
        guard = Guard(GuardConfig(policy_dir=settings.parley_knowledge_dir))
        with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("Checking", total=None)
            for line in read_lines(stream, csv_file=source.lower().endswith(".csv")):
                if expect is not None and line.label is None:
                    line = line.model_copy(update={"label": expect})
                if rails == "input":
                    verdict = await guard.check_input(line.text, attachments=line.attachments, user=user)
                else:
                    verdict = await guard.check_output(line.text, user=user)
                tally.add(line, blocked=verdict.blocked)
                record = {
                    "id": line.id,
                    "blocked": verdict.blocked,
                    "rail": verdict.rail if verdict.blocked else None,
                    "score": round(verdict.score, 4),
                }
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                progress.advance(task)

    stream = sys.stdin if source == "-" else _open(source)
    try:
        if out_file is None:
            run(main(stream, sys.stdout))
        else:
            with out_file.open("w", encoding="utf-8") as sink:
                run(main(stream, sink))
    except BadLine as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    finally:
        if stream is not sys.stdin:
            stream.close()
    for summary in tally.summary():
        err.print(summary, highlight=False)


@app.command("events")
def events_command(
    since: Annotated[str, typer.Option(help="How far back: 30m, 12h, 1d, 7d or an ISO date.")] = "1d",
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only this workspace.")] = None,
    platform: Annotated[str, typer.Option("--platform", "-p", help="Platform of --workspace.")] = "slack",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 1000,
    false_positive: Annotated[
        list[int] | None,
        typer.Option(
            "--false-positive", help="Mark the blocked event with this id as a mistaken refusal (repeatable)."
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export-false-positives",
            help="Append every marked refusal to this JSONL file as a benign row (for "
            "datasets/safety/false_positives.jsonl, which retraining reads into the dev set).",
        ),
    ] = None,
) -> None:
    """List stored safety events (rail activations), newest first; excerpts are masked.

    A refusal shows its rail, its score and, for harmful requests, the kind of harm in its reason.
    """
    settings = load_settings()
    start = parse_since(since)
    from bot.database import open_pool
    from core.guard.events import SafetyEvent, false_positive_excerpts, list_events, mark_false_positive
    from core.models import WorkspaceKey

    scope = WorkspaceKey(platform=platform, workspace_id=workspace) if workspace else None

    async def main() -> tuple[list[SafetyEvent], list[int], list[tuple[int, str, str]]]:
        pool = await open_pool(settings)
        try:
            unknown = [i for i in false_positive or [] if not await mark_false_positive(pool, i, by=operator())]
            marked = await false_positive_excerpts(pool) if export else []
            return await list_events(pool, start, workspace=scope, limit=limit), unknown, marked
        finally:
            await pool.close()

    events, unknown, marked = run(main())
    if unknown:
        err.print(f"[red]No blocked event with id {', '.join(map(str, unknown))}; nothing marked for it.[/red]")
    if false_positive and len(unknown) < len(false_positive):
        err.print(f"Marked {len(false_positive) - len(unknown)} event(s) as false positives.")
    if export is not None:
        written = _export_false_positives(export, marked)
        err.print(f"Wrote {written} new false positive(s) to {export}.")
    if false_positive or export is not None:
        if unknown:
            raise typer.Exit(1)
        return
    if as_json:
        for e in events:
            sys.stdout.write(
                json.dumps(
                    {
                        "id": e.id,
                        "created_at": e.created_at.isoformat() if e.created_at else None,
                        "platform": e.user.platform,
                        "workspace_id": e.user.workspace_id,
                        "user_id": e.user.user_id,
                        "stage": e.stage,
                        "rail": e.rail,
                        "action": e.action,
                        "reason": e.reason,
                        "score": round(e.score, 4),
                        "excerpt": e.excerpt,
                        "false_positive": e.false_positive,
                    }
                )
                + "\n"
            )
        return
    table = wide_table(
        "id", "when", "workspace", "user", "stage", "rail", "action", "score", "reason", "excerpt",
        title=f"Safety events since {start:%Y-%m-%d %H:%M} UTC ({len(events)})",
    )
    for e in events:
        table.add_row(
            f"{e.id}{' (false positive)' if e.false_positive else ''}",
            f"{e.created_at:%Y-%m-%d %H:%M:%S}" if e.created_at else "",
            f"{e.user.platform}:{e.user.workspace_id}",
            e.user.user_id,
            e.stage,
            e.rail,
            e.action,
            f"{e.score:.2f}",
            e.reason,
            e.excerpt,
        )
    out.print(table)


def _export_false_positives(path: Path, marked: list[tuple[int, str, str]]) -> int:
    """Append the marked refusals not yet in `path` as benign dev rows; returns how many were new."""
    seen: set[str] = set()
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            seen = {json.loads(line)["id"] for line in f if line.strip()}
    rows = [
        {"id": f"operator-{event_id}", "text": excerpt, "category": f"false_positive_{rail}", "label": "safe"}
        for event_id, rail, excerpt in marked
        if f"operator-{event_id}" not in seen and excerpt.strip()
    ]
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return len(rows)


def _open(path: str) -> TextIO:
    try:
        return Path(path).open(encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]Cannot read {path}: {exc.strerror}[/red]")
        raise typer.Exit(2) from exc
