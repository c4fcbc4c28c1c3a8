"""Opt-in response cache keyed by the full model request (seed property 39).

The key covers instructions, history, the message, tools and model settings, minus volatile
fields such as timestamps, so the same request in the same context answers from the cache.
A streamed request is cached too: a hit plays the stored response back as a stream, so turning the
cache on never turns streaming off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
from pydantic import TypeAdapter
from pydantic_ai import RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ModelResponseStreamEvent,
    TextPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from core.models import WorkspaceKey
from core.store.tenancy import scoped

_RESPONSE = TypeAdapter(ModelResponse)
VOLATILE_KEYS = frozenset(
    {"timestamp", "run_id", "conversation_id", "provider_response_id", "provider_details", "tool_call_id", "id"}
)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def request_key(
    model_name: str,
    messages: list[ModelMessage],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
) -> str:
    """A stable hash of everything that decides the model's answer."""
    payload = {
        "model": model_name,
        "messages": _strip(ModelMessagesTypeAdapter.dump_python(messages, mode="json")),
        "settings": {k: v for k, v in (settings or {}).items() if k not in {"timeout", "max_retries"}},
        "tools": [[t.name, t.description, t.parameters_json_schema] for t in params.function_tools],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class CacheStore(Protocol):
    async def get(self, key: str) -> ModelResponse | None: ...

    async def put(self, key: str, response: ModelResponse) -> None: ...


@dataclass
class PostgresCacheStore:
    pool: asyncpg.Pool
    workspace: WorkspaceKey
    ttl_s: int

    async def get(self, key: str) -> ModelResponse | None:
        raw = await scoped(self.pool, self.workspace).fetchval(
            """SELECT response FROM response_cache
               WHERE platform = $1 AND workspace_id = $2 AND key = $3 AND expires_at > now()""",
            self.workspace.platform,
            self.workspace.workspace_id,
            key,
        )
        if raw is None:
            return None
        return _RESPONSE.validate_json(raw)

    async def put(self, key: str, response: ModelResponse) -> None:
        body = _RESPONSE.dump_json(response).decode()
        await scoped(self.pool, self.workspace).execute(
            """INSERT INTO response_cache (platform, key, workspace_id, response, expires_at)
               VALUES ($1, $2, $3, $4::jsonb, $5)
               ON CONFLICT (platform, workspace_id, key)
               DO UPDATE SET response = EXCLUDED.response, expires_at = EXCLUDED.expires_at""",
            self.workspace.platform,
            key,
            self.workspace.workspace_id,
            body,
            datetime.now(UTC) + timedelta(seconds=self.ttl_s),
        )


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CachingModel(WrapperModel):
    """Answers a repeated request from the store; the key includes the workspace via the store."""

    def __init__(self, wrapped: Model, store: CacheStore, stats: CacheStats) -> None:
        super().__init__(wrapped)
        self.store = store
        self.stats = stats

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        key = request_key(self.model_name, messages, model_settings, model_request_parameters)
        cached = await self.store.get(key)
        if cached is not None:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        await self.store.put(key, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        key = request_key(self.model_name, messages, model_settings, model_request_parameters)
        cached = await self.store.get(key)
        if cached is not None:
            self.stats.hits += 1
            yield ReplayedResponse(model_request_parameters=model_request_parameters, response=cached)
            return
        self.stats.misses += 1
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            yield stream
        response = stream.get()
        if response.parts and not stream.cancelled:
            await self.store.put(key, response)


@dataclass
class ReplayedResponse(StreamedResponse):
    """A cached response played back as a stream: each part arrives whole, in its order."""

    response: ModelResponse

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        self._usage = self.response.usage
        for index, part in enumerate(self.response.parts):
            for event in self._events(index, part):
                yield event

    def _events(self, index: int, part: Any) -> Iterator[ModelResponseStreamEvent]:
        if isinstance(part, TextPart):
            yield from self._parts_manager.handle_text_delta(vendor_part_id=index, content=part.content)
        else:
            yield self._parts_manager.handle_part(vendor_part_id=index, part=part)

    @property
    def model_name(self) -> str:
        return self.response.model_name or "cache"

    @property
    def provider_name(self) -> str | None:
        return self.response.provider_name

    @property
    def provider_url(self) -> str | None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self.response.timestamp
