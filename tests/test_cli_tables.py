"""The CLI's tables wrap and fold instead of cutting values short: at 60 columns an id, a model name or
a long message appears whole, in pieces on consecutive lines of its column."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console

from bot.cli.common import wide_table
from tests.conftest import ROOT

LONG_MODEL = "openai:gpt-4.1-mini-2025-04-14-finetuned-" + "x" * 30


def column_text(rendered: str, index: int) -> str:
    """Everything in column `index` of a rendered table, its lines joined (a folded value is whole again)."""
    cells = (line.split("│") for line in rendered.splitlines() if line.count("│") > index + 1)
    return "".join(cell[index + 1].strip() for cell in cells)


def test_a_wide_table_folds_a_long_value_at_60_columns_instead_of_cutting_it() -> None:
    table = wide_table("platform", "workspace", "user", "model", "calls", "input", "output", "cost_usd")
    table.add_row("slack", "T" * 24, "U" * 18, LONG_MODEL, "1", "1200", "300", "0.000123")
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(table)
    rendered = console.export_text()
    assert "…" not in rendered
    assert max(len(line) for line in rendered.splitlines()) <= 60
    assert LONG_MODEL in column_text(rendered, 3)
    assert "T" * 24 in column_text(rendered, 1)


async def test_parley_usage_at_60_columns_shows_a_long_model_name_whole(
    pool: asyncpg.Pool, pg_uri: str, tmp_path: Path
) -> None:
    workspace = f"T{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO usage (platform, workspace_id, user_id, model, input_tokens, output_tokens, cost_usd)"
        " VALUES ('slack', $1, 'U1', $2, 10, 5, 0.0001)",
        workspace,
        LONG_MODEL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DATABASE_URL"))}
    env.update(DATABASE_URL=pg_uri, PARLEY_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT), COLUMNS="60")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "usage", "--since", "1d"], capture_output=True, text=True, env=env, timeout=90
    )
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 60
    assert LONG_MODEL in column_text(result.stdout, 3)
    assert workspace in column_text(result.stdout, 1)
