"""Chat completions that adapt to what an OpenAI-compatible server accepts.

Local servers (llama.cpp's, LM Studio, text-generation-webui, some vLLM templates) read `max_tokens`,
not OpenAI's newer `max_completion_tokens`, and may reject `tools` or `stream_options`. The first
rejection is logged and remembered for the server and model (the `ServerQuirks` the process's
`ModelFactory` keeps), and the request is sent once more without it, so a server without tool calling
still answers.

`PlainBodyOpenAI` is the SDK client these models get: it sends a request's messages and tools as they are,
without the SDK's walk of them against its parameter types (see `PlainBodyCompletions`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, cast

from openai import AsyncOpenAI, omit
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.types import chat
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIChatModelSettings
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

log = logging.getLogger("parley.llm")
NOT_A_FIELD_PROBLEM = frozenset({401, 403, 404, 408, 409, 429})
"""Statuses that say nothing about the request's fields (auth, missing model, rate limits)."""


@dataclass(slots=True)
class ServerQuirks:
    """What one OpenAI-compatible server and model accept, learned from its first rejections."""

    tools: bool = True
    stream_options: bool = True


PLAIN_JSON = (str, int, float, bool, type(None))


def plain_json(value: object) -> bool:
    """Whether `value` is made only of dicts with string keys, lists and JSON scalars: data the SDK's
    request transform would hand back unchanged."""
    if isinstance(value, PLAIN_JSON):
        return True
    if type(value) is list:
        return all(plain_json(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and plain_json(item) for key, item in value.items())
    return False


class PlainBodyCompletions(AsyncCompletions):
    """Chat completions whose messages and tools go into the request body as they are.

    The SDK walks every request's body against its parameter types before sending it, to rename aliased
    fields and format dates and files; chat completions' parameters have neither, so for plain JSON the walk
    returns its input, at about 1.4 ms of CPU for a turn's ten messages and six tools (each message is walked
    once per member of the message-type union). Messages and tools that are plain JSON therefore travel in
    `extra_body`, which the SDK merges into the body after the walk; empty lists hold their places, so the
    body's bytes are the same. Anything else (a model object, a generator) takes the SDK's typed path."""

    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        moved = {
            name: params[name]
            for name in ("messages", "tools")
            if isinstance(params.get(name), list) and plain_json(params[name])
        }
        if moved:
            placeholders: dict[str, list[Any]] = {name: [] for name in moved}
            params = {**params, **placeholders, "extra_body": {**moved, **(params.get("extra_body") or {})}}
        return await super().create(**params)


class PlainBodyChat(AsyncChat):
    """The SDK's chat resource, its completions `PlainBodyCompletions`."""

    @cached_property
    def completions(self) -> AsyncCompletions:
        return PlainBodyCompletions(self._client)


class PlainBodyOpenAI(AsyncOpenAI):
    """The SDK's client with `PlainBodyCompletions` for chat completions."""

    @cached_property
    def chat(self) -> AsyncChat:
        return PlainBodyChat(self)


CUSTOMIZED_SETS = 64
"""Sets of tools whose rewritten schemas a model keeps (a workspace's tool settings choose its set)."""


def _same_tools(a: ModelRequestParameters, b: ModelRequestParameters) -> bool:
    return (a.function_tools, a.output_tools, a.output_object) == (b.function_tools, b.output_tools, b.output_object)


class CompatibleChatModel(OpenAIChatModel):
    """Chat completions that adapt to what the server accepts: a rejected `tools` or `stream_options`
    is logged, remembered in `quirks` and the request sent once more without it."""

    def __init__(self, model_name: str, *, provider: OpenAIProvider, quirks: ServerQuirks, own_server: bool) -> None:
        """`own_server`: a server of the operator's (a base URL), not OpenAI's: it gets `max_tokens`, which
        llama.cpp, vLLM, LM Studio and Ollama read, instead of `max_completion_tokens`, which they ignore."""
        profile = OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False) if own_server else None
        super().__init__(model_name, provider=provider, profile=profile)
        self.quirks = quirks
        self._customized: dict[tuple[str, ...], tuple[ModelRequestParameters, ModelRequestParameters]] = {}

    def customize_request_parameters(self, model_request_parameters: ModelRequestParameters) -> ModelRequestParameters:
        """The tools' JSON schemas as this model's profile rewrites them, rewritten once per set of tools.

        pydantic-ai walks every tool's schema on every request (0.18 ms for Parley's six tools), yet a turn
        sends the same tools each time: a set seen before, unchanged (compared field by field), gets the
        rewrite made for it then."""
        params = model_request_parameters
        key = tuple(t.name for t in (*params.function_tools, *params.output_tools))
        seen = self._customized.get(key)
        if seen is not None and _same_tools(seen[0], params):
            done = seen[1]
            return replace(
                params, function_tools=list(done.function_tools), output_tools=list(done.output_tools),
                output_object=done.output_object,
            )
        done = super().customize_request_parameters(params)
        if len(self._customized) >= CUSTOMIZED_SETS:
            self._customized.clear()
        self._customized[key] = (params, done)
        return done

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        try:
            return await super().request(messages, model_settings, self._adapted(model_request_parameters))
        except ModelHTTPError as exc:
            if not self._learn(exc, model_request_parameters, streaming=False):
                raise
        return await super().request(messages, model_settings, self._adapted(model_request_parameters))

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        async with AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(
                    super().request_stream(
                        messages, model_settings, self._adapted(model_request_parameters), run_context
                    )
                )
            except ModelHTTPError as exc:
                if not self._learn(exc, model_request_parameters, streaming=True):
                    raise
                stream = await stack.enter_async_context(
                    super().request_stream(
                        messages, model_settings, self._adapted(model_request_parameters), run_context
                    )
                )
            yield stream

    def _get_stream_options(self, model_settings: OpenAIChatModelSettings) -> chat.ChatCompletionStreamOptionsParam:
        if not self.quirks.stream_options:
            return cast(chat.ChatCompletionStreamOptionsParam, omit)
        return super()._get_stream_options(model_settings)

    def _adapted(self, parameters: ModelRequestParameters) -> ModelRequestParameters:
        if self.quirks.tools or not (parameters.function_tools or parameters.output_tools):
            return parameters
        return replace(parameters, function_tools=[], output_tools=[])

    def _learn(self, exc: ModelHTTPError, parameters: ModelRequestParameters, *, streaming: bool) -> bool:
        """Whether `exc` is the server rejecting a field it can do without; if so, stop sending it."""
        if exc.status_code < 400 or exc.status_code in NOT_A_FIELD_PROBLEM:
            return False
        said = f"{exc.message} {exc.body}".lower()
        if streaming and self.quirks.stream_options and "stream_options" in said:
            self.quirks.stream_options = False
            field_name = "stream_options"
        elif self.quirks.tools and (parameters.function_tools or parameters.output_tools) and "tool" in said:
            self.quirks.tools = False
            field_name = "tools"
        else:
            return False
        log.warning(
            "model server at %s rejected `%s` for %s (%d); sending requests without it from now on",
            self.base_url, field_name, self.model_name, exc.status_code,
        )
        return True
