"""Models from names: chat completions to OpenAI-compatible servers, retries, breaker, fallback."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.settings import ModelSettings

from core.circuit import CircuitBreaker
from core.llm import BreakerModel, ModelConfig, ModelFactory
from tests.fakes.openai_server import Error, FakeOpenAI, Hang, Text

pytestmark = pytest.mark.usefixtures("allow_model_requests")


def factory(server: FakeOpenAI, name: str = "openai:m", **kw: Any) -> ModelFactory:
    return ModelFactory(ModelConfig(name=name, openai_base_url=server.base_url, openai_api_key="sk-test", **kw))


def no_sdk_retries(**extra: object) -> ModelSettings:
    return ModelSettings(max_retries=0, **extra)  # type: ignore[typeddict-item]


@pytest.mark.parametrize("name", ["openai:gpt-4.1-mini", "openai-chat:gpt-4.1-mini"])
def test_openai_names_speak_chat_completions_to_a_base_url(openai_server: FakeOpenAI, name: str) -> None:
    model = factory(openai_server, name).build()
    assert isinstance(model, BreakerModel)
    assert isinstance(model.wrapped, OpenAIChatModel)


async def test_p2_requests_carry_the_api_key(openai_server: FakeOpenAI) -> None:
    agent = Agent(factory(openai_server).build())
    await agent.run("hi", model_settings=no_sdk_retries())
    assert openai_server.headers[-1]["Authorization"] == "Bearer sk-test"


@given(
    temperature=st.floats(0, 2, allow_nan=False),
    max_tokens=st.integers(1, 4000),
    top_p=st.floats(0, 1, allow_nan=False),
    presence=st.floats(-2, 2, allow_nan=False),
    frequency=st.floats(-2, 2, allow_nan=False),
)
async def test_p4_model_settings_reach_the_provider_unchanged(
    fake_openai: FakeOpenAI, temperature: float, max_tokens: int, top_p: float, presence: float, frequency: float
) -> None:
    agent = Agent(factory(fake_openai).build())
    settings = no_sdk_retries(
        temperature=temperature, max_tokens=max_tokens, top_p=top_p,
        presence_penalty=presence, frequency_penalty=frequency,
    )
    await agent.run("hi", model_settings=settings)
    body = fake_openai.requests[-1]
    assert body["temperature"] == temperature
    assert body.get("max_completion_tokens", body.get("max_tokens")) == max_tokens
    assert body["top_p"] == top_p
    assert body["presence_penalty"] == presence
    assert body["frequency_penalty"] == frequency


async def test_p10_429_twice_then_200_still_answers(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(429, retry_after=0), Error(429, retry_after=0), Text("finally"))
    result = await Agent(factory(openai_server).build()).run("hi", model_settings=no_sdk_retries())
    assert result.output == "finally"
    assert len(openai_server.requests) == 3


@given(retries=st.integers(0, 3))
async def test_p10_retries_stop_at_the_configured_count(fake_openai: FakeOpenAI, retries: int) -> None:
    fake_openai.reset()
    fake_openai.queue(*[Error(500, retry_after=0)] * (retries + 2))
    agent = Agent(factory(fake_openai, retries=retries).build())
    with pytest.raises(ModelHTTPError):
        await agent.run("hi", model_settings=no_sdk_retries())
    assert len(fake_openai.requests) == retries + 1
    fake_openai.reset()


async def test_retry_after_header_is_honoured(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(429, retry_after=1), Text("ok"))
    started = time.monotonic()
    await Agent(factory(openai_server).build()).run("hi", model_settings=no_sdk_retries())
    assert time.monotonic() - started >= 0.9


async def test_p5_a_timeout_becomes_a_model_error_not_a_hang(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Hang(5), Hang(5))
    agent = Agent(factory(openai_server, retries=1).build())
    started = time.monotonic()
    with pytest.raises(ModelAPIError):
        await agent.run("hi", model_settings=no_sdk_retries(timeout=0.3))
    assert time.monotonic() - started < 4


async def test_fallback_model_answers_when_the_first_fails(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(500), Text("from the fallback"))
    f = ModelFactory(
        ModelConfig(name="openai:first", fallbacks=("openai:second",), openai_base_url=openai_server.base_url,
                    retries=0)
    )
    result = await Agent(f.build()).run("hi", model_settings=no_sdk_retries())
    assert result.output == "from the fallback"
    assert [r["model"] for r in openai_server.requests] == ["first", "second"]


async def test_open_circuit_skips_the_provider_without_a_request(openai_server: FakeOpenAI) -> None:
    f = factory(openai_server, retries=0, breaker_failures=2, breaker_reset_s=60)
    agent = Agent(f.build())
    openai_server.queue(Error(500), Error(500))
    for _ in range(2):
        with pytest.raises(ModelAPIError):
            await agent.run("hi", model_settings=no_sdk_retries())
    with pytest.raises(ModelAPIError, match="circuit open"):
        await agent.run("hi", model_settings=no_sdk_retries())
    assert len(openai_server.requests) == 2


def test_breaker_opens_after_threshold_and_half_opens_after_reset() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 20.0
    breaker.record_success()
    assert breaker.state == "closed"


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10, clock=lambda: 0.0)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"
