"""The tool registry and the built-in tools (seed properties 1, 11, 27, 28, 32, 40)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from core.agent import TurnDeps
from core.models import ConversationKey, UserKey
from core.tools import builtin
from core.tools.registry import ToolPolicy, ToolRegistry


def deps() -> TurnDeps:
    return TurnDeps(
        user=UserKey(platform="console", workspace_id="w", user_id="u"),
        conversation=ConversationKey(platform="console", workspace_id="w", channel_id="c", thread_id="t"),
    )


def calls_then_answers(*calls: tuple[str, dict[str, object]]) -> FunctionModel:
    """A model that calls the given tools in one step, then repeats the tool results as its answer."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart(name, args) for name, args in calls])
        results = [p.content for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        return ModelResponse(parts=[TextPart(" | ".join(map(str, results)))])

    return FunctionModel(respond)


async def run(registry: ToolRegistry, model: FunctionModel, d: TurnDeps | None = None) -> tuple[str, TurnDeps]:
    d = d or deps()
    agent = Agent(model, deps_type=TurnDeps)
    result = await agent.run("go", deps=d, toolsets=registry.toolsets_for(None))
    return result.output, d


@given(value=st.integers(-10**6, 10**6), word=st.text(alphabet="abcxyz", min_size=1, max_size=8))
async def test_p1_a_registered_function_runs_when_the_model_calls_it(value: int, word: str) -> None:
    def echo_tool(number: int, label: str) -> str:
        """Echo a number and a label."""
        return f"{label}={number}"

    registry = ToolRegistry()
    registry.register(echo_tool)
    output, _ = await run(registry, calls_then_answers(("echo_tool", {"number": value, "label": word})))
    assert output == f"{word}={value}"


async def test_p11_every_call_is_logged_with_masked_arguments(caplog: pytest.LogCaptureFixture) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        return "found"

    registry = ToolRegistry()
    registry.register(lookup)
    with caplog.at_level(logging.INFO, logger="parley.tools"):
        await run(registry, calls_then_answers(("lookup", {"query": "mail ada@example.com please"})))
    record = next(r for r in caplog.records if r.getMessage() == "tool call")
    assert record.tool == "lookup"  # type: ignore[attr-defined]
    assert "ada@example.com" not in str(vars(record))
    assert record.outcome == "ok" and record.duration_ms >= 0  # type: ignore[attr-defined]


async def test_p27_a_failing_tool_returns_a_clear_error_and_a_failed_step() -> None:
    def flaky() -> str:
        """Always fails."""
        raise ConnectionError("upstream refused")

    registry = ToolRegistry()
    registry.register(flaky, policy=ToolPolicy(retries=1))
    output, d = await run(registry, calls_then_answers(("flaky", {})))
    assert output == "Error: the flaky tool failed: upstream refused"
    assert [s.ok for s in d.steps] == [False]


async def test_a_slow_tool_is_stopped_at_its_timeout() -> None:
    async def slow() -> str:
        """Takes forever."""
        await asyncio.sleep(10)
        return "late"

    registry = ToolRegistry()
    registry.register(slow, policy=ToolPolicy(timeout_s=0.1, retries=0))
    started = time.monotonic()
    output, _ = await run(registry, calls_then_answers(("slow", {})))
    assert "took too long" in output and time.monotonic() - started < 2


async def test_p10_a_transient_tool_failure_is_retried() -> None:
    attempts = []

    def transient() -> str:
        """Fails once."""
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("blip")
        return "ok"

    registry = ToolRegistry()
    registry.register(transient, policy=ToolPolicy(retries=2))
    output, _ = await run(registry, calls_then_answers(("transient", {})))
    assert output == "ok" and len(attempts) == 2


async def test_p28_calls_over_a_tools_rate_limit_are_refused() -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    registry = ToolRegistry()
    registry.register(ping, policy=ToolPolicy(rate_per_min=2))
    output, d = await run(registry, calls_then_answers(("ping", {}), ("ping", {}), ("ping", {})))
    assert output.count("pong") == 2 and "rate limit" in output
    assert sorted(s.ok for s in d.steps) == [False, True, True]


async def test_p32_p40_independent_calls_in_one_step_run_concurrently() -> None:
    async def wait_a() -> str:
        """Wait A."""
        await asyncio.sleep(0.3)
        return "a"

    async def wait_b() -> str:
        """Wait B."""
        await asyncio.sleep(0.3)
        return "b"

    registry = ToolRegistry()
    registry.register(wait_a)
    registry.register(wait_b)
    started = time.monotonic()
    output, _ = await run(registry, calls_then_answers(("wait_a", {}), ("wait_b", {})))
    assert sorted(output.split(" | ")) == ["a", "b"]
    assert time.monotonic() - started < 0.55


async def test_a_workspace_sees_only_its_enabled_tools() -> None:
    registry = ToolRegistry()
    registry.register(builtin.calculate)
    registry.register(builtin.current_datetime)
    seen: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.extend(t.name for t in info.function_tools)
        return ModelResponse(parts=[TextPart("ok")])

    agent = Agent(FunctionModel(respond), deps_type=TurnDeps)
    await agent.run("go", deps=deps(), toolsets=registry.toolsets_for(["calculate"]))
    assert seen == ["calculate"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("2+2", "4"), ("(17 * 23) / 4", "97.75"), ("2 ** 10", "1024"), ("round(10/3, 2)", "3.33"), ("-3 % 5", "2")],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: str) -> None:
    assert builtin.calculate(expression) == expected


@pytest.mark.parametrize("expression", ["__import__('os')", "open('/etc/passwd')", "9 ** 99999", "1/0", "x + 1"])
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(builtin.ToolInputError):
        builtin.calculate(expression)


def test_current_datetime_names_the_zone() -> None:
    assert "CET" in builtin.current_datetime("Europe/Paris") or "CEST" in builtin.current_datetime("Europe/Paris")
    with pytest.raises(builtin.ToolInputError):
        builtin.current_datetime("Nowhere/Special")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost/", "http://169.254.169.254/latest",
                                 "http://10.0.0.1/", "file:///etc/passwd"])
async def test_fetch_url_refuses_private_and_local_addresses(url: str) -> None:
    with pytest.raises(builtin.ToolInputError):
        await builtin.fetch_url(url)


async def test_fetch_url_reads_a_page_when_private_addresses_are_allowed(openai_server: object) -> None:
    from tests.fakes.openai_server import FakeOpenAI

    assert isinstance(openai_server, FakeOpenAI)
    text = await builtin.fetch_url(f"{openai_server.base_url}/models", allow_private=True)
    assert '"fake"' in text


def test_html_is_reduced_to_its_text() -> None:
    html = "<html><head><style>x{}</style><script>evil()</script></head><body><h1>Title</h1><p>Body</p></body>"
    assert builtin.html_to_text(html) == "Title\nBody"
