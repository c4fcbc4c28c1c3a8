"""What an operator can set per workspace and per channel, and which value wins: the nearest layer
(channel, then workspace, then the environment). Pure: the layers come in as mappings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, ValidationError


def _usable_model(name: str) -> str:
    from core.llm import model_name_problem  # pydantic-ai's provider list, loaded only when a model is set

    problem = model_name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


Source = Literal["channel", "workspace", "environment", "default"]
LAYERS: tuple[Source, ...] = ("channel", "workspace", "environment")

_SETTINGS: dict[str, tuple[TypeAdapter[Any], str]] = {
    "system_prompt": (
        TypeAdapter(Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]),
        "the system prompt / persona (may use $channel, $user_name, $now ...)",
    ),
    "model": (
        TypeAdapter(Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                              AfterValidator(_usable_model)]),
        "PROVIDER:NAME, as PARLEY_MODEL",
    ),
    "temperature": (TypeAdapter(Annotated[float, Field(ge=0, le=2)]), "sampling temperature, 0 to 2"),
    "max_tokens": (TypeAdapter(Annotated[int, Field(gt=0, le=1_000_000)]), "longest reply, in tokens"),
    "top_p": (TypeAdapter(Annotated[float, Field(ge=0, le=1)]), "nucleus sampling, 0 to 1"),
    "presence_penalty": (TypeAdapter(Annotated[float, Field(ge=-2, le=2)]), "-2 to 2"),
    "frequency_penalty": (TypeAdapter(Annotated[float, Field(ge=-2, le=2)]), "-2 to 2"),
    "tools": (TypeAdapter(list[Annotated[str, StringConstraints(min_length=1, max_length=200)]]),
              "the tools the agent may call, a JSON list of names ([] for none)"),
    "memory": (TypeAdapter(bool), "remember and recall long-term memories (true/false)"),
    "voice_replies": (TypeAdapter(bool), "answer with a voice note too, unless a person chose otherwise"),
    "respond_without_mention": (
        TypeAdapter(bool), "answer messages that do not mention Parley"
    ),
    "guard_threshold": (
        TypeAdapter(Annotated[float, Field(gt=0, le=1)]),
        "harm score that refuses, 0 to 1 (lower: stricter)",
    ),
}
KEYS: tuple[str, ...] = tuple(_SETTINGS)
BUILTIN: dict[str, str] = {
    "model": "PARLEY_MODEL",
    "system_prompt": "Parley's built-in prompt",
    "tools": "every registered tool",
    "memory": "on",
    "voice_replies": "off, unless a person turned them on",
    "respond_without_mention": "off: mentions only",
    "guard_threshold": "the guard's calibrated threshold",
}
"""What happens where no layer sets a key (the model settings: the provider's own defaults)."""
WORKSPACE_ADMIN_KEYS: frozenset[str] = frozenset({"guard_threshold"})
"""Settings that decide what the guard lets through. A channel's own managers (on Slack, whoever created the
channel; on Discord, Manage Channels) may change the rest for their channel; these stay with the workspace's
admins (Slack's admins and owners, Discord's Manage Server), or any member could create a channel and turn the
harm check off in it."""
ADMIN_ONLY_REFUSAL = "Only workspace admins can change `{key}` here: it decides what the guard refuses."
MODEL_SETTING_KEYS: tuple[str, ...] = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty")


class UnknownSetting(ValueError):
    """A key outside the vocabulary, or a value of the wrong kind: the message says what is allowed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Effective:
    """A setting's value in force for a channel and the layer it came from."""

    key: str
    value: Any
    source: Source


def describe(key: str) -> str:
    """One line of help for `key`."""
    return _SETTINGS[key][1]


def validate(key: str, value: Any) -> Any:
    """The value checked (and normalised) for `key`; UnknownSetting says what is wrong."""
    if key not in _SETTINGS:
        raise UnknownSetting(f"unknown setting {key!r}; known: {', '.join(KEYS)}")
    try:
        return _SETTINGS[key][0].validate_python(value, strict=False)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UnknownSetting(f"{key}: {problem} ({describe(key)})") from None


def parse(key: str, text: str) -> Any:
    """A value typed on a command line: JSON where it parses (`0.2`, `true`, `["web"]`), else the text."""
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if key == "system_prompt" and not isinstance(value, str):
        value = text
    return validate(key, value)


def answers_unmentioned(stored: Mapping[str, Any]) -> bool:
    """Whether Parley answers a channel message that does not mention it, from the values stored for the
    channel and its workspace (the nearest wins). Off unless a layer turns it on: the environment never
    does, so a new workspace is never flooded with answers."""
    return stored.get("respond_without_mention") is True


def resolve(
    key: str,
    *,
    channel: Mapping[str, Any],
    workspace: Mapping[str, Any],
    environment: Mapping[str, Any],
) -> Effective:
    """The nearest layer that sets `key` wins; none: `default` (Parley's built-in behaviour, value None)."""
    for source, layer in zip(LAYERS, (channel, workspace, environment), strict=True):
        if layer.get(key) is not None:
            return Effective(key=key, value=layer[key], source=source)
    return Effective(key=key, value=None, source="default")


def resolve_all(
    *, channel: Mapping[str, Any], workspace: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, Effective]:
    """Every setting of the vocabulary, resolved."""
    return {k: resolve(k, channel=channel, workspace=workspace, environment=environment) for k in KEYS}
