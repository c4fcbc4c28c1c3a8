"""Models from names: any pydantic-ai model, chat completions for OpenAI-compatible servers,
retries with backoff and jitter honouring Retry-After, a circuit breaker per provider, fallbacks.

One `ModelFactory` per process (built in `bot/`) holds one breaker and one HTTP pool per provider,
and what it learned about each OpenAI-compatible server: local servers (llama.cpp, LM Studio, some
vLLM templates) may reject `tools` or `stream_options`; the first rejection is logged and remembered,
and the request is sent once more without them.

The HTTP pool's transport alone retries: the SDK clients are built once with `max_retries=0`. Asking
for that per request in `ModelSettings` made pydantic-ai copy the SDK client on every model call (and
the copy look up the platform again, in a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse, infer_model
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.retries import AsyncHTTPX2TenacityTransport, RetryConfig, wait_retry_after
from pydantic_ai.settings import ModelSettings
from tenacity import retry_if_exception, stop_after_attempt, wait_random_exponential

from core.circuit import CircuitBreaker
from core.openai_compat import ServerQuirks
from core.prices import remember_unknown_models

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
LOCAL_PROVIDER = "local"
"""`local` or `local:NAME`: the model behind `ModelConfig.local_base_url` (the bundled demo model)."""
TEST_MODEL_ANSWER = "This is Parley's test model. Set PARLEY_MODEL to a real model for real answers."
"""`PARLEY_MODEL=test`: one plain, deterministic answer and no tool calls (pydantic-ai's TestModel calls every tool)."""


class ModelNotConfigured(RuntimeError):
    """No model configured: commands that need one stop with this; turns answer with its text."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    name: str
    fallbacks: tuple[str, ...] = ()
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    local_base_url: str | None = None
    """Where the local model's OpenAI-compatible server listens, when `bot/` started one."""
    retries: int = 3
    """Retries after the first attempt, on 429, 5xx, timeouts and broken connections."""
    max_backoff_s: float = 20.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0


@dataclass
class ModelFactory:
    """Builds models; one per process keeps one breaker and one HTTP pool per provider, and the quirks
    learned about each OpenAI-compatible server."""

    config: ModelConfig
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    clients: dict[str, httpx2.AsyncClient] = field(default_factory=dict)
    quirks: dict[tuple[str, str], ServerQuirks] = field(default_factory=dict)

    def build(self, name: str | None = None) -> Model:
        remember_unknown_models()
        names = [name] if name else [self.config.name, *self.config.fallbacks]
        models = [self._guarded(n) for n in names]
        if len(models) == 1:
            return models[0]
        return FallbackModel(models[0], *models[1:])

    def _guarded(self, name: str) -> Model:
        provider = provider_of(name)
        breaker = self.breakers.setdefault(
            provider,
            CircuitBreaker(
                failure_threshold=self.config.breaker_failures, reset_after_s=self.config.breaker_reset_s
            ),
        )
        return BreakerModel(self._raw(name), breaker)

    async def aclose(self) -> None:
        """Close the providers' HTTP pools: their kept-alive connections would otherwise outlive the event loop
        ("ResourceWarning: unclosed transport" at exit). A model built afterwards opens a new pool."""
        clients, self.clients = list(self.clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients))

    def _client(self, provider: str) -> httpx2.AsyncClient:
        if provider not in self.clients:
            self.clients[provider] = retrying_client(self.config.retries, self.config.max_backoff_s)
        return self.clients[provider]

    def _raw(self, name: str) -> Model:
        if name == "test":
            from pydantic_ai.models.test import TestModel

            return TestModel(call_tools=[], custom_output_text=TEST_MODEL_ANSWER)
        provider, _, model_name = name.partition(":")
        cfg = self.config
        if provider == LOCAL_PROVIDER:
            if cfg.local_base_url is None:
                raise ModelNotConfigured(
                    "The local model is not running here; it is started by `parley serve`, `parley chat` and "
                    "`parley eval`."
                )
            return self._compatible(provider, model_name or LOCAL_PROVIDER, cfg.local_base_url, "unused")
        if provider in {"openai", "openai-chat"} and (cfg.openai_base_url or provider == "openai-chat"):
            return self._compatible(provider, model_name, cfg.openai_base_url, cfg.openai_api_key or "unused")
        if provider == "openai":
            from pydantic_ai.models.openai import OpenAIResponsesModel
            from pydantic_ai.providers.openai import OpenAIProvider

            plain = OpenAIProvider(api_key=cfg.openai_api_key, http_client=self._client(provider))
            return OpenAIResponsesModel(
                model_name, provider=OpenAIProvider(openai_client=plain.client.with_options(max_retries=0))
            )
        if provider == "anthropic":
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            plain_anthropic = AnthropicProvider(api_key=cfg.anthropic_api_key, http_client=self._client(provider))
            return AnthropicModel(
                model_name,
                provider=AnthropicProvider(anthropic_client=plain_anthropic.client.with_options(max_retries=0)),
            )
        return infer_model(name)

    def _compatible(self, provider: str, model_name: str, base_url: str | None, api_key: str) -> Model:
        from pydantic_ai.providers.openai import OpenAIProvider

        from core.openai_compat import CompatibleChatModel, PlainBodyOpenAI

        quirks = self.quirks.setdefault((base_url or "", model_name), ServerQuirks())
        client = PlainBodyOpenAI(base_url=base_url, api_key=api_key, http_client=self._client(provider), max_retries=0)
        return CompatibleChatModel(
            model_name,
            provider=OpenAIProvider(openai_client=client),
            quirks=quirks,
            own_server=base_url is not None,
        )


EXAMPLE_MODELS = ("openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-5", "ollama:llama3.2", "local", "test")


def model_name_problem(name: str) -> str | None:
    """What is wrong with a model name `ModelFactory.build` would be given, None when nothing is:
    `test`, `local[:NAME]`, or PROVIDER:MODEL with a provider pydantic-ai knows."""
    from pydantic_ai.providers import infer_provider_class

    allowed = f"use PROVIDER:MODEL, e.g. {', '.join(EXAMPLE_MODELS)}"
    if name == "test" or provider_of(name) == LOCAL_PROVIDER:
        return None
    provider, sep, model = name.partition(":")
    if not sep or not model.strip():
        return f"{name!r} names no provider; {allowed}"
    try:
        infer_provider_class(provider)
    except ValueError:
        return f"{provider!r} is not a model provider; {allowed}"
    return None


def provider_of(name: str) -> str:
    """`openai:gpt-4.1` -> `openai`; a bare name is its own provider."""
    return name.split(":", 1)[0]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, httpx2.TransportError)


def _raise_retryable(response: httpx2.Response) -> None:
    if response.status_code in RETRY_STATUSES:
        response.raise_for_status()


def retrying_client(retries: int, max_backoff_s: float) -> httpx2.AsyncClient:
    """An HTTP client that retries 429/5xx/timeouts with jittered exponential backoff and Retry-After."""
    transport = AsyncHTTPX2TenacityTransport(
        RetryConfig(
            retry=retry_if_exception(_retryable),
            wait=wait_retry_after(
                fallback_strategy=wait_random_exponential(multiplier=0.25, max=max_backoff_s),
                max_wait=max_backoff_s,
            ),
            stop=stop_after_attempt(retries + 1),
            reraise=True,
        ),
        validate_response=_raise_retryable,
    )
    return httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(600, connect=10))


class BreakerModel(WrapperModel):
    """Refuses calls while its provider's circuit is open, so a FallbackModel moves on at once."""

    def __init__(self, wrapped: Model, breaker: CircuitBreaker) -> None:
        super().__init__(wrapped)
        self.breaker = breaker

    def _check(self) -> None:
        if not self.breaker.allow():
            raise ModelAPIError(self.model_name, "circuit open after repeated failures; try again shortly")

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        self._check()
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except ModelAPIError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        self._check()
        try:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
        except ModelAPIError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
