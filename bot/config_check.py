"""Configuration checked once, at start, before any model or database work: every problem becomes one
line a person can act on — `VARIABLE=value: what is wrong; the fix` — never a library's traceback.

Cheap by design (no model, no driver import): commands call `load()` first, so a typo costs a second,
not the twenty it takes to load models and reach the database.
"""

from __future__ import annotations

import difflib
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr, ValidationError

from bot.settings import Settings, get_settings

CONNECT_TIMEOUT_S = 1.0
"""How long the database gets to accept a TCP connection at start (a local or nearby server answers in ms)."""


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One invalid or inconsistent setting, said the way an operator fixes it."""

    variable: str
    value: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.variable}={self.value}: {self.what}; {self.fix}"


class ConfigError(Exception):
    """The configuration cannot work; `problems` says why, one line each."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = tuple(problems)


@dataclass(frozen=True, kw_only=True)
class Provider:
    """What a pydantic-ai provider prefix needs: its SDK, and one of its key variables unless a base URL is set."""

    module: str
    keys: tuple[str, ...] = ()
    base_urls: tuple[str, ...] = ()
    needs_base_url: bool = False


_OPENAI = Provider(module="openai", keys=("OPENAI_API_KEY",), base_urls=("OPENAI_BASE_URL",))
PROVIDERS: dict[str, Provider] = {
    "openai": _OPENAI,
    "openai-chat": _OPENAI,
    "openai-responses": _OPENAI,
    "anthropic": Provider(module="anthropic", keys=("ANTHROPIC_API_KEY",)),
    "ollama": Provider(module="openai", base_urls=("OLLAMA_BASE_URL",), needs_base_url=True),
    "google-gla": Provider(module="google.genai", keys=("GOOGLE_API_KEY", "GEMINI_API_KEY")),
    "google": Provider(module="google.genai", keys=("GOOGLE_API_KEY", "GEMINI_API_KEY")),
    "google-vertex": Provider(module="google.genai"),
    "groq": Provider(module="groq", keys=("GROQ_API_KEY",)),
    "mistral": Provider(module="mistralai", keys=("MISTRAL_API_KEY",)),
    "cohere": Provider(module="cohere", keys=("CO_API_KEY",)),
    "bedrock": Provider(module="boto3"),
    "huggingface": Provider(module="huggingface_hub", keys=("HF_TOKEN",)),
    "deepseek": Provider(module="openai", keys=("DEEPSEEK_API_KEY",)),
    "openrouter": Provider(module="openai", keys=("OPENROUTER_API_KEY",)),
    "xai": Provider(module="openai", keys=("XAI_API_KEY",)),
    "fireworks": Provider(module="openai", keys=("FIREWORKS_API_KEY",)),
    "together": Provider(module="openai", keys=("TOGETHER_API_KEY",)),
    "cerebras": Provider(module="openai", keys=("CEREBRAS_API_KEY",)),
    "vllm": Provider(module="openai", base_urls=("VLLM_BASE_URL",)),
    "litellm": Provider(module="openai"),
    "azure": Provider(module="openai", keys=("AZURE_OPENAI_API_KEY",)),
}
"""The providers pydantic-ai knows that a Parley install can use; `tests/test_settings.py` keeps this in step."""

COMMON_PROVIDERS = ("openai", "anthropic", "ollama", "google-gla", "groq", "mistral")
LOCAL_MODELS = ("test", "local", "none")
"""Names that need no provider: pydantic-ai's deterministic test model, the bundled local model, and
`none` (no model at all, not even the local one)."""
SUGGESTED = "openai"
_BARE_HINTS = {"claude": "anthropic", "gemini": "google-gla", "llama": "ollama", "qwen": "ollama", "mistral": "mistral"}


def mask(value: str) -> str:
    """Enough of a secret to recognise which one it is, never enough to use it."""
    return f"{value[:4]}****" if len(value) > 12 else "****"


def shown_url(url: str) -> str:
    """A connection URL with its password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":****@", 1)


def from_validation(exc: ValidationError, secret: frozenset[str] = frozenset()) -> list[Problem]:
    """pydantic's errors, each rewritten as the variable, its value and what to set instead."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        raw = error.get("input")
        value = mask(str(raw)) if field in secret and raw else str(raw)
        literal = error["type"] == "literal_error"
        what = "not an allowed value" if literal else error["msg"].removeprefix("Value error, ")
        problems.append(Problem(variable=field.upper(), value=value, what=what, fix=_fix(error)))
    return problems


def _fix(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "greater_than_equal":
        return f"set it to {ctx['ge']:g} or more, or unset it for the default"
    if kind == "greater_than":
        return f"set it to a number above {ctx['gt']:g}, or unset it for the default"
    if kind in {"less_than_equal", "less_than"}:
        return f"set it to at most {ctx.get('le', ctx.get('lt')):g}, or unset it for the default"
    if kind == "literal_error":
        return f"use one of {ctx['expected']}"
    if kind in {"int_parsing", "int_from_float"}:
        return "use a whole number"
    if kind == "float_parsing":
        return "use a number"
    if kind == "bool_parsing":
        return "use true or false"
    if kind in {"json_invalid", "json_type"}:
        return "use valid JSON"
    return "correct it or unset it for the default"


def model_problems(variable: str, name: str, settings: Settings, env: Mapping[str, str]) -> list[Problem]:
    """A pydantic-ai model name: a known provider prefix, its SDK installed, its key or base URL set."""
    if name in LOCAL_MODELS:
        return []
    provider, sep, model = name.partition(":")
    if provider == "local":
        path = Path(model).expanduser()
        fix = "give the path of a GGUF model file, or use PARLEY_MODEL=local for the bundled one"
        if not path.is_file():
            return [Problem(variable=variable, value=name, what=f"no GGUF file at {model}", fix=fix)]
        if path.suffix != ".gguf":
            return [Problem(variable=variable, value=name, what=f"{model} is not a .gguf file", fix=fix)]
        return []
    if not sep or not model:
        hint = next((p for word, p in _BARE_HINTS.items() if word in name.lower()), SUGGESTED)
        return [Problem(variable=variable, value=name, what="a model name needs its provider in front",
                        fix=f"use {variable}={hint}:{name or 'MODEL'} (any OpenAI-compatible server: "
                            "openai:MODEL with OPENAI_BASE_URL)")]
    spec = PROVIDERS.get(provider)
    if spec is None:
        close = difflib.get_close_matches(provider, PROVIDERS, n=1, cutoff=0.6)
        suggestion = close[0] if close else SUGGESTED
        return [Problem(variable=variable, value=name, what=f"{provider!r} is not a model provider",
                        fix=f"use {variable}={suggestion}:{model} (others: {', '.join(COMMON_PROVIDERS)}, ...)")]
    if not _installed(spec.module):
        return [Problem(variable=variable, value=name, what=f"the {provider} provider's SDK ({spec.module}) "
                        "is not installed", fix=f"pip install 'pydantic-ai-slim[{provider.split('-')[0]}]'")]
    values = {**env, **_settings_env(settings)}
    if any(values.get(url) for url in spec.base_urls):
        return []
    if spec.needs_base_url:
        return [Problem(variable=variable, value=name, what=f"{provider} needs the address of its server",
                        fix=f"set {spec.base_urls[0]} (e.g. http://127.0.0.1:11434/v1)")]
    if spec.keys and not any(values.get(key) for key in spec.keys):
        local = f", or {spec.base_urls[0]} for a local server" if spec.base_urls else ""
        return [Problem(variable=variable, value=name, what=f"{spec.keys[0]} is not set",
                        fix=f"set {spec.keys[0]} to your {provider} API key{local}")]
    return []


def model_server_problems(
    settings: Settings, env: Mapping[str, str], *, timeout_s: float = CONNECT_TIMEOUT_S
) -> list[Problem]:
    """The server PARLEY_MODEL's base URL names accepts a TCP connection: a local Ollama, vLLM or llama.cpp server
    not started yet otherwise showed only at the first turn, as an apology. Not a reason to refuse to start (the
    server may come up later): `parley serve` says it as a warning."""
    spec = PROVIDERS.get((settings.parley_model or "").partition(":")[0])
    values = {**env, **_settings_env(settings)}
    for variable in spec.base_urls if spec else ():
        url = values.get(variable)
        if not url:
            continue
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return []  # not a URL at all: the provider's own error names it at the first turn
        cause = _tcp_connect(parts.hostname or "localhost", port, timeout_s)
        if cause is not None:
            return [Problem(variable=variable, value=shown_url(url),
                            what=f"nothing answers at {parts.hostname or 'localhost'}:{port} ({cause})",
                            fix=f"start the model server or correct {variable}; until then every turn answers that "
                                "the model cannot be reached (`parley doctor` checks it)")]
    return []


def _settings_env(settings: Settings) -> dict[str, str]:
    """The provider variables Settings reads (possibly from `.env`), as the environment would hold them."""
    out = {}
    for field in ("openai_api_key", "openai_base_url", "anthropic_api_key"):
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value:
            out[field.upper()] = value
    return out


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def database_problems(url: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> list[Problem]:
    """DATABASE_URL parses as a Postgres URL and its server accepts a TCP connection."""
    shown = shown_url(url)
    fix = "use postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset it for the embedded database"
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as exc:
        return [Problem(variable="DATABASE_URL", value=shown, what=f"not a valid URL ({exc})", fix=fix)]
    if parts.scheme not in {"postgres", "postgresql"}:
        return [Problem(variable="DATABASE_URL", value=shown, what="not a postgresql:// URL", fix=fix)]
    socket_dir = (parse_qs(parts.query).get("host") or [""])[0]
    if not parts.hostname and socket_dir:
        if Path(socket_dir).is_dir():
            return []
        return [Problem(variable="DATABASE_URL", value=shown, what=f"no socket folder {socket_dir}",
                        fix="start the database, or point host= at its socket folder")]
    host = parts.hostname or "localhost"
    cause = _tcp_connect(host, port, timeout_s)
    if cause is None:
        return []
    return [Problem(variable="DATABASE_URL", value=shown, what=f"cannot reach {host}:{port} ({cause})",
                    fix="start the database or correct the host and port; unset it for the embedded database")]


def _tcp_connect(host: str, port: int, timeout_s: float) -> str | None:
    """None when the port accepts a connection, else why not. Name lookup is bounded too: it has no timeout."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(None)
        except socket.gaierror:
            outcome.append("unknown host")
        except TimeoutError:
            outcome.append(f"no answer in {timeout_s:g} s")
        except OSError as exc:
            outcome.append(exc.strerror or type(exc).__name__)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s * 2)
    return outcome[0] if outcome else f"no answer in {timeout_s:g} s"


def data_dir_problems(path: Path) -> list[Problem]:
    """PARLEY_DATA_DIR is a folder this user can write, created if missing: the embedded database, the logs
    and the local model's log live there. Found later, it was a library's one-line FileNotFoundError or
    PermissionError with no word of which setting to change."""
    fix = "set PARLEY_DATA_DIR to a folder you can write, or unset it for your user data folder"
    if path.exists() and not path.is_dir():
        return [Problem(variable="PARLEY_DATA_DIR", value=str(path), what="a file, not a folder", fix=fix)]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [Problem(variable="PARLEY_DATA_DIR", value=str(path), what=f"cannot create it ({exc.strerror})",
                        fix=fix)]
    if not os.access(path, os.W_OK | os.X_OK):
        return [Problem(variable="PARLEY_DATA_DIR", value=str(path), what="not writable by this user", fix=fix)]
    return []


SLACK_TOKEN_KINDS = {
    "SLACK_BOT_TOKEN": ("xoxb-", "a bot token",
                        "the Bot User OAuth Token from your Slack app's OAuth & Permissions page"),
    "SLACK_APP_TOKEN": ("xapp-", "an app-level token", "an app-level token with connections:write from your Slack "
                                                    "app's Basic Information page"),
}
"""Slack's token kinds by their prefix: another kind (a user token, a signing secret, the other of the two)
pasted into one of these was accepted and failed later as Slack's `invalid_auth` or a Socket Mode retry loop."""


def platform_problems(settings: Settings) -> list[Problem]:
    """Slack credentials come in pairs; one without the other can never connect. (Discord needs one token;
    DISCORD_APPLICATION_ID alone is enough for `parley discord invite-url`.)"""
    problems = []
    bot, signing, app, client = (
        settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token, settings.slack_client_id
    )
    if bot is not None and signing is None and app is None:
        problems.append(Problem(variable="SLACK_BOT_TOKEN", value=mask(bot.get_secret_value()),
                                what="set without SLACK_SIGNING_SECRET (HTTP events) or SLACK_APP_TOKEN (Socket Mode)",
                                fix="set one of them from your Slack app's settings (docs/slack.md)"))
    for name, secret in (("SLACK_SIGNING_SECRET", signing), ("SLACK_APP_TOKEN", app)):
        if secret is not None and bot is None and client is None:
            problems.append(Problem(variable=name, value=mask(secret.get_secret_value()),
                                    what="set without SLACK_BOT_TOKEN",
                                    fix="set SLACK_BOT_TOKEN (xoxb-...) from your Slack app's OAuth page"))
    for name, token in (("SLACK_BOT_TOKEN", bot), ("SLACK_APP_TOKEN", app)):
        prefix, kind, where = SLACK_TOKEN_KINDS[name]
        if token is not None and not token.get_secret_value().startswith(prefix):
            problems.append(Problem(variable=name, value=mask(token.get_secret_value()),
                                    what=f"not {kind} (those start with {prefix})", fix=f"use {where}"))
    if client is not None and settings.slack_client_secret is None:
        problems.append(Problem(variable="SLACK_CLIENT_ID", value=client, what="set without SLACK_CLIENT_SECRET",
                                fix="set SLACK_CLIENT_SECRET from your Slack app's Basic Information page"))
    return problems


def problems(
    settings: Settings, env: Mapping[str, str], *, database: bool = True, model: bool = True
) -> list[Problem]:
    """Everything wrong with valid-looking settings; `database` adds the reachability of DATABASE_URL,
    `model` the model names (off for commands that never call a model)."""
    models = (
        ("PARLEY_MODEL", [settings.parley_model] if settings.parley_model else []),
        ("PARLEY_FALLBACK_MODELS", settings.parley_fallback_models),
        ("PARLEY_JUDGE_MODEL", [settings.parley_judge_model] if settings.parley_judge_model else []),
    ) if model else ()
    found = unknown_variable_problems(settings_environment(env))
    found += [p for variable, names in models for name in names for p in model_problems(variable, name, settings, env)]
    found += platform_problems(settings)
    if database:
        found += data_dir_problems(settings.parley_data_dir)
    if database and settings.database_url is not None:
        found += database_problems(settings.database_url.get_secret_value())
    return found


OTHER_VARIABLES = frozenset({"PARLEY_DATASETS_DIR", "PARLEY_STARTUP_PHASES"})
"""PARLEY_ variables read outside Settings: `parley eval`'s goldens folder, start-up timings (core/telemetry.py)."""


def unknown_variable_problems(env: Mapping[str, str]) -> list[Problem]:
    """PARLEY_ variables Parley does not read: a misspelt one (PARLEY_MODLE) was ignored without a word, and the
    setting it meant kept its default. Values are masked: the name alone says what to fix."""
    known = {name.upper() for name in Settings.model_fields} | OTHER_VARIABLES
    found = []
    for name in sorted(env):
        if not name.upper().startswith("PARLEY_") or name.upper() in known:
            continue
        unprefixed = name.upper().removeprefix("PARLEY_")
        # PARLEY_PORT, PARLEY_DATABASE_URL: a setting Parley reads without the prefix, which the nearest
        # PARLEY_ name (PARLEY_HOST for PARLEY_PORT) would not be
        close = [unprefixed] if unprefixed in known else difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
        rename = f"rename it {close[0]}, or unset it" if close else "unset it"
        found.append(Problem(variable=name, value="****", what="not a Parley setting",
                             fix=f"{rename} (`parley config show` lists every setting)"))
    return found


def settings_environment(env: Mapping[str, str]) -> dict[str, str]:
    """What Settings reads: the `.env` file in the working folder, under the environment (which wins)."""
    from dotenv import dotenv_values

    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    return {**from_file, **env}


def secret_fields() -> frozenset[str]:
    """The settings whose values are masked wherever they are shown."""
    fields = Settings.model_fields.items()
    return frozenset(name for name, field in fields if SecretStr in (field.annotation, *get_args(field.annotation)))


def load(*, database: bool = True, model: bool = True) -> Settings:
    """The settings, or ConfigError naming every problem at once."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise ConfigError(from_validation(exc, secret_fields())) from exc
    found = problems(settings, os.environ, database=database, model=model)
    if found:
        raise ConfigError(found)
    return settings


def debug_requested() -> bool:
    """PARLEY_DEBUG=1 (read directly: it must work even when the rest of the configuration does not)."""
    return os.environ.get("PARLEY_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
