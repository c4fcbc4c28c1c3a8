"""A turn's model exchange: ask the model, run the tools it calls, ask again until it answers.

Replaces pydantic-ai's `Agent.run` / `run_stream` for the pipeline. The agent's run graph (run contexts,
capabilities, toolset gathers, its tasks) cost 4-5.5 ms of worker CPU a turn around a request that costs
1.6-2.5 ms (docs/performance.md, issue #22). The loop sends the request the agent sent, key for key
(tests/test_tool_loop.py compares both through the fake model server), through pydantic-ai's public pieces:
`pydantic_ai.direct` for the requests and `ToolManager` for the calls (argument validation, unknown tools,
`ModelRetry`, each tool's retry count), so the registry's `GuardedToolset`s guard every call as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import logfire
from opentelemetry import trace
from pydantic_ai import RunContext
from pydantic_ai.direct import model_request, model_request_stream
from pydantic_ai.exceptions import (
    ContentFilterError,
    OutputTokenLimitExceeded,
    ToolFailedError,
    ToolRetryError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    RetryFeedbackPart,
    RetryInfo,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturn,
    ToolReturnPart,
    UserContent,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tool_manager import ToolManager
from pydantic_ai.toolsets import AbstractToolset, CombinedToolset, ToolsetTool
from pydantic_ai.usage import RunUsage, UsageLimits

OnText = Callable[[str], Awaitable[None]]
DEBOUNCE_S = 0.05
"""The longest a streamed reply's text waits before it is drafted again (the agent's `debounce_by`)."""
LIMITS = UsageLimits()
"""The agent's default limits: 50 requests a turn, no token limit."""
TOOL_RETRIES = 1
"""Retry prompts a tool may send the model in a turn (bad arguments, `ModelRetry`), the agent's default."""
OUTPUT_RETRIES = 1
"""Answers without text or tool calls the model may give before the turn fails, the agent's default."""


async def run_tool_loop(
    model: Model,
    prompt: str | Sequence[UserContent],
    *,
    history: list[ModelMessage],
    instructions: str,
    settings: ModelSettings,
    toolsets: Sequence[AbstractToolset[Any]],
    deps: Any,
    on_text: OnText | None = None,
) -> tuple[str, list[ModelMessage]]:
    """The model's answer and the turn's new messages (its requests and responses, for the recorded calls).

    With `on_text`, every request is streamed and the reply's text so far (the whole text, not a delta) is
    handed to it at most every `DEBOUNCE_S`. Provider errors, `UsageLimitExceeded` and a tool's exhausted retries
    (`UnexpectedModelBehavior`) propagate: all are `AgentRunError`s, as the agent raised them."""
    request = ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions)
    messages = [*history, request]
    new: list[ModelMessage] = [request]
    usage = RunUsage()
    empty = 0
    toolset = InTurnToolset(list(toolsets))
    manager = ToolManager[Any](toolset, default_max_retries=TOOL_RETRIES)
    step = 0
    async with toolset:
        while True:
            step += 1
            ctx = RunContext(
                deps=deps, model=model, usage=usage, prompt=prompt, messages=messages, run_step=step,
                max_retries=TOOL_RETRIES,
            )
            manager = await manager.for_run_step(ctx)
            parameters = ModelRequestParameters(function_tools=manager.tool_defs, allow_text_output=True)
            LIMITS.check_before_request(usage)
            usage.requests += 1
            if on_text is None:
                response = await model_request(
                    model, messages, model_settings=settings, model_request_parameters=parameters
                )
            else:
                async with model_request_stream(
                    model, messages, model_settings=settings, model_request_parameters=parameters
                ) as stream:
                    await _draft(stream, on_text)
                response = stream.get()
            usage.incr(response.usage)
            LIMITS.check_tokens(usage)
            messages.append(response)
            new.append(response)
            calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
            if calls:
                parts = await _call_tools(manager, calls)
            elif response.text:
                return response.text, new
            else:
                empty += 1
                parts = [_no_output(response, empty, tools=bool(manager.tools))]
            request = ModelRequest(parts=parts, instructions=instructions)
            messages.append(request)
            new.append(request)


@dataclass
class InTurnToolset(CombinedToolset[Any]):
    """The turn's toolsets asked for their step and their tools one after another, not as tasks.

    pydantic-ai's `CombinedToolset` gathers its toolsets in an anyio task group (a task, a cancel scope and an
    event each), twice a request: for the registry's two toolsets (its functions and memory's), lists held in
    memory that answer without waiting, that was 5 % of a worker's CPU samples under load and 120 µs a request
    measured alone (docs/performance.md, fourteenth stop). An MCP server's list is cached after its first call
    (`cache_tools`), so asking in turn costs no waiting there either after the first request. The tools and
    their order are the combined toolset's."""

    async def for_run_step(self, ctx: RunContext[Any]) -> AbstractToolset[Any]:
        new_toolsets = [await t.for_run_step(ctx) for t in self.toolsets]
        if all(new is old for new, old in zip(new_toolsets, self.toolsets, strict=True)):
            return self
        return replace(self, toolsets=new_toolsets)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return self._merge_tools([await toolset.get_tools(ctx) for toolset in self.toolsets])


def _no_output(response: ModelResponse, empty: int, *, tools: bool) -> RetryFeedbackPart:
    """The agent's answer to a response with neither text nor tool calls (a thinking model's, say): ask once more,
    then fail the turn; one cut off by the token limit or a content filter fails it at once."""
    if response.finish_reason == "length":
        raise OutputTokenLimitExceeded("Model token limit exceeded before any response was generated.")
    if response.finish_reason == "content_filter":
        raise ContentFilterError("The model's content filter stopped the response.")
    if empty > OUTPUT_RETRIES:
        raise UnexpectedModelBehavior(f"Exceeded maximum output retries ({OUTPUT_RETRIES})")
    return RetryFeedbackPart(
        content="Please return text or call a tool." if tools else "Please return text.",
        retry=RetryInfo(cause="no_output", attempt=empty, max_retries=OUTPUT_RETRIES),
    )


async def _call_tools(manager: ToolManager[Any], calls: list[ToolCallPart]) -> list[ModelRequestPart]:
    """Every call of one response, at once; each answers with its result or a retry prompt, in the calls' order,
    followed by what the tools gave the model to read as the person's (a `ToolReturn`'s `content`), as the agent
    orders them."""
    answers = await asyncio.gather(*(_call_tool(manager, call) for call in calls))
    returns: list[ModelRequestPart] = [part for part, _ in answers]
    return returns + [UserPromptPart(content) for _, content in answers if content]


async def _call_tool(
    manager: ToolManager[Any], call: ToolCallPart
) -> tuple[ModelRequestPart, str | Sequence[UserContent] | None]:
    try:
        with _span(call):
            result = await manager.handle_call(call)
    except ToolRetryError as exc:
        return exc.tool_retry, None
    except ToolFailedError as exc:
        return exc.tool_failed, None
    answer = result if isinstance(result, ToolReturn) else ToolReturn(return_value=result)
    part = ToolReturnPart(
        tool_name=call.tool_name, content=answer.return_value, tool_call_id=call.tool_call_id, metadata=answer.metadata
    )
    return part, answer.content


def _span(call: ToolCallPart) -> contextlib.AbstractContextManager[Any]:
    """A tool call's span where the turn's trace is recorded (the agent's instrumentation made one), else nothing."""
    if trace.get_current_span().is_recording():
        attributes: dict[str, Any] = {"gen_ai.tool.name": call.tool_name, "gen_ai.tool.call.id": call.tool_call_id}
        return logfire.span(f"execute_tool {call.tool_name}", **attributes)
    return contextlib.nullcontext()


async def _draft(stream: StreamedResponse, on_text: OnText) -> None:
    """Hand the text so far to `on_text` as it streams: at once, then at most every `DEBOUNCE_S`."""
    text = ""
    sent = ""
    last = 0.0
    async for event in stream:
        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
            text += event.part.content
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            text += event.delta.content_delta
        else:
            continue
        now = time.monotonic()
        if now - last >= DEBOUNCE_S:
            await on_text(text)
            sent, last = text, now
    if text != sent:
        await on_text(text)

