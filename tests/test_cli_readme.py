"""The README's `parley ...` examples name commands and flags that exist: every example is read out of
README.md (code blocks and inline code), and each command path and option is looked up in the CLI
itself, so renaming a command or a flag without fixing the README fails here."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import typer
from typer._click import Command, Context
from typer.core import TyperGroup

from bot.cli import app
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
_CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`]+)`", re.DOTALL)
_INVOCATION = re.compile(r"(?:^|(?<=[\s=]))(?P<venv>\.venv/bin/)?parley\s+(?P<rest>[^\n#]*)")


@dataclass(frozen=True, kw_only=True)
class Example:
    """One `parley` invocation as the README writes it."""

    text: str
    in_block: bool
    """From a fenced code block (pasted whole), not from inline code in a sentence."""
    via_venv: bool


def examples(markdown: str) -> list[Example]:
    """Every `parley ...` invocation in the README's code blocks (one per line, `\\` continued) and
    inline code (a span may wrap a line)."""
    found: list[Example] = []
    for match in _CODE.finditer(markdown):
        block, inline = match.group(1), match.group(2)
        lines = block.replace("\\\n", " ").splitlines() if block is not None else [inline.replace("\n", " ")]
        for line in lines:
            for call in _INVOCATION.finditer(line):
                found.append(
                    Example(text=call.group("rest").strip(), in_block=block is not None, via_venv=bool(call["venv"]))
                )
    return found


def problems(example: str) -> list[str]:
    """What in `parley EXAMPLE` the CLI does not know; `a|b` and `[--flag]` are the README's notation
    for alternatives and optional parts."""
    tokens = shlex.split(example.replace("[", " ").replace("]", " "))
    root = typer.main.get_command(app)
    return _walk(root, Context(root, info_name="parley"), tokens, "parley")


def _walk(command: Command, ctx: Context, tokens: list[str], path: str) -> list[str]:
    if isinstance(command, TyperGroup) and tokens and not tokens[0].startswith("-"):
        found: list[str] = []
        for name in tokens[0].split("|"):
            sub = command.get_command(ctx, name)
            if sub is None:
                found.append(f"{path} {name}: no such command")
            else:
                found += _walk(sub, Context(sub, parent=ctx, info_name=name), tokens[1:], f"{path} {name}")
        return found
    options = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
    flags = [t.split("=", 1)[0] for t in tokens if t.startswith("-") and len(t) > 1]
    return [f"{path}: no option {flag}" for flag in flags if flag not in options]


def test_the_readme_has_parley_examples_to_check() -> None:
    commands = {e.text.split()[0] for e in examples(README) if e.text}
    assert {"chat", "serve", "doctor", "usage", "eval", "history", "memory", "apikey", "guard"} <= commands


def test_every_readme_example_names_commands_and_flags_that_exist() -> None:
    found = {e.text: problems(e.text) for e in examples(README)}
    assert {text: p for text, p in found.items() if p} == {}


def test_every_example_in_a_code_block_runs_from_the_virtual_environment_the_install_made() -> None:
    bare = [e.text for e in examples(README) if e.in_block and not e.via_venv]
    assert bare == []


def test_the_checker_finds_an_unknown_command_and_an_unknown_flag() -> None:
    assert problems("memory lsit") == ["parley memory lsit: no such command"]
    assert problems("usage --sinse 7d") == ["parley usage: no option --sinse"]
    assert problems("settings set|unset|show") == []


def test_every_option_of_every_command_says_what_it_does() -> None:
    root = typer.main.get_command(app)
    assert _options_without_help(root, Context(root, info_name="parley"), "parley") == []


def _options_without_help(command: Command, ctx: Context, path: str) -> list[str]:
    if isinstance(command, TyperGroup):
        found: list[str] = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            found += _options_without_help(sub, Context(sub, parent=ctx, info_name=name), f"{path} {name}")
        return found
    return [f"{path} {'/'.join(p.opts)}" for p in command.get_params(ctx)
            if p.param_type_name == "option" and not getattr(p, "help", None) and p.name != "help"]
