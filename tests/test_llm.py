"""Models from names: chat completions to OpenAI-compatible servers, retries, breaker, fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from core.circuit import CircuitBreaker
from core.llm import BreakerModel, ModelConfig, ModelFactory
from tests.fakes.openai_server import Error, FakeOpenAI, Hang, Response, Text, echo
from tests.pipeline_helpers import build_pipeline, message, settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")


def factory(server: FakeOpenAI, name: str = "openai:m", **kw: Any) -> ModelFactory:
    return ModelFactory(ModelConfig(name=name, openai_base_url=server.base_url, openai_api_key="sk-test", **kw))


@pytest.mark.parametrize("name", ["openai:gpt-4.1-mini", "openai-chat:gpt-4.1-mini"])
def test_openai_names_speak_chat_completions_to_a_base_url(openai_server: FakeOpenAI, name: str) -> None:
    model = factory(openai_server, name).build()
    assert isinstance(model, BreakerModel)
    assert isinstance(model.wrapped, OpenAIChatModel)


@pytest.mark.parametrize("name", ["openai:m", "local:m", "responses", "anthropic:claude-3-5-haiku-latest"])
def test_the_sdk_client_never_retries_itself_so_no_request_needs_a_copy_of_it(
    openai_server: FakeOpenAI, name: str
) -> None:
    config = ModelConfig(
        name=name, openai_base_url=openai_server.base_url, openai_api_key="sk-test", anthropic_api_key="sk-ant",
        local_base_url=openai_server.base_url,
    )
    if name == "responses":
        config = ModelConfig(name="openai:gpt-4.1", openai_api_key="sk-test")
    model = ModelFactory(config).build()
    assert isinstance(model, BreakerModel)
    assert model.wrapped.client.max_retries == 0  # type: ignore[attr-defined]


async def test_p2_requests_carry_the_api_key(openai_server: FakeOpenAI) -> None:
    agent = Agent(factory(openai_server).build())
    await agent.run("hi")
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
    settings = ModelSettings(
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
    result = await Agent(factory(openai_server).build()).run("hi")
    assert result.output == "finally"
    assert len(openai_server.requests) == 3


@given(retries=st.integers(0, 3))
async def test_p10_retries_stop_at_the_configured_count(fake_openai: FakeOpenAI, retries: int) -> None:
    fake_openai.reset()
    fake_openai.queue(*[Error(500, retry_after=0)] * (retries + 2))
    agent = Agent(factory(fake_openai, retries=retries).build())
    with pytest.raises(ModelHTTPError):
        await agent.run("hi")
    assert len(fake_openai.requests) == retries + 1
    fake_openai.reset()


async def test_retry_after_header_is_honoured(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(429, retry_after=1), Text("ok"))
    started = time.monotonic()
    await Agent(factory(openai_server).build()).run("hi")
    assert time.monotonic() - started >= 0.9


async def test_p5_a_timeout_becomes_a_model_error_not_a_hang(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Hang(5), Hang(5))
    agent = Agent(factory(openai_server, retries=1).build())
    started = time.monotonic()
    with pytest.raises(ModelAPIError):
        await agent.run("hi", model_settings=ModelSettings(timeout=0.3))
    assert time.monotonic() - started < 4


async def test_fallback_model_answers_when_the_first_fails(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(500), Text("from the fallback"))
    f = ModelFactory(
        ModelConfig(name="openai:first", fallbacks=("openai:second",), openai_base_url=openai_server.base_url,
                    retries=0)
    )
    result = await Agent(f.build()).run("hi")
    assert result.output == "from the fallback"
    assert [r["model"] for r in openai_server.requests] == ["first", "second"]


async def test_open_circuit_skips_the_provider_without_a_request(openai_server: FakeOpenAI) -> None:
    f = factory(openai_server, retries=0, breaker_failures=2, breaker_reset_s=60)
    agent = Agent(f.build())
    openai_server.queue(Error(500), Error(500))
    for _ in range(2):
        with pytest.raises(ModelAPIError):
            await agent.run("hi")
    with pytest.raises(ModelAPIError, match="circuit open"):
        await agent.run("hi")
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


async def test_two_consumers_of_one_provider_trip_the_same_breaker(openai_server: FakeOpenAI) -> None:
    """Turns and the judge (or extraction, or the guard's LLM) share the process's one factory."""
    models = factory(openai_server, retries=0, breaker_failures=2, breaker_reset_s=60)
    turns, judge = Agent(models.build()), Agent(models.build("openai:judge"))
    openai_server.queue(Error(500), Error(500))
    for _ in range(2):
        with pytest.raises(ModelAPIError):
            await turns.run("hi")
    with pytest.raises(ModelAPIError, match="circuit open"):
        await judge.run("score this")
    assert len(openai_server.requests) == 2


def test_one_http_pool_per_provider() -> None:
    models = ModelFactory(ModelConfig(name="openai:a", openai_base_url="http://127.0.0.1:9/v1", openai_api_key="k"))
    first, second = models.build(), models.build("openai:b")
    assert isinstance(first, BreakerModel) and isinstance(second, BreakerModel)
    assert first.breaker is second.breaker
    assert first.wrapped.client._client is second.wrapped.client._client  # type: ignore[attr-defined]


async def test_closing_the_factory_closes_its_http_pools_and_a_later_model_opens_a_new_one(
    openai_server: FakeOpenAI,
) -> None:
    models = factory(openai_server)
    await Agent(models.build()).run("hi")
    pool = next(iter(models.clients.values()))
    await models.aclose()
    assert pool.is_closed and not models.clients
    await Agent(models.build()).run("hi again")
    assert not next(iter(models.clients.values())).is_closed
    await models.aclose()


def rejects(field: str) -> Callable[[dict[str, Any]], Response]:
    """A server that answers 400 to any request carrying `field`, as some local servers do."""
    refusal = Error(400, message=f"'{field}' is not supported by this server")
    return lambda body: refusal if field in body else echo(body)


def clock() -> str:
    """The time."""
    return "10:00"


async def test_a_server_that_rejects_tools_still_answers_and_is_remembered(
    openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.responder = rejects("tools")
    agent = Agent(factory(openai_server, retries=0).build(), tools=[clock])
    first = await agent.run("what time is it?")
    second = await agent.run("and now?")
    assert (first.output, second.output) == ("You said: what time is it?", "You said: and now?")
    assert ["tools" in r for r in openai_server.requests] == [True, False, False]
    assert "rejected `tools`" in caplog.text


async def test_a_server_that_rejects_stream_options_still_streams_and_is_remembered(
    openai_server: FakeOpenAI,
) -> None:
    openai_server.responder = rejects("stream_options")
    agent = Agent(factory(openai_server, retries=0).build())
    for text in ("one", "two"):
        async with agent.run_stream(text) as stream:
            assert await stream.get_output() == f"You said: {text}"
    assert ["stream_options" in r for r in openai_server.requests] == [True, False, False]


async def test_other_client_errors_are_not_retried_without_tools(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(400, message="your message is too long"))
    agent = Agent(factory(openai_server, retries=0).build(), tools=[clock])
    with pytest.raises(ModelHTTPError):
        await agent.run("hi")
    assert len(openai_server.requests) == 1


async def test_the_quirks_are_per_server_and_model(openai_server: FakeOpenAI) -> None:
    openai_server.responder = rejects("tools")
    models = factory(openai_server, retries=0)
    await Agent(models.build(), tools=[clock]).run("hi")
    openai_server.reset()
    await Agent(models.build("openai:other"), tools=[clock]).run("hi")
    assert "tools" in openai_server.requests[0]


async def test_a_text_only_turn_sends_the_message_as_one_string(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    """Chat templates of local servers fail on a list of content parts (llama.cpp answers 500)."""
    reply = await build_pipeline(settings_for(openai_server), pool).run(message("plain words"))
    assert reply.error is None
    assert openai_server.requests[-1]["messages"][-1] == {"role": "user", "content": "plain words"}


async def test_an_unknown_price_is_an_unknown_cost_not_zero(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    reply = await build_pipeline(settings_for(openai_server), pool).run(message("what does it cost?"))
    assert reply.usage.input_tokens > 0
    assert reply.usage.cost_usd is None


async def test_a_server_of_ones_own_gets_max_tokens_which_local_servers_read(openai_server: FakeOpenAI) -> None:
    await Agent(factory(openai_server).build()).run("hi", model_settings=ModelSettings(max_tokens=32))
    body = openai_server.requests[-1]
    assert body["max_tokens"] == 32 and "max_completion_tokens" not in body


def tool_parameters(schema: dict[str, Any]) -> ModelRequestParameters:
    return ModelRequestParameters(function_tools=[ToolDefinition(name="clock", parameters_json_schema=schema)])


ZONE = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}


def test_a_set_of_tools_seen_before_reuses_its_rewritten_schemas(openai_server: FakeOpenAI) -> None:
    model = factory(openai_server).build()
    assert isinstance(model, BreakerModel)
    first = model.wrapped.customize_request_parameters(tool_parameters(ZONE))
    again = model.wrapped.customize_request_parameters(tool_parameters(json.loads(json.dumps(ZONE))))
    assert again.function_tools[0] is first.function_tools[0]


def test_a_tool_whose_schema_changed_is_rewritten_again(openai_server: FakeOpenAI) -> None:
    model = factory(openai_server).build()
    assert isinstance(model, BreakerModel)
    model.wrapped.customize_request_parameters(tool_parameters(ZONE))
    changed = {**ZONE, "properties": {"zone": {"type": "string"}, "precise": {"type": "boolean"}}}
    again = model.wrapped.customize_request_parameters(tool_parameters(changed))
    assert set(again.function_tools[0].parameters_json_schema["properties"]) == {"zone", "precise"}
