"""Parley's own tool loop (core/tool_loop.py): the request bodies a model receives are the pydantic-ai agent's, key
for key, for the turns a pipeline sends. The agent built here is the one the pipeline ran before the loop replaced
it; each test sends the same turn through both against the fake model server and compares what the server got."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import logfire
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturn,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import CombinedToolset
from pydantic_ai.usage import RunUsage

from bot.app import build_registry, model_factory
from bot.settings import Settings
from core.agent import TurnDeps
from core.models import ConversationKey, UserKey
from core.tool_loop import InTurnToolset, run_tool_loop
from core.tools.registry import ToolRegistry
from tests.captured_telemetry import Captured
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.pipeline_helpers import settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")

INSTRUCTIONS = "You are Parley.\n\nWhat you know about the person: likes tea."
HISTORY: list[ModelMessage] = [
    ModelRequest(parts=[UserPromptPart("What is 2+2?")]),
    ModelResponse(parts=[TextPart("4.")]),
]


def deps() -> TurnDeps:
    return TurnDeps(
        user=UserKey(platform="api", workspace_id="w", user_id="u"),
        conversation=ConversationKey(platform="api", workspace_id="w", channel_id="c", thread_id="t"),
    )


def setup(server: FakeOpenAI) -> tuple[Model, ToolRegistry]:
    settings = settings_for(server)
    factory = model_factory(settings)
    assert factory is not None
    model = factory.build()
    assert model is not None
    return model, build_registry(settings)


async def by_agent(model: Model, registry: ToolRegistry, prompt: str, *, stream: bool) -> str:
    """The turn as the pipeline's agent ran it (core/pipeline.py before the loop)."""
    agent = Agent(deps_type=TurnDeps, output_type=str, name="parley", defer_model_check=True)
    kw: dict[str, Any] = {
        "model": model, "message_history": list(HISTORY), "instructions": INSTRUCTIONS,
        "model_settings": {"temperature": 0.3}, "deps": deps(), "toolsets": registry.toolsets_for(None),
    }
    if not stream:
        return (await agent.run(prompt, **kw)).output
    async with agent.run_stream(prompt, **kw) as result:
        async for _ in result.stream_text(delta=False, debounce_by=0.05):
            pass
        return await result.get_output()


async def by_loop(model: Model, registry: ToolRegistry, prompt: str, *, stream: bool) -> str:
    drafts: list[str] = []

    async def draft(text: str) -> None:
        drafts.append(text)

    output, _ = await run_tool_loop(
        model, prompt, history=list(HISTORY), instructions=INSTRUCTIONS, settings={"temperature": 0.3},
        toolsets=registry.toolsets_for(None), deps=deps(), on_text=draft if stream else None,
    )
    return output


def halves(server: FakeOpenAI) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The agent's requests and the loop's, each with the server's tool call ids numbered from 0 (the server
    counts on across both runs)."""
    requests = server.requests
    half = len(requests) // 2
    return _renumbered(requests[:half]), _renumbered(requests[half:])


def _renumbered(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = json.dumps(bodies)
    ids = {found: f"call_{n}" for n, found in enumerate(dict.fromkeys(re.findall(r"call_\d+", text)))}
    return json.loads(re.sub(r"call_\d+", lambda m: f"x{ids[m.group(0)]}", text))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_plain_answer_sends_the_agents_request_body(openai_server: FakeOpenAI, stream: bool) -> None:
    model, registry = setup(openai_server)
    old = await by_agent(model, registry, "What is 17 times 23?", stream=stream)
    new = await by_loop(model, registry, "What is 17 times 23?", stream=stream)
    agent_bodies, loop_bodies = halves(openai_server)
    assert new == old
    assert loop_bodies == agent_bodies
    assert len(loop_bodies) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_tool_call_then_an_answer_sends_the_agents_request_bodies(
    openai_server: FakeOpenAI, stream: bool
) -> None:
    model, registry = setup(openai_server)
    script = (ToolCalls([("calculate", {"expression": "17*23"})]), Text("391"))
    openai_server.queue(*script, *script)
    old = await by_agent(model, registry, "What is 17 times 23?", stream=stream)
    new = await by_loop(model, registry, "What is 17 times 23?", stream=stream)
    agent_bodies, loop_bodies = halves(openai_server)
    assert new == old == "391"
    assert loop_bodies == agent_bodies
    assert len(loop_bodies) == 2


async def test_two_tool_calls_in_one_response_and_a_retry_send_the_agents_request_bodies(
    openai_server: FakeOpenAI,
) -> None:
    model, registry = setup(openai_server)
    script = (
        ToolCalls([("calculate", {"expression": "17*23"}), ("current_datetime", {})]),
        ToolCalls([("calculate", {"wrong_argument": 1}), ("no_such_tool", {})]),
        Text("done"),
    )
    openai_server.queue(*script, *script)
    old = await by_agent(model, registry, "Compute and tell the time", stream=False)
    new = await by_loop(model, registry, "Compute and tell the time", stream=False)
    agent_bodies, loop_bodies = halves(openai_server)
    assert new == old == "done"
    assert len(loop_bodies) == 3
    # The time tool's answer differs between the two runs by the seconds between them; nothing else may.
    for agent_body, loop_body in zip(agent_bodies, loop_bodies, strict=True):
        assert _without_times(loop_body) == _without_times(agent_body)


def _without_times(body: dict[str, Any]) -> dict[str, Any]:
    messages = [
        {**m, "content": "<time>"} if m.get("role") == "tool" and "UTC" in str(m.get("content")) else m
        for m in body["messages"]
    ]
    return {**body, "messages": messages}


async def test_an_empty_answer_is_asked_again_with_the_agents_request_body(openai_server: FakeOpenAI) -> None:
    model, registry = setup(openai_server)
    openai_server.queue(Text(""), Text("4"), Text(""), Text("4"))
    old = await by_agent(model, registry, "What is 2+2?", stream=False)
    new = await by_loop(model, registry, "What is 2+2?", stream=False)
    agent_bodies, loop_bodies = halves(openai_server)
    assert new == old == "4"
    assert loop_bodies == agent_bodies
    assert len(loop_bodies) == 2


async def test_a_second_empty_answer_fails_the_turn_as_the_agent_failed_it(openai_server: FakeOpenAI) -> None:
    model, registry = setup(openai_server)
    openai_server.queue(Text(""), Text(""), Text(""), Text(""))
    with pytest.raises(UnexpectedModelBehavior) as old:
        await by_agent(model, registry, "What is 2+2?", stream=False)
    with pytest.raises(UnexpectedModelBehavior) as new:
        await by_loop(model, registry, "What is 2+2?", stream=False)
    assert str(new.value) == str(old.value)
    assert len(openai_server.requests) == 4


async def test_a_model_that_never_stops_calling_tools_meets_the_agents_request_limit(
    openai_server: FakeOpenAI,
) -> None:
    _, registry = setup(openai_server)
    asked: list[int] = []

    def forever(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        asked.append(1)
        return ModelResponse(parts=[ToolCallPart("calculate", {"expression": "1+1"})])

    model = FunctionModel(forever)
    with pytest.raises(UsageLimitExceeded) as old:
        await by_agent(model, registry, "Loop", stream=False)
    by_the_agent = len(asked)
    with pytest.raises(UsageLimitExceeded) as new:
        await by_loop(model, registry, "Loop", stream=False)
    assert str(new.value) == str(old.value)
    assert len(asked) - by_the_agent == by_the_agent == 50


async def test_a_tool_call_gets_a_span_where_the_turn_is_traced(
    openai_server: FakeOpenAI, captured: Captured
) -> None:
    model, registry = setup(openai_server)
    openai_server.queue(ToolCalls([("calculate", {"expression": "17*23"})]), Text("391"))
    with logfire.span("turn"):
        await by_loop(model, registry, "What is 17 times 23?", stream=False)
    spans = {s.name: s for s in captured.spans.get_finished_spans()}
    assert (spans["execute_tool calculate"].attributes or {})["gen_ai.tool.name"] == "calculate"
    assert any("chat" in name for name in spans)


async def test_a_streamed_reply_is_drafted_whole_and_growing_after_its_tool_calls(openai_server: FakeOpenAI) -> None:
    model, registry = setup(openai_server)
    reply = "A reply long enough to arrive in several chunks of sixteen characters."
    openai_server.queue(ToolCalls([("calculate", {"expression": "1+1"})]), Text(reply))
    openai_server.chunk_delay = 0.02
    drafts: list[str] = []

    async def draft(text: str) -> None:
        drafts.append(text)

    output, _ = await run_tool_loop(
        model, "hi", history=[], instructions=INSTRUCTIONS, settings={}, toolsets=registry.toolsets_for(None),
        deps=deps(), on_text=draft,
    )
    assert output == drafts[-1] == reply
    assert all(later.startswith(earlier) and later != earlier for earlier, later in itertools.pairwise(drafts))
    assert len(drafts) >= 2  # the first chunk at once, the rest as it came


async def test_a_tool_return_with_content_for_the_model_sends_the_agents_request_body(
    openai_server: FakeOpenAI,
) -> None:
    model, registry = setup(openai_server)

    def show_chart() -> ToolReturn:
        """Draw the chart."""
        return ToolReturn(return_value="drawn", content="The chart shows a rise.", metadata={"kind": "chart"})

    registry.register(show_chart)
    script = (ToolCalls([("show_chart", {}), ("calculate", {"expression": "2*3"})]), Text("It rose."))
    openai_server.queue(*script, *script)
    old = await by_agent(model, registry, "Show me", stream=False)
    new = await by_loop(model, registry, "Show me", stream=False)
    agent_bodies, loop_bodies = halves(openai_server)
    assert new == old == "It rose."
    assert loop_bodies == agent_bodies
    assert loop_bodies[1]["messages"][-1] == {"role": "user", "content": "The chart shows a rise."}


async def test_the_turns_toolsets_offer_the_combined_toolsets_tools_in_its_order() -> None:
    toolsets = build_registry(Settings()).toolsets_for(None)
    ctx = RunContext(deps=deps(), model=TestModel(), usage=RunUsage(), prompt="hi", messages=[], run_step=1)
    combined = await (await CombinedToolset(list(toolsets)).for_run_step(ctx)).get_tools(ctx)
    in_turn = await (await InTurnToolset(list(toolsets)).for_run_step(ctx)).get_tools(ctx)
    assert len(toolsets) > 1
    assert [t.tool_def for t in in_turn.values()] == [t.tool_def for t in combined.values()]
