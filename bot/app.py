"""The composition root: settings in, a running pipeline out. The only place that wires things."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic_ai.settings import ModelSettings

from bot.database import open_pool
from bot.settings import MISSING_MODEL_HELP, Settings
from core.guard.events import pool_sink
from core.guard.guard import Guard
from core.guard.llm import pydantic_ai_complete
from core.guard.settings import GuardConfig
from core.knowledge import Knowledge
from core.llm import ModelConfig, ModelFactory, ModelNotConfigured
from core.media import ElevenLabsConfig, Media, MediaConfig, MediaLimits
from core.media.config import VoiceFormat
from core.memory.embedding import build_embedder
from core.memory.extraction import agent_extractor
from core.memory.retention import maintenance_loop
from core.memory.service import MemoryConfig, MemoryService
from core.memory.tools import ToolScope, memory_toolset
from core.pipeline import Pipeline, PipelineConfig
from core.steps import GuardStep, MediaStep, MemoryStep
from core.telemetry import startup_phase
from core.tools import builtin
from core.tools.registry import ToolPolicy, ToolRegistry, load_entry_point_tools, load_mcp_servers
from evals.online import online_scorer

SELF_RETRYING_PROVIDERS = ("openai:", "openai-chat:", "anthropic:")


def model_config(settings: Settings) -> ModelConfig:
    if not settings.parley_model:
        raise ModelNotConfigured(MISSING_MODEL_HELP)
    return ModelConfig(
        name=settings.parley_model,
        fallbacks=tuple(settings.parley_fallback_models),
        openai_base_url=settings.openai_base_url,
        openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        anthropic_api_key=settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None,
        retries=settings.parley_model_retries,
        breaker_failures=settings.parley_breaker_failures,
        breaker_reset_s=settings.parley_breaker_reset_s,
    )


def model_settings(settings: Settings) -> ModelSettings:
    """Operator model settings, passed to the provider unchanged (seed property 4)."""
    out = ModelSettings(timeout=settings.parley_model_timeout)
    for key, value in (
        ("temperature", settings.parley_temperature),
        ("max_tokens", settings.parley_max_tokens),
        ("top_p", settings.parley_top_p),
        ("presence_penalty", settings.parley_presence_penalty),
        ("frequency_penalty", settings.parley_frequency_penalty),
    ):
        if value is not None:
            out[key] = value  # type: ignore[literal-required]
    if settings.parley_model and settings.parley_model.startswith(SELF_RETRYING_PROVIDERS):
        out["max_retries"] = 0
    return out


def build_registry(settings: Settings) -> ToolRegistry:
    registry = ToolRegistry()
    registry.add_toolset("memory", memory_toolset(lambda deps: ToolScope(pool=deps.pool, user=deps.user)))
    registry.register(builtin.current_datetime, policy=ToolPolicy(timeout_s=2, retries=0))
    registry.register(builtin.calculate, policy=ToolPolicy(timeout_s=2, retries=0))
    allow_private = settings.parley_tools_allow_private

    async def fetch_url(url: str) -> str:
        """Fetch a public web page and return its text.

        Args:
            url: an http(s) URL.
        """
        return await builtin.fetch_url(url, allow_private=allow_private)

    registry.register(fetch_url, policy=ToolPolicy(timeout_s=15, retries=1, rate_per_min=30))
    load_entry_point_tools(registry)
    load_mcp_servers(registry, settings.parley_mcp_servers)
    return registry


@dataclass
class Steps:
    media: MediaStep
    guard: GuardStep
    memory: MemoryStep
    memory_service: MemoryService | None = None
    """The real memory, when wired: it needs starting (warm model) and closing."""
    guard_service: Guard | None = None
    """The real guard, when wired: it is warmed at start (NeMo and the classifier load once)."""


def build_media(settings: Settings, *, voice_format: VoiceFormat = "ogg") -> Media:
    return Media(
        MediaConfig(
            limits=MediaLimits(
                max_file_bytes=int(settings.parley_max_file_mb * 1_000_000),
                max_audio_seconds=settings.parley_max_audio_s,
            ),
            elevenlabs=ElevenLabsConfig(
                api_key=settings.elevenlabs_api_key.get_secret_value(), base_url=settings.elevenlabs_base_url
            )
            if settings.elevenlabs_api_key
            else None,
            voice_format=voice_format,
        )
    )


def build_memory(settings: Settings, pool: asyncpg.Pool) -> MemoryService:
    extractor = (
        agent_extractor(ModelFactory(model_config(settings)).build())
        if settings.parley_fact_extraction and settings.parley_model
        else None
    )
    return MemoryService(
        pool,
        build_embedder(settings.parley_embedding_model),
        MemoryConfig(k=settings.parley_memory_k, retention_days=settings.parley_retention_days),
        extractor=extractor,
    )


def build_guard(settings: Settings, pool: asyncpg.Pool) -> Guard:
    """The offline rails; NeMo's LLM self-check on top when PARLEY_GUARD_LLM=on and a model is set."""
    llm = (
        pydantic_ai_complete(ModelFactory(model_config(settings)).build())
        if settings.parley_guard_llm == "on" and settings.parley_model
        else None
    )
    return Guard(GuardConfig(policy_dir=settings.parley_knowledge_dir, llm=llm), events=pool_sink(pool))


def build_steps(settings: Settings, pool: asyncpg.Pool, *, voice_format: VoiceFormat = "ogg") -> Steps:
    memory = build_memory(settings, pool)
    with startup_phase("guard load"):
        guard = build_guard(settings, pool)
    return Steps(
        media=build_media(settings, voice_format=voice_format),
        guard=guard,
        memory=memory,
        memory_service=memory,
        guard_service=guard,
    )


def build_pipeline(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    steps: Steps | None = None,
    registry: ToolRegistry | None = None,
    services: dict[str, Any] | None = None,
) -> Pipeline:
    model = ModelFactory(model_config(settings)).build() if settings.parley_model else None
    steps = steps or build_steps(settings, pool)
    config = PipelineConfig(
        model_name=settings.parley_model,
        model_settings=model_settings(settings),
        history_messages=settings.parley_history_turns,
        memory_k=settings.parley_memory_k,
        system_prompt=settings.parley_system_prompt,
        rate_user_per_min=settings.parley_rate_user_per_min,
        rate_workspace_per_min=settings.parley_rate_workspace_per_min,
        cache_ttl_s=settings.parley_cache_ttl_s,
        turn_timeout_s=settings.parley_model_timeout * 2 + 30,
        max_concurrent_turns=settings.parley_max_concurrent_turns,
        allow_private_urls=settings.parley_tools_allow_private,
        missing_model_help=MISSING_MODEL_HELP,
    )
    return Pipeline(
        config=config,
        pool=pool,
        model=model,
        registry=registry or build_registry(settings),
        media=steps.media,
        guard=steps.guard,
        memory=steps.memory,
        knowledge=Knowledge(settings.parley_knowledge_dir),
        services=services or {},
    )


@asynccontextmanager
async def started(
    settings: Settings, pool: asyncpg.Pool, steps: Steps, *, maintenance: bool = False, warm_guard: bool = True
) -> AsyncIterator[Pipeline]:
    """A pipeline on an open pool with its steps started; on exit its background work drains.

    With `maintenance`, memory retention and large-scope indexing run periodically (serving processes).
    Without `warm_guard`, the first turn warms the rails itself (a one-shot command has only that turn).
    """
    with startup_phase("pipeline build"):
        pipeline = build_pipeline(settings, pool, steps=steps)
    scorer = online_scorer(settings, pool)
    if scorer is not None:
        pipeline.after_turn = lambda inbound, reply, context: scorer.after_turn(inbound, reply, context=context)
    background: asyncio.Task[None] | None = None
    memory = steps.memory_service
    try:
        if warm_guard and steps.guard_service is not None:
            with startup_phase("guard warm-up"):
                await steps.guard_service.warm()
        if memory is not None:
            with startup_phase("memory warm-up"):
                await memory.start(reembed_in_background=maintenance)
            if maintenance and memory.dimensions:
                background = asyncio.create_task(
                    maintenance_loop(
                        pool,
                        retention_days=settings.parley_retention_days,
                        model=memory.model,
                        dimensions=memory.dimensions,
                        large_scope_rows=memory.config.large_scope_rows,
                    )
                )
        yield pipeline
    finally:
        if background is not None:
            background.cancel()
        if memory is not None:
            await memory.aclose()
        if steps.guard_service is not None:
            steps.guard_service.close()
        if scorer is not None:
            await scorer.drain()
        await pipeline.outbox.drain(timeout=5)


@asynccontextmanager
async def running(
    settings: Settings, *, voice_format: VoiceFormat = "ogg", maintenance: bool = False, warm_guard: bool = True
) -> AsyncIterator[Pipeline]:
    """Open the database (migrating it), start a pipeline, and close everything on exit."""
    pool = await open_pool(settings)
    try:
        steps = build_steps(settings, pool, voice_format=voice_format)
        async with started(settings, pool, steps, maintenance=maintenance, warm_guard=warm_guard) as pipeline:
            yield pipeline
    finally:
        await pool.close()
