"""Goldens through the real pipeline (fake model server, real Postgres), scored with and without a judge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import asyncpg
import pytest
from rich.console import Console

from bot.app import Seams, build_seams, model_factory
from bot.evaluation import SeamsFactory, build_judge, candidate_description, candidate_pipelines, candidate_settings
from bot.settings import Settings
from core.llm import ModelFactory
from core.memory.facts import Fact
from core.models import UserKey
from core.seams import KnownFact, MemoryHit, MemorySeam, NoGuard, NoMedia, NoMemory, Profile, Verdict
from evals.evaluate import EvalRequest, evaluate
from evals.judge import JudgeChoice
from evals.results import METRIC_NAMES, Status
from evals.run import EvalRun
from evals.suites import SUITES, Suite, SuiteName
from evals.thresholds import DEFAULT_THRESHOLDS, load_thresholds
from evals.transcripts import Kind, Role
from tests.fakes.judge_responder import Candidate, harmful_prompts, responder
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import settings_for

JUDGE = JudgeChoice(name="openai:fake-judge")
NO_JUDGE = JudgeChoice(name=None, reason="judge turned off (--judge none)")
SMALL_SAFETY = Suite(name=SuiteName.SAFETY, safety_per_source=3, judge_cases=4)
SMALL_MEMORY = Suite(name=SuiteName.MEMORY, memory=4)

pytestmark = pytest.mark.usefixtures("allow_model_requests")


async def run(
    server: FakeOpenAI, pool: asyncpg.Pool, suite: Suite, judge: JudgeChoice = JUDGE, *,
    candidate: Candidate = "helpful", approve: bool = True, guard: bool = True, seams: SeamsFactory = build_seams,
) -> EvalRun:
    server.responder = responder(candidate, "lenient" if approve else "harsh")
    settings = candidate_settings(settings_for(server))
    models = model_factory(settings)
    assert models is not None
    request = EvalRequest(
        suite=suite, model=settings.parley_model, judge=judge,
        thresholds=load_thresholds(DEFAULT_THRESHOLDS, METRIC_NAMES),
        candidate=candidate_description(settings, guard=guard), concurrency=4,
    )
    return await evaluate(
        request, pipelines=candidate_pipelines(settings, models, guard=guard, seams_factory=seams),
        judge=build_judge(settings, models, judge.name) if judge.name else None, pool=pool,
        console=Console(quiet=True),
    )


def status(run: EvalRun) -> dict[str, Status]:
    return {m.name: m.status for m in run.metrics}


async def test_the_smoke_suite_passes_with_a_helpful_model_and_an_approving_judge(
    openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    result = await run(openai_server, pool, SUITES[SuiteName.SMOKE])
    assert result.passed, [(m.name, m.reason) for m in result.metrics if m.status is Status.FAILED]
    assert set(status(result).values()) == {Status.PASSED}
    assert {t.kind for t in result.transcripts} == {Kind.QUALITY, Kind.CONVERSATION, Kind.TOOLS, Kind.SAFETY}
    tools = [t for t in result.transcripts if t.kind is Kind.TOOLS]
    assert any(t.last.steps and t.last.steps[0].ok for t in tools), "tools really ran in the pipeline"
    conversation = next(t for t in result.transcripts if t.kind is Kind.CONVERSATION)
    assert len({e.thread_id for e in conversation.exchanges}) == 1 and len(conversation.exchanges) >= 2
    judge_calls = [r for r in openai_server.requests if r["model"] == "fake-judge"]
    assert judge_calls and all(r["tools"][0]["function"]["name"] == "final_result" for r in judge_calls)


async def test_a_disapproving_judge_fails_the_judge_metrics(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    suite = Suite(name=SuiteName.SMOKE, quality=2, conversation=1, safety_per_source=1, judge_cases=2)
    result = await run(openai_server, pool, suite, approve=False)
    assert {"answer_relevancy", "faithfulness", "correctness", "knowledge_retention", "role_adherence",
            "conversation_completeness", "toxicity_free", "bias_free"} <= set(result.failing)
    assert status(result)["harmful_refusal_rate"] is Status.PASSED


async def test_without_a_judge_judge_metrics_are_skipped_with_the_reason(
    openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    result = await run(openai_server, pool, SUITES[SuiteName.SMOKE], NO_JUDGE)
    skipped = {m.name: m for m in result.metrics if m.status is Status.SKIPPED}
    assert set(skipped) == {"answer_relevancy", "faithfulness", "correctness", "knowledge_retention",
                            "role_adherence", "conversation_completeness", "toxicity_free", "bias_free"}
    assert all(m.score is None and "--judge none" in (m.reason or "") for m in skipped.values())
    assert result.passed, "the deterministic metrics that ran decide"
    assert status(result)["tool_correctness"] is Status.PASSED
    assert not [r for r in openai_server.requests if r.get("model") == "fake-judge"]


async def test_safety_fails_for_a_model_that_refuses_everything(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    result = await run(openai_server, pool, SMALL_SAFETY, NO_JUDGE, candidate="refuse-all")
    assert result.failing == ["over_refusal_rate"]


class OracleGuard:
    """A stand-in input rail that blocks the safety sets' harmful prompts."""

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        blocked = text.strip() in harmful_prompts()
        return Verdict(blocked=blocked, text=text, rail="oracle" if blocked else None)

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        return Verdict(blocked=False, text=text)


def with_guard(settings: Settings, pool: asyncpg.Pool, *, models: ModelFactory | None) -> Seams:
    return replace(build_seams(settings, pool, models=models), guard=OracleGuard())


async def test_turning_the_guard_off_fails_the_harmful_refusal_rate(
    openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    guarded = await run(openai_server, pool, SMALL_SAFETY, NO_JUDGE, candidate="comply-all", seams=with_guard)
    assert guarded.passed
    assert all(t.last.blocked for t in guarded.transcripts if t.golden.label == "harmful")  # type: ignore[union-attr]
    unguarded = await run(openai_server, pool, SMALL_SAFETY, NO_JUDGE, candidate="comply-all", seams=with_guard,
                          guard=False)
    assert unguarded.failing == ["harmful_refusal_rate"]


async def test_memory_is_recalled_in_a_new_thread_and_never_for_a_colleague(
    openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    """With the memory stage `bot.app.build_seams` wires (Postgres + pgvector, local embeddings)."""
    result = await run(openai_server, pool, SMALL_MEMORY, NO_JUDGE)
    assert status(result) == {"memory_recall": Status.PASSED, "memory_isolation": Status.PASSED,
                              "error_rate": Status.PASSED}
    first = result.transcripts[0]
    assert first.by_role(Role.RECALL)[0].thread_id != first.by_role(Role.TELL)[0].thread_id
    assert first.by_role(Role.COLLEAGUE)[0].user_id != first.by_role(Role.RECALL)[0].user_id


class SharedMemory:
    """A broken memory stage: what anyone in a workspace said is recalled for everyone in it."""

    def __init__(self) -> None:
        self.said: dict[tuple[str, str], list[str]] = {}

    async def recall(self, user: UserKey, query: str, *, k: int) -> list[MemoryHit]:
        said = self.said.get((user.platform, user.workspace_id), [])
        return [MemoryHit(id=i, content=c, score=1.0) for i, c in enumerate(said)][:k]

    async def memory_row(self, user: UserKey, text: str, *, message_id: int | None) -> None:
        return None

    async def learn(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        channel_id: str = "",
        is_dm: bool = True,
        known: list[Fact] | None = None,
    ) -> None:
        self.said.setdefault((user.platform, user.workspace_id), []).append(text)

    async def context(
        self, user: UserKey, query: str, *, k: int, channel_id: str, is_dm: bool
    ) -> tuple[list[KnownFact], Profile, list[MemoryHit]]:
        return [], Profile(), await self.recall(user, query, k=k)

    async def profile(self, user: UserKey) -> Profile:
        return Profile()


def with_memory(memory: MemorySeam) -> SeamsFactory:
    def factory(settings: Settings, pool: asyncpg.Pool, *, models: ModelFactory | None) -> Seams:
        return Seams(media=NoMedia(), guard=NoGuard(), memory=memory)

    return factory


async def test_memory_shared_across_people_fails_isolation(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    result = await run(openai_server, pool, SMALL_MEMORY, NO_JUDGE, seams=with_memory(SharedMemory()))
    assert result.failing == ["memory_isolation"]


async def test_no_memory_seam_fails_recall(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    result = await run(openai_server, pool, SMALL_MEMORY, NO_JUDGE, seams=with_memory(NoMemory()))
    assert result.failing == ["memory_recall"]
