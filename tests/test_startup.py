"""Start-up: every `parley` command imports only what it uses (issue 22).

Each test runs the real command in a fresh interpreter and reads the modules it had imported when it
exited, so an eager import anywhere on the command's path fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import COMMANDS, app
from core.embeddings import bundled_model_path
from core.encoder import ensure_graph, graph_cache_dir
from core.telemetry import PHASES_ENV, QUIET_ENV, startup_phase
from tests.fakes.openai_server import FakeOpenAI

NO_MODELS = {"torch", "sentence_transformers", "transformers", "nemoguardrails", "slack_bolt", "slack_sdk",
             "discord", "llama_cpp", "onnxruntime", "deepeval"}
"""Libraries that a command which neither chats nor serves has no use for."""
NO_TORCH = {"torch", "sentence_transformers", "transformers", "sklearn", "slack_bolt", "discord", "llama_cpp"}
"""What a terminal chat never needs once the encoder's ONNX graph exists."""
RECORD = (
    "import atexit, json, sys\n"
    "path = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(path, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from bot.cli import main\n"
    "sys.argv[0] = 'parley'\n"
    "main()\n"
)


def parley(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Run `parley ARGS` in a new interpreter: the top-level packages it imported, and its output."""
    modules = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", RECORD, str(modules), *args],
        env={**os.environ, **QUIET_ENV, "PARLEY_DATA_DIR": str(tmp_path / "data"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {name.split(".")[0] for name in json.loads(modules.read_text())}, done.stdout


@pytest.mark.parametrize("args", [["--help"], ["config", "show"]])
def test_commands_that_read_settings_import_no_models(tmp_path: Path, args: list[str]) -> None:
    imported, _ = parley(tmp_path, *args)
    assert imported & NO_MODELS == set()


@pytest.mark.parametrize("args", [["usage"], ["feedback", "list", "--json"]])
def test_commands_that_read_the_database_import_no_models(tmp_path: Path, pg_uri: str, args: list[str]) -> None:
    imported, _ = parley(tmp_path, *args, env={"DATABASE_URL": pg_uri})
    assert imported & NO_MODELS == set()


def test_a_one_shot_chat_runs_the_encoder_without_torch(tmp_path: Path, pg_uri: str, fake_openai: FakeOpenAI) -> None:
    ensure_graph(bundled_model_path(), graph_cache_dir())
    env = {
        "DATABASE_URL": pg_uri,
        "PARLEY_MODEL": "openai:gpt-4.1-mini",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "sk-test",
    }
    imported, out = parley(tmp_path, "chat", "-m", "remember that I like tea", "--json", env=env)
    assert json.loads(out)["reply"] == "You said: remember that I like tea"
    assert imported & NO_TORCH == set()


def test_the_help_lists_every_command_by_its_own_help_line() -> None:
    for name, lazy in COMMANDS.items():
        loaded = lazy.load(name)
        assert (loaded.help or "").splitlines()[0] == lazy.help, name


@pytest.mark.parametrize("name", ["serve", "history", "chat", "doctor"])
def test_a_command_without_sub_commands_offers_none_in_its_usage(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], prog_name="parley", terminal_width=120)
    assert f"Usage: parley {name} [OPTIONS]" in result.output and "COMMAND" not in result.output


def test_the_help_says_how_to_see_a_traceback() -> None:
    assert "--debug" in CliRunner().invoke(app, ["--help"], terminal_width=120).output


def test_a_mistyped_command_is_answered_with_the_nearest_name() -> None:
    result = CliRunner().invoke(app, ["confg"])
    assert result.exit_code == 2
    assert "Did you mean 'config'?" in result.output


def test_a_phase_reports_its_own_time_without_its_inner_phases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phases = tmp_path / "phases.jsonl"
    monkeypatch.setenv(PHASES_ENV, str(phases))
    with startup_phase("outer"):
        time.sleep(0.02)
        with startup_phase("inner"):
            time.sleep(0.2)
    inner, outer = (json.loads(line) for line in phases.read_text().splitlines())
    assert (inner["phase"], outer["phase"]) == ("inner", "outer")
    assert inner["wall_ms"] >= 200 > outer["wall_ms"] >= 20
    assert outer["start"] <= inner["start"]
