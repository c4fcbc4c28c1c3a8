"""The composition root: settings in, a running pipeline out. The only place that wires things.

A process builds one `ModelFactory` (`running` does, or the caller passes its own) and hands it to
everything that calls a model: turns, fact extraction, the guard's LLM, the judge. So each provider
has one circuit breaker and one HTTP pool per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from pydantic_ai.settings import ModelSettings

from bot.database import APPLICATION_NAME, app_database_uri, maintenance_database_uri
from bot.local_model import (
    answers_with_demo_model,
    gguf_path,
    local_name,
    local_server,
    model_names,
    model_notice,
    with_default_model,
)
from bot.settings import MISSING_MODEL_HELP, Settings
from core.embeddings import one_thread_per_native_pool
from core.guard.events import pool_sink
from core.guard.guard import Guard
from core.guard.llm import pydantic_ai_complete
from core.guard.settings import GuardConfig
from core.knowledge import Knowledge
from core.llm import ModelConfig, ModelFactory, ModelNotConfigured
from core.media import ElevenLabsConfig, Media, MediaConfig, MediaLimits
from core.media.config import VoiceFormat
from core.memory.embedding_backend import build_embedder
from core.memory.extraction import model_extractor
from core.memory.retention import maintenance_loop
from core.memory.service import MemoryConfig, MemoryService
from core.memory.tools import ToolScope, memory_toolset
from core.pipeline import Pipeline, PipelineConfig
from core.seams import GuardSeam, MediaSeam, MemorySeam
from core.store.instance import Instance
from core.store.pool import create_pool
from core.telemetry import startup_phase
from core.tools import builtin
from core.tools.registry import ToolPolicy, ToolRegistry, load_entry_point_tools, load_mcp_servers
from evals.online import OnlineScorer

log = logging.getLogger("parley.app")

LEARNING_GRACE_S = 15.0
"""How long a command that is not serving waits at exit for background learning of its last messages."""


def model_config(settings: Settings, *, local_base_url: str | None = None) -> ModelConfig:
    if not settings.parley_model:
        raise ModelNotConfigured(MISSING_MODEL_HELP)
    return ModelConfig(
        name=settings.parley_model,
        fallbacks=tuple(settings.parley_fallback_models),
        openai_base_url=settings.openai_base_url,
        openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        anthropic_api_key=settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None,
        local_base_url=local_base_url,
        retries=settings.parley_model_retries,
        breaker_failures=settings.parley_breaker_failures,
        breaker_reset_s=settings.parley_breaker_reset_s,
    )


def model_factory(settings: Settings, *, local_base_url: str | None = None) -> ModelFactory | None:
    """A factory for the configured models, or None when no model is configured."""
    return ModelFactory(model_config(settings, local_base_url=local_base_url)) if settings.parley_model else None


@asynccontextmanager
async def models_for(settings: Settings, *, also: Sequence[str] = ()) -> AsyncIterator[ModelFactory | None]:
    """The process's one `ModelFactory`; when a model (or one named in `also`, such as the judge) is the
    local one, its server runs until exit. `settings` must name the model used (`with_default_model`)."""
    local = local_name([*model_names(settings), *also])
    if local is None:
        async with _closing(model_factory(settings)) as factory:
            yield factory
        return
    log_file = settings.parley_data_dir / "local-model.log"
    async with local_server(gguf_path(local), log_file=log_file) as base_url, _closing(
        model_factory(settings, local_base_url=base_url)
    ) as factory:
        yield factory


@asynccontextmanager
async def _closing(factory: ModelFactory | None) -> AsyncIterator[ModelFactory | None]:
    """`factory`, its HTTP pools closed on the way out."""
    try:
        yield factory
    finally:
        if factory is not None:
            await factory.aclose()


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
class Seams:
    media: MediaSeam
    guard: GuardSeam
    memory: MemorySeam
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


def build_memory(settings: Settings, pool: asyncpg.Pool, models: ModelFactory | None) -> MemoryService:
    """The memory service; facts are extracted by the model unless extraction is off or the model is the
    small local demo model or `test` (one fixed sentence), neither of which gives structured output: every
    extraction failed (the demo model after seconds of CPU that a one-shot chat waited for at exit, `test` with
    a warning in the newcomer's terminal), and the rules learned the message anyway."""
    structured = not answers_with_demo_model(settings) and settings.parley_model != "test"
    wanted = settings.parley_fact_extraction and structured
    extractor = model_extractor(models.build()) if wanted and models else None
    return MemoryService(
        pool,
        build_embedder(settings.parley_embedding_model),
        MemoryConfig(k=settings.parley_memory_k, retention_days=settings.parley_retention_days),
        extractor=extractor,
    )


def build_guard(settings: Settings, pool: asyncpg.Pool, models: ModelFactory | None) -> Guard:
    """The offline rails; with a model, NeMo's self-check on grey-zone scores (PARLEY_GUARD_LLM=auto)
    or on everything (on). `auto` leaves the small local demo model out: it cannot judge safety."""
    mode = settings.parley_guard_llm
    wanted = mode == "on" or (mode == "auto" and not answers_with_demo_model(settings))
    llm = pydantic_ai_complete(models.build()) if wanted and models else None
    return Guard(
        GuardConfig(policy_dir=settings.parley_knowledge_dir, llm=llm, llm_mode="on" if mode == "on" else "auto"),
        events=pool_sink(pool),
    )


def build_seams(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    models: ModelFactory | None,
    voice_format: VoiceFormat = "ogg",
) -> Seams:
    """The real media, guard and memory seams; `models` is the process's one factory (None: no model)."""
    memory = build_memory(settings, pool, models)
    with startup_phase("guard load"):
        guard = build_guard(settings, pool, models)
    return Seams(
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
    models: ModelFactory | None,
    seams: Seams | None = None,
    registry: ToolRegistry | None = None,
) -> Pipeline:
    """A pipeline on `pool`; `models` is the process's one factory (None: no model is configured)."""
    model = models.build() if models else None
    seams = seams or build_seams(settings, pool, models=models)
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
        model_notice=model_notice(settings),
    )
    return Pipeline(
        config=config,
        pool=pool,
        model=model,
        registry=registry or build_registry(settings),
        media=seams.media,
        guard=seams.guard,
        memory=seams.memory,
        knowledge=Knowledge(settings.parley_knowledge_dir),
        models=models,
    )


def build_online_scorer(settings: Settings, pool: asyncpg.Pool, models: ModelFactory | None) -> OnlineScorer | None:
    """Online scoring (PARLEY_ONLINE_EVAL_FRACTION > 0) with the judge on the process's factory."""
    if settings.parley_online_eval_fraction <= 0:
        return None
    # DeepEval (seconds to import) is loaded only when online scoring is on.
    from bot.evaluation import build_judge
    from evals.judge import choose_judge

    choice = choose_judge(None, judge_model=settings.parley_judge_model, model=settings.parley_model)
    if choice.name is None or models is None:
        log.warning("online scoring is on but %s", choice.reason or "no model is configured")
        return None
    fraction = min(1.0, settings.parley_online_eval_fraction)
    return OnlineScorer(pool, build_judge(settings, models, choice.name), fraction=fraction)


@asynccontextmanager
async def started(
    settings: Settings,
    pool: asyncpg.Pool,
    seams: Seams,
    *,
    models: ModelFactory | None,
    maintenance: bool = False,
    owner_pool: asyncpg.Pool | None = None,
    warm_guard: bool = True,
) -> AsyncIterator[Pipeline]:
    """A pipeline on an open pool with its seams started; on exit its background work drains.

    With `maintenance`, memory retention and large-scope indexing run every PARLEY_MAINTENANCE_EVERY_S
    (serving processes), on `owner_pool` when given: they work across tenants and build indexes, which
    only the memory tables' owner may (the `parley_maintenance` role in a serving process).
    Without `warm_guard`, the first turn warms the rails itself (a one-shot command has only that turn).
    """
    with startup_phase("pipeline build"):
        pipeline = build_pipeline(settings, pool, models=models, seams=seams)
    scorer = build_online_scorer(settings, pool, models)
    if scorer is not None:
        pipeline.after_turn = lambda inbound, reply, context: scorer.after_turn(inbound, reply, context=context)
    background: asyncio.Task[None] | None = None
    memory = seams.memory_service
    try:
        if warm_guard and seams.guard_service is not None:
            with startup_phase("guard warm-up"):
                await seams.guard_service.warm()
        if memory is not None:
            with startup_phase("memory warm-up"):
                await memory.start(reembed_in_background=maintenance, owner_pool=owner_pool)
            if maintenance and memory.dimensions:
                background = asyncio.create_task(
                    maintenance_loop(
                        owner_pool or pool,
                        retention_days=settings.parley_retention_days,
                        model=memory.model,
                        dimensions=memory.dimensions,
                        large_scope_rows=memory.config.large_scope_rows,
                        every=timedelta(seconds=settings.parley_maintenance_every_s),
                    )
                )
        one_thread_per_native_pool()
        yield pipeline
    finally:
        if background is not None:
            background.cancel()
        if memory is not None:
            if not maintenance:
                await finish_learning(memory)
            await memory.aclose()
        if seams.guard_service is not None:
            seams.guard_service.close()
        if scorer is not None:
            await scorer.drain()
        await pipeline.outbox.drain(timeout=5)


async def finish_learning(memory: MemoryService, *, timeout_s: float = LEARNING_GRACE_S) -> None:
    """Let the last messages' background learning finish before a command exits: `parley chat -m "Hi,
    I'm Sam"` (or /exit right after saying it) would otherwise cancel it and learn nothing. Bounded,
    because an extraction model that hangs must not hold the terminal."""
    try:
        await asyncio.wait_for(memory.drain(), timeout_s)
    except TimeoutError:
        log.warning("memory: learning still running after %.0f s at exit; the rest of it is dropped", timeout_s)


@asynccontextmanager
async def running(
    settings: Settings, *, voice_format: VoiceFormat = "ogg", maintenance: bool = False, warm_guard: bool = True
) -> AsyncIterator[Pipeline]:
    """Open the database (migrating it) as the app role, start the model (the local one in its own
    process) and a pipeline, and close everything on exit. Without PARLEY_MODEL the local demo model
    answers when it is installed and no provider key is set.

    The process holds its instance lock for its life (exactly-once replies across crashes)."""
    settings = with_default_model(settings)
    async with models_for(settings) as models:
        uri = await app_database_uri(settings)
        pool = await create_pool(uri, application_name=APPLICATION_NAME)
        # Memory maintenance connects as `parley_maintenance` (no superuser; it owns the memory tables
        # and nothing else), only while a round runs, never for a turn.
        maintenance_pool = await create_pool(
            await maintenance_database_uri(settings),
            min_size=0,
            max_size=1,
            application_name=APPLICATION_NAME,
            idle_close_s=5,
        )
        instance = await Instance(uri, application_name=APPLICATION_NAME).start()
        try:
            seams = build_seams(settings, pool, models=models, voice_format=voice_format)
            async with started(
                settings, pool, seams, models=models, maintenance=maintenance, owner_pool=maintenance_pool,
                warm_guard=warm_guard,
            ) as pipeline:
                pipeline.instance = instance
                yield pipeline
        finally:
            await instance.close()
            await maintenance_pool.close()
            await pool.close()
