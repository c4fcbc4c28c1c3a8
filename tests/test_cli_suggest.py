"""Typo suggestions: a mistyped command, sub-command or option is answered with the names a slip of the
keyboard away, or with none when nothing is near; exit status 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.suggest import closest, with_suggestion

COMMANDS = ["chat", "config", "db", "doctor", "eval", "history", "memory", "usage"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("chta", ["chat"]),  # two letters swapped: one edit
        ("confg", ["config"]),  # one letter missing
        ("hitsory", ["history"]),
        ("mem", ["memory"]),  # the start of one name
        ("do", ["doctor"]),
        ("xyz", []),
        ("serve", []),  # nothing near
    ],
)
def test_closest_finds_names_a_slip_away_and_nothing_else(typed: str, expected: list[str]) -> None:
    assert closest(typed, COMMANDS) == expected


def test_closest_compares_options_without_their_dashes() -> None:
    options = ["--user", "--workspace", "--platform", "--json", "-u", "-w"]
    assert closest("--usr", options) == ["--user"]
    assert closest("--wrkspace", options) == ["--workspace"]
    assert closest("--bogus", options) == []


def test_the_nearest_names_come_first() -> None:
    assert closest("lost", ["list", "last", "lsit", "post"]) == ["last", "list", "post"]


def test_a_sentence_without_near_names_is_left_as_it_is() -> None:
    assert with_suggestion("No such command 'zz'.", "zz", COMMANDS) == "No such command 'zz'."
    assert with_suggestion("No such command 'chta'.", "chta", COMMANDS) == (
        "No such command 'chta'. Did you mean 'chat'?"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chta"], "No such command 'chta'. Did you mean 'chat'?"),
        (["memory", "exprot"], "No such command 'exprot'. Did you mean 'export'?"),
        (["history", "--wrkspace", "T1"], "No such option: --wrkspace. Did you mean '--workspace'?"),
        (["chat", "--usr", "ann"], "No such option: --usr. Did you mean '--user'?"),
        (["chat", "--bogus"], "No such option: --bogus."),
        (["--bogus"], "No such option: --bogus."),
    ],
)
def test_a_typo_on_the_command_line_exits_2_with_a_suggestion_that_makes_sense(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.output
    assert "Possible options" not in result.output and "Traceback" not in result.output
