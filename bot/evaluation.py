"""Wiring for the evaluation suite: the candidate's settings and pipelines, and the judge, on the
process's one `ModelFactory`. `evals/` receives these; it never reads settings itself."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from bot.app import Seams, build_seams, started
from bot.settings import Settings
from core.llm import ModelFactory
from core.pipeline import Pipeline
from core.seams import NoGuard
from evals.evaluate import PipelineFactory
from evals.judge import JUDGE_MAX_TOKENS, PydanticAIJudge, judge_settings

SeamsFactory = Callable[..., Seams]


def candidate_settings(settings: Settings, *, model: str | None = None) -> Settings:
    """The settings of the candidate under test: the operator's, with limits that suit a batch run.

    Rate limits are lifted (a suite sends hundreds of turns), the response cache and the operator's
    static knowledge are off (answers must come from the goldens), and private addresses may be
    fetched (tool goldens read pages from a local server).
    """
    update: dict[str, Any] = {
        "parley_rate_user_per_min": 1_000_000,
        "parley_rate_workspace_per_min": 1_000_000,
        "parley_cache_ttl_s": 0,
        "parley_knowledge_dir": None,
        "parley_tools_allow_private": True,
    }
    if model:
        update["parley_model"] = model
    return settings.model_copy(update=update)


def candidate_description(settings: Settings, *, guard: bool) -> dict[str, Any]:
    """What besides the model defines the candidate; a custom system prompt is named by its hash."""
    out: dict[str, Any] = {"guard": "on" if guard else "off"}
    if settings.parley_system_prompt:
        out["system_prompt_sha256"] = hashlib.sha256(settings.parley_system_prompt.encode()).hexdigest()[:12]
    return out


def candidate_pipelines(
    settings: Settings,
    models: ModelFactory | None,
    *,
    guard: bool = True,
    seams_factory: SeamsFactory = build_seams,
) -> PipelineFactory:
    """The candidate's pipeline as production wires it (memory warmed, background work drained on exit);
    with `guard` False, the input and output rails are pass-throughs."""

    @asynccontextmanager
    async def pipelines(pool: asyncpg.Pool) -> AsyncIterator[Pipeline]:
        seams = seams_factory(settings, pool, models=models)
        if not guard:
            seams = replace(seams, guard=NoGuard())
        async with started(settings, pool, seams, models=models) as pipeline:
            yield pipeline

    return pipelines


def build_judge(
    settings: Settings, models: ModelFactory, name: str, *, max_tokens: int | None = None
) -> PydanticAIJudge:
    """A judge on model `name`, built by the process's factory (its keys, base URLs, breakers, pools)."""
    bounded = judge_settings(settings.parley_model_timeout, max_tokens or JUDGE_MAX_TOKENS)
    return PydanticAIJudge(models.build(name), name=name, settings=bounded)
