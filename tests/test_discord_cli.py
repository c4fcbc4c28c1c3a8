"""`parley discord` and `parley discord invite-url`, invoked through Typer."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.discord import app
from bot.settings import get_settings
from tests.fakes.discord_gateway import FakeDiscord
from tests.test_cli import CONFIG_PREFIXES

ROOT = Path(__file__).resolve().parents[1]

runner = CliRunner()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("DISCORD_TOKEN", "DISCORD_APPLICATION_ID", "DISCORD_API_BASE", "PARLEY_DISCORD_AUTO_THREAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_MODEL", "openai:gpt-4.1-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_invite_url_prints_the_oauth2_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "123456789012345678")
    result = runner.invoke(app, ["invite-url"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "https://discord.com/oauth2/authorize?client_id=123456789012345678"
        "&scope=bot+applications.commands&permissions=70643622185984"
    )


def test_invite_prints_the_server_and_the_user_install_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "123456789012345678")
    result = runner.invoke(app, ["invite"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[1] == (
        "https://discord.com/oauth2/authorize?client_id=123456789012345678"
        "&scope=bot+applications.commands&permissions=70643622185984"
    )
    assert lines[3] == (
        "https://discord.com/oauth2/authorize?client_id=123456789012345678"
        "&integration_type=1&scope=applications.commands"
    )
    assert "server" in lines[0] and "your own account" in lines[2]


def test_invite_url_with_auto_threads_may_create_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "123456789012345678")
    monkeypatch.setenv("PARLEY_DISCORD_AUTO_THREAD", "true")
    result = runner.invoke(app, ["invite-url"])
    assert result.stdout.strip().endswith("&permissions=70677981924352")


def test_invite_url_without_an_application_id_or_token_says_what_to_set() -> None:
    result = runner.invoke(app, ["invite-url"])
    assert result.exit_code == 2
    assert "DISCORD_APPLICATION_ID" in result.output


def test_running_without_a_token_fails_with_the_fix() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "DISCORD_TOKEN is not set" in result.output


def test_shard_ids_outside_the_shard_count_are_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
    result = runner.invoke(app, ["--shard-ids", "2-3", "--shard-count", "2"])
    assert result.exit_code == 2
    assert "shard ids must be between 0 and 1" in result.output


async def parley_discord(fake: FakeDiscord, pg_uri: str, tmp_path: Path, **settings: str) -> tuple[int, str]:
    """`parley discord` run as a newcomer runs it against the started fake: its exit code and what it showed."""
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
        env.update(PYTHONPATH=str(ROOT), PARLEY_DATA_DIR=str(tmp_path), DATABASE_URL=pg_uri, PARLEY_MODEL="test",
                   DISCORD_API_BASE=fake.api_base, COLUMNS="200", **settings)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "discord", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await fake.stop()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_token_discord_refuses_is_named_with_where_to_get_a_new_one(pg_uri: str, tmp_path: Path) -> None:
    code, shown = await parley_discord(await FakeDiscord().start(), pg_uri, tmp_path,
                                       DISCORD_TOKEN="a-token-that-was-reset")
    assert code == 2, shown
    assert "DISCORD_TOKEN=****: Discord refused it" in shown and "Reset Token" in shown
    assert "a-token-that-was-reset" not in shown and "Traceback" not in shown


async def test_a_bot_without_message_content_intent_is_named_with_where_to_turn_it_on(
    pg_uri: str, tmp_path: Path
) -> None:
    fake = await FakeDiscord(message_content_intent=False).start()
    code, shown = await parley_discord(fake, pg_uri, tmp_path, DISCORD_TOKEN=fake.token,
                                       DISCORD_GATEWAY_URL=fake.gateway_url)
    assert code == 2, shown
    assert "DISCORD_TOKEN=****: the bot may not read message content" in shown and "Message Content Intent" in shown
    assert "Traceback" not in shown
