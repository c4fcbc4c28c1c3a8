"""Misconfiguration as a newcomer meets it: the real `parley` command exits 2 at once with one short
paragraph naming the variable, its value (secrets masked) and the fix — never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.common import run_cli
from tests.test_cli import CONFIG_PREFIXES

PARLEY = [sys.executable, "-m", "bot"]
LOOSE_SECONDS = 20
"""Wall time allowed, loosely: the check itself takes well under a second, but this machine's cores are
shared and the interpreter's start is counted too. Model loading or a database start would take longer."""


@pytest.fixture(scope="module")
def data() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parley(data: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    clean.update({"PARLEY_DATA_DIR": str(data), "COLUMNS": "200", "PARLEY_FACT_EXTRACTION": "off", **env})
    started = time.monotonic()
    result = subprocess.run([*PARLEY, *(args or ("chat", "-m", "hi"))], capture_output=True, text=True,
                            env=clean, cwd=data, timeout=60)
    return result, time.monotonic() - started


MODEL = {"PARLEY_MODEL": "openai:gpt-4.1-mini", "OPENAI_API_KEY": "sk-test-key-123456789"}
CASES = {
    "model_without_provider": ({**MODEL, "PARLEY_MODEL": "gpt-4.1-mini"}, "PARLEY_MODEL=gpt-4.1-mini",
                               "openai:gpt-4.1-mini"),
    "unknown_provider": ({**MODEL, "PARLEY_MODEL": "bogus:model"}, "PARLEY_MODEL=bogus:model", "openai:model"),
    "provider_key_missing": ({"PARLEY_MODEL": "openai:gpt-4.1-mini"}, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic_key_missing": ({"PARLEY_MODEL": "anthropic:claude-sonnet-4-5"}, "ANTHROPIC_API_KEY", "set"),
    "malformed_database_url": ({**MODEL, "DATABASE_URL": "notaurl"}, "DATABASE_URL=notaurl", "postgresql://"),
    "database_at_a_closed_port": ({**MODEL, "DATABASE_URL": "postgresql://u:hunter22@127.0.0.1:{port}/x"},
                                  "DATABASE_URL=postgresql://u:****@127.0.0.1", "start the database"),
    "database_at_an_unknown_host": ({**MODEL, "DATABASE_URL": "postgresql://u:p@no-such-host.invalid/x"},
                                    "unknown host", "correct the host"),
    "misspelt_setting": ({**MODEL, "PARLEY_MODLE": "openai:gpt-4.1-mini"}, "PARLEY_MODLE=****",
                         "rename it PARLEY_MODEL"),
    "negative_limit": ({**MODEL, "PARLEY_MAX_FILE_MB": "-5"}, "PARLEY_MAX_FILE_MB=-5", "above 0"),
    "unknown_log_level": ({**MODEL, "PARLEY_LOG_LEVEL": "LOUD"}, "PARLEY_LOG_LEVEL=LOUD", "'DEBUG'"),
    "slack_token_without_its_pair": ({**MODEL, "SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdefgh"},
                                     "SLACK_BOT_TOKEN=xoxb****", "SLACK_SIGNING_SECRET"),
    "slack_secret_without_a_token": ({**MODEL, "SLACK_SIGNING_SECRET": "0123456789abcdef0123"},
                                     "SLACK_SIGNING_SECRET=0123****", "SLACK_BOT_TOKEN"),
    "slack_app_token_as_bot_token": ({**MODEL, "SLACK_BOT_TOKEN": "xapp-1-A0-abcdefgh",
                                      "SLACK_SIGNING_SECRET": "0123456789abcdef0123"},
                                     "SLACK_BOT_TOKEN=xapp****", "OAuth & Permissions"),
    "slack_bot_token_as_app_token": ({**MODEL, "SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdefgh",
                                      "SLACK_APP_TOKEN": "xoxb-9999-abcdefgh"},
                                     "SLACK_APP_TOKEN=xoxb****",
                                     "not an app-level token (those start with xapp-); use an app-level token with "
                                     "connections:write"),
    "data_dir_that_is_not_a_folder": ({**MODEL, "PARLEY_DATA_DIR": "/dev/null"}, "PARLEY_DATA_DIR=/dev/null",
                                      "a folder you can write"),
    "data_dir_that_cannot_be_made": ({**MODEL, "PARLEY_DATA_DIR": "/proc/parley-data"},
                                     "PARLEY_DATA_DIR=/proc/parley-data", "a folder you can write"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_misconfiguration_exits_2_with_one_paragraph_and_no_traceback(data: Path, case: str) -> None:
    env, names, fix = CASES[case]
    env = {k: v.format(port=closed_port()) for k, v in env.items()}
    result, elapsed = parley(data, env)
    assert result.returncode == 2, result.stderr
    assert names in result.stderr and fix in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 2
    for secret in ("sk-test-key-123456789", "hunter22", "abcdefgh", "0123456789abcdef0123"):
        assert secret not in result.stderr
    assert elapsed < LOOSE_SECONDS


def test_serve_on_a_port_in_use_says_so_before_loading_anything(data: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result, elapsed = parley(data, MODEL, "serve", "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert f"PORT={port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert elapsed < LOOSE_SECONDS


def test_serve_on_an_address_of_another_machine_names_the_host_setting(data: Path) -> None:
    result, _ = parley(data, MODEL, "serve", "--host", "192.0.2.1")
    assert result.returncode == 2, result.stderr
    assert "PARLEY_HOST=192.0.2.1" in result.stderr and "0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_problem_is_named_at_once(data: Path) -> None:
    result, _ = parley(data, {"PARLEY_MODEL": "bogus:x", "PARLEY_LOG_LEVEL": "LOUD", "PARLEY_HISTORY_TURNS": "-1"})
    assert result.returncode == 2
    for name in ("PARLEY_LOG_LEVEL=LOUD", "PARLEY_HISTORY_TURNS=-1"):
        assert name in result.stderr


def crash() -> None:
    raise RuntimeError("the disk is on fire")


def test_an_unexpected_error_is_one_line_that_says_how_to_see_more(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["parley", "chat"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(crash)
    shown = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "RuntimeError: the disk is on fire" in shown and "--debug" in shown and "Traceback" not in shown


def test_debug_anywhere_on_the_command_line_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_DEBUG", "0")
    monkeypatch.setattr(sys, "argv", ["parley", "chat", "--debug"])
    with pytest.raises(RuntimeError, match="on fire"):
        run_cli(crash)
    assert sys.argv == ["parley", "chat"]
