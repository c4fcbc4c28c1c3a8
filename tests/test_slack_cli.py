"""`parley slack`: the config it builds from the environment, and the manifest it prints."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import SecretStr
from typer.testing import CliRunner

from adapters.slack.app import BOT_SCOPES, SlackConfig
from adapters.slack.commands import Help, parse_command
from bot.cli.slack import app, slack_config
from bot.settings import Settings


def test_slack_config_comes_from_the_settings_and_hides_its_secrets() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token=SecretStr("xoxb-secret-token"),
        slack_signing_secret=SecretStr("signing-secret"),
        slack_app_token=SecretStr("xapp-secret"),
        slack_api_url="http://127.0.0.1:9/api/",
        parley_thread_followups=False,
        parley_max_file_mb=2.5,
    )
    config = slack_config(settings)
    assert config == SlackConfig(
        bot_token="xoxb-secret-token",
        signing_secret="signing-secret",
        app_token="xapp-secret",
        api_url="http://127.0.0.1:9/api/",
        thread_followups=False,
        max_file_bytes=2_500_000,
    )
    assert not config.oauth
    assert "secret" not in repr(config)


def test_the_manifest_asks_for_what_the_adapter_uses() -> None:
    result = CliRunner().invoke(app, ["manifest"])
    assert result.exit_code == 0
    manifest: dict[str, Any] = yaml.safe_load(result.stdout)
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "message.channels", "reaction_added", "reaction_removed",
            "app_context_changed", "app_home_opened"} <= events
    assert manifest["features"]["slash_commands"][0]["command"] == "/parley"
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "agent_view" in manifest["features"] and "assistant_view" not in manifest["features"]


def test_the_slash_commands_usage_hint_offers_every_subcommand_parley_answers() -> None:
    manifest: dict[str, Any] = yaml.safe_load(CliRunner().invoke(app, ["manifest"]).stdout)
    offered = [option.split()[0] for option in manifest["features"]["slash_commands"][0]["usage_hint"].split(" | ")]
    assert offered == ["help", "profile", "memory", "settings", "forget"]
    assert all(not isinstance(parse_command(word), Help) for word in offered if word != "help")
