"""Settings from the environment and `.env`, with secrets masked when shown."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.config_check import (
    PROVIDERS,
    database_problems,
    from_validation,
    model_problems,
    model_server_problems,
    problems,
    shown_url,
    unknown_variable_problems,
)
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


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_validation_error_becomes_variable_value_and_fix() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(parley_memory_k=-1)
    [problem] = from_validation(caught.value)
    assert str(problem) == "PARLEY_MEMORY_K=-1: Input should be greater than or equal to 0; set it to 0 or more, " \
        "or unset it for the default"


def test_a_secret_in_a_validation_error_is_masked() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(parley_max_file_mb="sk-live-abcdef1234567890")
    [problem] = from_validation(caught.value, frozenset({"parley_max_file_mb"}))
    assert "abcdef1234567890" not in str(problem) and problem.value == "sk-l****"


def test_the_log_level_is_read_in_any_case() -> None:
    assert settings(parley_log_level="debug").parley_log_level == "DEBUG"


@pytest.mark.parametrize("name", ["test", "local", "openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-5"])
def test_names_that_need_nothing_more_pass(name: str) -> None:
    configured = settings(openai_api_key=SecretStr("sk-x"), anthropic_api_key=SecretStr("sk-ant-x"))
    assert model_problems("PARLEY_MODEL", name, configured, {}) == []


def test_a_local_server_needs_no_key() -> None:
    configured = settings(openai_base_url="http://127.0.0.1:11434/v1")
    assert model_problems("PARLEY_MODEL", "openai:llama3.2", configured, {}) == []


def test_ollama_needs_its_base_url() -> None:
    [problem] = model_problems("PARLEY_MODEL", "ollama:llama3.2", settings(), {})
    assert "OLLAMA_BASE_URL" in problem.fix
    assert model_problems("PARLEY_MODEL", "ollama:llama3.2", settings(), {"OLLAMA_BASE_URL": "http://x/v1"}) == []


def test_a_local_gguf_path_must_exist(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    assert model_problems("PARLEY_MODEL", f"local:{model}", settings(), {})
    model.write_bytes(b"GGUF")
    assert model_problems("PARLEY_MODEL", f"local:{model}", settings(), {}) == []


def test_a_misspelt_provider_suggests_the_closest() -> None:
    [problem] = model_problems("PARLEY_MODEL", "antropic:claude", settings(), {})
    assert "anthropic:claude" in problem.fix


def test_every_provider_checked_is_one_pydantic_ai_knows() -> None:
    from pydantic_ai.providers import infer_provider_class

    for name in PROVIDERS:
        if name in {"google-gla", "google-vertex"}:
            continue  # pydantic-ai's older spellings, still accepted by infer_model
        with contextlib.suppress(ImportError):  # known, its SDK simply not installed here
            infer_provider_class(name)  # raises ValueError for a name it does not know


def test_fallback_and_judge_models_are_checked_too() -> None:
    found = problems(settings(parley_fallback_models=["nope:x"], parley_judge_model="gpt-4o"), {})
    assert {p.variable for p in found} == {"PARLEY_FALLBACK_MODELS", "PARLEY_JUDGE_MODEL"}


def test_a_url_password_is_masked() -> None:
    assert shown_url("postgresql://u:hunter2@db:5432/x") == "postgresql://u:****@db:5432/x"


def test_a_database_that_accepts_connections_passes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert database_problems(f"postgresql://u:p@127.0.0.1:{port}/x") == []


def test_a_socket_folder_url_passes_when_the_folder_exists(tmp_path: Path) -> None:
    assert database_problems(f"postgresql://postgres:@/postgres?host={tmp_path}") == []


def test_a_misspelt_parley_variable_is_named_with_the_setting_it_meant() -> None:
    [problem] = unknown_variable_problems({"PARLEY_MODLE": "openai:gpt-4.1-mini", "HOME": "/root"})
    assert str(problem) == ("PARLEY_MODLE=****: not a Parley setting; rename it PARLEY_MODEL, or unset it "
                            "(`parley config show` lists every setting)")


@pytest.mark.parametrize(("variable", "meant"), [("PARLEY_PORT", "PORT"), ("PARLEY_DATABASE_URL", "DATABASE_URL"),
                                                ("PARLEY_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN")])
def test_a_setting_read_without_the_parley_prefix_is_named_as_it_is_read(variable: str, meant: str) -> None:
    [problem] = unknown_variable_problems({variable: "8080"})
    assert problem.fix.startswith(f"rename it {meant}, or unset it")


def test_variables_parley_reads_outside_its_settings_and_lower_case_names_are_known() -> None:
    env = {"PARLEY_DATASETS_DIR": "/d", "PARLEY_STARTUP_PHASES": "/p", "parley_model": "test", "PARLEY_PORT_X": "1"}
    assert [p.variable for p in unknown_variable_problems(env)] == ["PARLEY_PORT_X"]


def test_a_misspelt_variable_in_the_dotenv_file_is_named_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PARLEY_MEMROY_K=3\n")
    monkeypatch.chdir(tmp_path)
    found = problems(settings(), {}, database=False)
    assert [(p.variable, p.fix.split(",")[0]) for p in found] == [("PARLEY_MEMROY_K", "rename it PARLEY_MEMORY_K")]


def test_a_model_server_that_accepts_connections_is_not_reported() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        url = f"http://127.0.0.1:{listening.getsockname()[1]}/v1"
        assert model_server_problems(settings(parley_model="openai:llama3.2", openai_base_url=url), {}) == []


def test_a_hosted_model_without_a_base_url_is_not_probed() -> None:
    assert model_server_problems(settings(parley_model="anthropic:claude-sonnet-4-5"), {}) == []
