"""Settings from the environment and `.env`, with secrets masked when shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.settings import Settings


def test_fallback_models_are_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_FALLBACK_MODELS", "openai:a, anthropic:b ,")
    assert Settings(_env_file=None).parley_fallback_models == ["openai:a", "anthropic:b"]  # type: ignore[call-arg]


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("PARLEY_MODEL=ollama:llama3.2\nOPENAI_BASE_URL=http://127.0.0.1:11434/v1\n")
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.parley_model == "ollama:llama3.2"
    assert settings.openai_base_url == "http://127.0.0.1:11434/v1"


def test_p8_shown_settings_mask_every_secret() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        openai_api_key=SecretStr("sk-live-abcdef1234567890"),
        slack_bot_token=SecretStr("xoxb-1-2-secret"),
        database_url=SecretStr("postgresql://u:pw@db/x"),
        parley_mcp_servers=[{"name": "gh", "url": "http://x", "headers": {"Authorization": "Bearer t0ken"}}],
    )
    shown = settings.masked()
    text = str(shown)
    for secret in ("sk-live-abcdef1234567890", "xoxb-1-2-secret", "pw@db", "t0ken"):
        assert secret not in text
    assert shown["OPENAI_API_KEY"] == "****"


def test_an_out_of_range_temperature_fails_fast() -> None:
    with pytest.raises(ValidationError, match="PARLEY_TEMPERATURE"):
        Settings(_env_file=None, parley_temperature=5)  # type: ignore[call-arg]
