"""The judge: DeepEval's model interface backed by any pydantic-ai model.

DeepEval asks its judge for text, or for an instance of a pydantic schema when it passes one; the
schema becomes the pydantic-ai `output_type`, so every provider pydantic-ai speaks (OpenAI,
Anthropic, Ollama, an OpenAI-compatible server) can judge, with its structured-output support.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepeval.models import DeepEvalBaseLLM
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from bot.app import model_config, model_settings
from bot.settings import Settings
from core.llm import ModelFactory

NO_JUDGE_FLAG = "none"


class JudgeUnavailable(RuntimeError):
    """A metric asked for a judge that is not configured."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeChoice:
    """Which judge model to use, or why there is none (the reason judge metrics are skipped)."""

    name: str | None
    reason: str | None = None


def choose_judge(flag: str | None, settings: Settings) -> JudgeChoice:
    """`--judge` wins; then PARLEY_JUDGE_MODEL, then PARLEY_MODEL; `--judge none` turns the judge off."""
    if flag is not None and flag.strip().lower() == NO_JUDGE_FLAG:
        return JudgeChoice(name=None, reason="judge turned off (--judge none)")
    name = flag or settings.parley_judge_model or settings.parley_model
    if not name:
        return JudgeChoice(
            name=None, reason="no judge configured (set PARLEY_JUDGE_MODEL or PARLEY_MODEL, or pass --judge)"
        )
    return JudgeChoice(name=name)


class PydanticAIJudge(DeepEvalBaseLLM):
    """A DeepEval judge that asks a pydantic-ai model, with the schema as structured output."""

    def __init__(self, model: Model, *, name: str, settings: ModelSettings | None = None) -> None:
        self._backing = model
        self._settings = settings
        self._agent: Agent[None, Any] = Agent(output_type=str, name="parley-judge", defer_model_check=True)
        super().__init__(name)
        self.name = name

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self._backing

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return self.name or "judge"

    async def a_generate(self, prompt: Any, *args: Any, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        result = await self._agent.run(
            prompt_text(prompt), model=self._backing, output_type=schema or str, model_settings=self._settings
        )
        return result.output

    def generate(self, prompt: Any, *args: Any, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        result = self._agent.run_sync(
            prompt_text(prompt), model=self._backing, output_type=schema or str, model_settings=self._settings
        )
        return result.output


class Unavailable(DeepEvalBaseLLM):
    """Handed to metrics that score without a model (tool names): it fails loudly if one asks anyway."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("unavailable")

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return "unavailable"

    async def a_generate(self, *args: Any, **kwargs: Any) -> str:
        raise JudgeUnavailable(self.reason)

    def generate(self, *args: Any, **kwargs: Any) -> str:
        raise JudgeUnavailable(self.reason)


def build_judge(settings: Settings, name: str) -> PydanticAIJudge:
    """A judge on model `name`, with the provider settings (keys, base URL, retries) of `settings`."""
    judge_settings = settings.model_copy(
        update={
            "parley_model": name,
            "parley_fallback_models": [],
            "parley_temperature": None,
            "parley_max_tokens": None,
            "parley_top_p": None,
            "parley_presence_penalty": None,
            "parley_frequency_penalty": None,
        }
    )
    model = ModelFactory(model_config(judge_settings)).build(name)
    return PydanticAIJudge(model, name=name, settings=model_settings(judge_settings))


def prompt_text(prompt: Any) -> str:
    """DeepEval prompts are text, or (multimodal) a list of text and images: the judge reads the text."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        return "\n".join(part for part in prompt if isinstance(part, str))
    return str(prompt)
