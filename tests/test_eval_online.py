"""Online scoring (property 35): sampled live turns are judged in the background and stored with the turn."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import build_online_scorer, model_factory
from bot.evaluation import build_judge
from core.models import Reply
from evals.judge import Unavailable
from evals.online import OnlineScorer, daily_scores, sample_of
from tests.fakes.judge_responder import responder
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.pipeline_helpers import build_pipeline, message, settings_for

SINCE = datetime(2000, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("allow_model_requests")


def scorer(server: FakeOpenAI, pool: asyncpg.Pool, fraction: float = 1.0) -> OnlineScorer:
    settings = settings_for(server)
    models = model_factory(settings)
    assert models is not None
    judge = build_judge(settings, models, "openai:fake-judge")
    return OnlineScorer(pool, judge, fraction=fraction, rng=random.Random(7))


async def scores_of(pool: asyncpg.Pool, turn_id: int) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM turn_scores WHERE turn_id = $1", turn_id)
    return {r["metric"]: r for r in rows}


async def test_a_sampled_turn_is_scored_in_the_background_and_stored_with_it(
    openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    openai_server.responder = responder()
    pipeline = build_pipeline(settings_for(openai_server), pool)
    inbound = message("How do I rename a git branch? my email is sam@example.com")
    reply = await pipeline.run(inbound)
    assert reply.turn_id is not None
    online = scorer(openai_server, pool)
    openai_server.delay = 0.3
    started = time.perf_counter()
    assert online.after_turn(inbound, reply, context=["git branch -m renames a branch"])
    assert time.perf_counter() - started < 0.2, "scoring never delays the reply (the judge takes ≥ 0.9 s)"
    await online.drain()
    stored = await scores_of(pool, reply.turn_id)
    assert set(stored) == {"answer_relevancy", "faithfulness"}
    assert stored["answer_relevancy"]["score"] == 1.0 and stored["answer_relevancy"]["user_id"] == "U1"
    judged = " ".join(str(r["messages"]) for r in openai_server.requests if r["model"] == "fake-judge")
    assert "sam@example.com" not in judged and "[EMAIL]" in judged
    assert any(d.metric == "answer_relevancy" and d.turns >= 1 for d in await daily_scores(pool, SINCE))


@given(st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=2**32))
def test_p35_the_configured_fraction_of_turns_is_scored(fraction: float, seed: int) -> None:
    online = OnlineScorer(None, Unavailable("unused"), fraction=fraction, rng=random.Random(seed))  # type: ignore[arg-type]
    picked = sum(online.picks() for _ in range(1000)) / 1000
    assert abs(picked - fraction) < 0.08
    if fraction == 0.0:
        assert not online.after_turn(message("hi"), Reply(text="hello", thread_id="T1", turn_id=1))


def test_blocked_failed_or_duplicate_turns_are_not_scored() -> None:
    inbound = message("hi")
    answered = Reply(text="hello", thread_id="T1", turn_id=1)
    assert sample_of(inbound, answered, ()) is not None
    for reply in (replace(answered, blocked=True), replace(answered, error="timeout"),
                  replace(answered, duplicate=True), replace(answered, turn_id=None), replace(answered, text=" ")):
        assert sample_of(inbound, reply, ()) is None


async def test_a_judge_failure_is_stored_as_an_error_not_a_score(openai_server: FakeOpenAI, pool: asyncpg.Pool) -> None:
    openai_server.responder = responder()
    pipeline = build_pipeline(settings_for(openai_server), pool)
    inbound = message("What's the capital of Australia?")
    reply = await pipeline.run(inbound)
    assert reply.turn_id is not None
    openai_server.responder = lambda body: Text("not json at all")
    online = scorer(openai_server, pool)
    assert online.after_turn(inbound, reply)
    await online.drain()
    stored = await scores_of(pool, reply.turn_id)
    assert stored["answer_relevancy"]["score"] is None and stored["answer_relevancy"]["error"]


def test_online_scoring_is_off_unless_a_fraction_is_configured(openai_server: FakeOpenAI) -> None:
    off = settings_for(openai_server)
    assert build_online_scorer(off, pool=None, models=model_factory(off)) is None  # type: ignore[arg-type]
    sampled = settings_for(openai_server, parley_online_eval_fraction=0.1)
    on = build_online_scorer(sampled, pool=None, models=model_factory(sampled))  # type: ignore[arg-type]
    assert on is not None and on.fraction == 0.1

