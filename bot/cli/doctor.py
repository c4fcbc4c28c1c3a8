"""`parley doctor`: is every component working? A ✓/✗ table with the fix for each ✗; `--json` for scripts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from bot.cli.common import err, load_settings, run, wide_table

out = Console()


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Check the model, database, migrations, embeddings, OCR, speech, Slack and Discord with a real call each."""
    settings = load_settings(database=False, model=False, log_to_file=True)
    from bot.doctor import run_checks

    with err.status("checking…") as status:
        checks = run(run_checks(settings, on_start=lambda name: status.update(f"checking {name}…")))
    if as_json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}))
    else:
        table = wide_table("", "component", "result", "fix")
        for c in checks:
            table.add_row("[green]✓[/green]" if c.ok else "[red]✗[/red]", c.name, c.detail, c.fix)
        out.print(table)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)
