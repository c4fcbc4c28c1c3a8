"""The operator's commands (`parley settings|limits|apikey|audit`) against the test Postgres: every change
they make is in `parley audit list`, with who, old and new value and the door."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import pytest
from typer.testing import CliRunner

from bot import observability
from bot.cli import app
from bot.settings import get_settings
from tests.test_guard_cli import _store as store_refusal

Run = Callable[..., str]


@pytest.fixture
def cli(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", pg_uri)
    monkeypatch.setenv("LOGNAME", "ada")
    monkeypatch.setattr(observability, "_configured", True)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture
def run_parley(cli: CliRunner) -> Run:
    def run(*args: str) -> str:
        done = cli.invoke(app, list(args))
        assert done.exit_code == 0, done.output
        return done.stdout

    return run


def test_every_settings_change_from_the_command_line_is_in_the_audit_log(run_parley: Run) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    where = ("--workspace", ws, "--platform", "slack")
    run_parley("settings", "set", "system_prompt", "You help the support team.", *where)
    run_parley("settings", "set", "system_prompt", "You are the #support desk.", *where, "--channel", "C1")
    run_parley("settings", "unset", "system_prompt", *where, "--channel", "C1")
    entries = json.loads(run_parley("audit", "list", "--workspace", ws, "--json"))
    assert [(e["action"], e["target"], e["old_value"], e["new_value"]) for e in reversed(entries)] == [
        ("setting.set", "system_prompt", None, "You help the support team."),
        ("setting.set", "#C1 system_prompt", None, "You are the #support desk."),
        ("setting.unset", "#C1 system_prompt", "You are the #support desk.", None),
    ]
    assert {(e["actor"], e["door"]) for e in entries} == {("ada", "cli")}


def test_settings_show_names_where_each_effective_value_comes_from(run_parley: Run) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    where = ("--workspace", ws, "--platform", "slack")
    run_parley("settings", "set", "system_prompt", "Workspace prompt.", *where)
    run_parley("settings", "set", "memory", "false", *where, "--channel", "C1")
    shown = json.loads(run_parley("settings", "show", *where, "--channel", "C1", "--json"))
    assert shown["memory"] == {"value": False, "source": "channel"}
    assert shown["system_prompt"] == {"value": "Workspace prompt.", "source": "workspace"}
    assert shown["tools"] == {"value": None, "source": "default"}
    table = run_parley("settings", "show", *where, "--channel", "C2")
    assert "registered" in table and "workspace" in table  # the builtin "every registered tool", wrapped at 80


def test_a_bad_setting_is_refused_with_what_is_allowed(cli: CliRunner) -> None:
    done = cli.invoke(app, ["settings", "set", "temperature", "hot"])
    assert done.exit_code == 2 and "temperature" in done.stderr and "0 to 2" in done.stderr


def test_marking_a_false_positive_from_the_command_line_is_in_the_audit_log(run_parley: Run, pg_uri: str) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    event_id = store_refusal(pg_uri, "kill the stuck job", ws)
    run_parley("guard", "events", "--false-positive", str(event_id))
    entries = json.loads(run_parley("audit", "list", "--workspace", ws, "--json"))
    assert [(e["action"], e["target"], e["actor"], e["door"], e["new_value"]) for e in entries] == [
        ("refusal.false_positive", f"refusal {event_id} (harm)", "ada", "cli", True)]


def test_a_model_name_without_a_provider_is_refused_with_examples(cli: CliRunner) -> None:
    done = cli.invoke(app, ["settings", "set", "model", "gpt-4.1-mini", "--channel", "C1"])
    assert done.exit_code == 2 and "openai:gpt-4.1-mini" in done.stderr


def test_a_model_this_process_cannot_reach_is_refused_naming_what_to_set(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    done = cli.invoke(app, ["settings", "set", "model", "anthropic:claude-sonnet-4-5", "--channel", "C1"])
    assert done.exit_code == 2 and "ANTHROPIC_API_KEY" in done.stderr


def test_limits_and_admin_keys_from_the_command_line_are_audited(run_parley: Run) -> None:
    ws = f"T{uuid.uuid4().hex[:8]}"
    where = ("--workspace", ws, "--platform", "slack")
    run_parley("limits", "set", "tokens", "day", "5000", *where, "--user", "U1")
    shown = json.loads(run_parley("limits", "show", "--workspace", ws, "--json"))
    assert [(s["scope"], s["subject"], s["metric"], s["period"], s["amount"]) for s in shown] == [
        ("person", "U1", "tokens", "day", 5000.0)]
    created = run_parley("apikey", "create", "--workspace", ws, "--admin", "--name", "ops")
    assert created.startswith("Created admin API key")
    entries = json.loads(run_parley("audit", "list", "--workspace", ws, "--json"))
    assert [(e["action"], e["target"]) for e in entries] == [
        ("apikey.create", created.split()[4]), ("limit.set", "person U1 tokens/day")]
    assert entries[0]["new_value"] == {"name": "ops", "admin": True}


async def test_a_forget_request_is_audited_with_what_was_deleted(pool: asyncpg.Pool) -> None:
    from core.audit import list_entries
    from core.memory.forget import forget_user
    from core.models import UserKey

    person = UserKey(platform="discord", workspace_id=f"G{uuid.uuid4().hex[:8]}", user_id="U7")
    await forget_user(pool, person)
    [entry] = await list_entries(pool, workspace_id=person.workspace_id)
    assert (entry.action, entry.actor, entry.door, entry.target) == ("memory.forget", "U7", "discord", "U7")
    assert entry.new_value["deleted"]["memories"] == 0
