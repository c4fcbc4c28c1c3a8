"""A NeMo Guardrails LLM backed by Parley's own model, for the self-check rails.

NeMo 0.24 talks to models through its `LLMModel` protocol. `CompletionLLM` implements it over one
async function `complete(prompt) -> str` that the composition root builds from the configured
pydantic-ai model (`pydantic_ai_complete`), so the self-check prompts go to the same provider,
keys and base URL as the agent, with a timeout of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nemoguardrails.types import ChatMessage, LLMResponse, LLMResponseChunk

if TYPE_CHECKING:
    from pydantic_ai.models import Model

Complete = Callable[[str], Awaitable[str]]


class CompletionLLM:
    """NeMo's `LLMModel` over `complete`; a call that runs past `timeout_s` raises TimeoutError."""

    def __init__(self, complete: Complete, *, timeout_s: float, name: str = "parley") -> None:
        self._complete = complete
        self._timeout_s = timeout_s
        self._name = name

    async def generate_async(
        self, prompt: str | list[ChatMessage], *, stop: list[str] | None = None, **kwargs: Any
    ) -> LLMResponse:
        text = await asyncio.wait_for(self._complete(_as_text(prompt)), self._timeout_s)
        for token in stop or ():
            if token and token in text:
                text = text.split(token, 1)[0]
        return LLMResponse(content=text, model=self._name, finish_reason="stop")

    async def stream_async(
        self, prompt: str | list[ChatMessage], *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[LLMResponseChunk]:
        response = await self.generate_async(prompt, stop=stop)
        yield LLMResponseChunk(delta_content=response.content, model=self._name, finish_reason="stop")

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def provider_name(self) -> str | None:
        return "parley"

    @property
    def provider_url(self) -> str | None:
        return None


def _as_text(prompt: str | list[ChatMessage]) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m.role.value}: {m.content}" for m in prompt if isinstance(m.content, str))


def pydantic_ai_complete(model: Model | str) -> Complete:
    """`complete(prompt)` through a bare pydantic-ai agent on `model` (no tools, plain text out)."""
    from pydantic_ai import Agent

    agent: Agent[None, str] = Agent(model, output_type=str)

    async def complete(prompt: str) -> str:
        result = await agent.run(prompt)
        return result.output

    return complete
