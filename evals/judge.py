"""The judge: DeepEval's model interface backed by any pydantic-ai model.

DeepEval asks its judge for text, or for an instance of a pydantic schema when it passes one. The
verdict is asked for in the first form the server supports: a tool call, then a JSON schema
(`response_format`), then JSON described in the prompt. A form the server shows it cannot do (no tool
call when one is required, `response_format` rejected or ignored) is dropped for the rest of the
process; a verdict that is still not valid is a judge failure, never a score. Every request is
bounded (`max_tokens`, one output retry), so a weak judge fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deepeval.models import DeepEvalBaseLLM
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput, capture_run_messages
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

NO_JUDGE_FLAG = "none"
JUDGE_MAX_TOKENS = 1024
"""Enough for DeepEval's longest verdict lists; a judge that rambles past it has failed anyway."""
JUDGE_REQUESTS = 2
"""The first answer and one retry after invalid output."""
OutputMode = Literal["tool", "native", "prompted"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("tool", "native", "prompted")
CLIENT_ERRORS_ABOUT_AUTH_OR_LIMITS = frozenset({401, 403, 404, 408, 429})
FORM_FIELDS: dict[OutputMode, str] = {"tool": "tool", "native": "response_format", "prompted": "response_format"}
"""The request field each output form adds, as a server's error message would name it."""


class JudgeUnavailable(RuntimeError):
    """A metric asked for a judge that is not configured."""


class JudgeFailed(RuntimeError):
    """The judge gave no valid verdict: its case is reported as "judge failed", never as a score."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeChoice:
    """Which judge model to use, or why there is none (the reason judge metrics are skipped)."""

    name: str | None
    reason: str | None = None


def choose_judge(flag: str | None, *, judge_model: str | None, model: str | None) -> JudgeChoice:
    """`--judge` wins; then PARLEY_JUDGE_MODEL, then PARLEY_MODEL; `--judge none` turns the judge off."""
    if flag is not None and flag.strip().lower() == NO_JUDGE_FLAG:
        return JudgeChoice(name=None, reason="judge turned off (--judge none)")
    name = flag or judge_model or model
    if not name:
        return JudgeChoice(
            name=None, reason="no judge configured (set PARLEY_JUDGE_MODEL or PARLEY_MODEL, or pass --judge)"
        )
    return JudgeChoice(name=name)


def judge_settings(timeout_s: float, max_tokens: int = JUDGE_MAX_TOKENS) -> ModelSettings:
    """Bounded, repeatable verdicts: no sampling, a cap on length, the operator's timeout."""
    return ModelSettings(temperature=0.0, max_tokens=max_tokens, timeout=timeout_s)


class PydanticAIJudge(DeepEvalBaseLLM):
    """A DeepEval judge that asks a pydantic-ai model, with the schema as structured output."""

    def __init__(self, model: Model, *, name: str, settings: ModelSettings | None = None) -> None:
        self._backing = model
        self._settings = settings
        self._agent: Agent[None, Any] = Agent(
            output_type=str, name="parley-judge", defer_model_check=True, retries=JUDGE_REQUESTS - 1
        )
        self.modes: list[OutputMode] = supported_modes(model)
        """The output forms still worth trying; a form the server showed it cannot do is removed."""
        super().__init__(name)
        self.name = name

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self._backing

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return self.name or "judge"

    async def a_generate(self, prompt: Any, *args: Any, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        text = prompt_text(prompt)
        if schema is None:
            return (await self._run(text, str)).output
        return await self._verdict(text, schema)

    def generate(self, prompt: Any, *args: Any, schema: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        return asyncio.run(self.a_generate(prompt, schema=schema))

    async def _verdict(self, text: str, schema: type[BaseModel]) -> Any:
        for mode in list(self.modes):
            with capture_run_messages() as messages:
                try:
                    return (await self._run(text, _as(mode, schema))).output
                except ModelHTTPError as exc:
                    if mode == self.modes[-1] or not _rejects_the_form(exc, mode):
                        raise
                    self._drop(mode)
                except (UnexpectedModelBehavior, UsageLimitExceeded) as exc:
                    if mode == self.modes[-1] or not _form_ignored(mode, messages):
                        raise JudgeFailed(f"no valid verdict ({mode} output): {_short(exc)}") from exc
                    self._drop(mode)
        raise JudgeFailed("the judge's server supports none of tool calls, JSON schema or prompted JSON")

    async def _run(self, text: str, output_type: Any) -> Any:
        return await self._agent.run(
            text, model=self._backing, output_type=output_type, model_settings=self._settings,
            usage_limits=UsageLimits(request_limit=JUDGE_REQUESTS),
        )

    def _drop(self, mode: OutputMode) -> None:
        if mode in self.modes and len(self.modes) > 1:
            self.modes.remove(mode)


def supported_modes(model: Model) -> list[OutputMode]:
    profile = model.profile
    return [
        mode for mode in OUTPUT_MODES
        if (mode != "tool" or profile.get("supports_tools", True))
        and (mode != "native" or profile.get("supports_json_schema_output", False))
    ]


def _as(mode: OutputMode, schema: type[BaseModel]) -> Any:
    match mode:
        case "tool":
            return ToolOutput(schema)
        case "native":
            return NativeOutput(schema)
        case "prompted":
            return PromptedOutput(schema)


def _form_ignored(mode: OutputMode, messages: Sequence[ModelMessage]) -> bool:
    """The server did not use the form at all: no tool call when one was required, or prose (not JSON)
    although a JSON schema was set. Invalid JSON in the right form is the judge's fault, not the form's."""
    responses = [m for m in messages if isinstance(m, ModelResponse)]
    if not responses:
        return False
    if mode == "tool":
        return not any(isinstance(p, ToolCallPart) for r in responses for p in r.parts)
    if mode == "native":
        texts = [p.content for r in responses for p in r.parts if isinstance(p, TextPart)]
        return bool(texts) and not any(_looks_like_json(t) for t in texts)
    return False


def _rejects_the_form(exc: ModelHTTPError, mode: OutputMode) -> bool:
    """The server refused the form itself: its error names the field (llama.cpp's server answers 500 to
    a `response_format` it cannot validate), or a 4xx about the request's shape, not credentials, a
    missing model or rate limits."""
    if FORM_FIELDS[mode] in f"{exc.message} {exc.body}".lower():
        return True
    return 400 <= exc.status_code < 500 and exc.status_code not in CLIENT_ERRORS_ABOUT_AUTH_OR_LIMITS


def _looks_like_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


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


def prompt_text(prompt: Any) -> str:
    """DeepEval prompts are text, or (multimodal) a list of text and images: the judge reads the text."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        return "\n".join(part for part in prompt if isinstance(part, str))
    return str(prompt)
