"""Online scoring (seed property 35): a sampled fraction of live turns is judged in the background.

`OnlineScorer.after_turn` returns at once; the judging runs as a task of its own and its scores
(answer relevancy, and faithfulness when the turn had context) are stored with the turn in
`turn_scores`. A judge failure is stored as an error and logged; nothing reaches the person.
Everything sent to the judge is masked first. `bot/` builds the scorer, with the process's judge,
only when scoring is on (DeepEval takes seconds to import).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import asyncpg

from core.guard.masking import scrub
from core.models import Inbound, Reply
from core.store.tenancy import scoped
from evals.results import CaseScore

if TYPE_CHECKING:
    from deepeval.models import DeepEvalBaseLLM

log = logging.getLogger("parley.evals.online")
MAX_PENDING = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """What is judged of one turn, already masked."""

    turn_id: int
    platform: str
    workspace_id: str
    user_id: str
    question: str
    answer: str
    context: tuple[str, ...]


def sample_of(inbound: Inbound, reply: Reply, context: Sequence[str]) -> Sample | None:
    """The masked sample of an answered turn; None for turns there is nothing to judge in."""
    if reply.turn_id is None or reply.error or reply.blocked or reply.duplicate or not reply.text.strip():
        return None
    return Sample(
        turn_id=reply.turn_id,
        platform=inbound.platform,
        workspace_id=inbound.workspace_id,
        user_id=inbound.user_id,
        question=scrub(inbound.text),
        answer=scrub(reply.text),
        context=tuple(scrub(c) for c in context if c.strip()),
    )


class OnlineScorer:
    """Judges a random `fraction` of turns in the background, at most `max_pending` at a time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        judge: DeepEvalBaseLLM,
        *,
        fraction: float,
        max_pending: int = MAX_PENDING,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.judge = judge
        self.fraction = fraction
        self.max_pending = max_pending
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def after_turn(self, inbound: Inbound, reply: Reply, *, context: Sequence[str] = ()) -> bool:
        """Maybe judge this turn; returns at once, True when it was picked. Call after the turn is stored."""
        sample = sample_of(inbound, reply, context)
        if sample is None or not self.picks():
            return False
        if len(self._tasks) >= self.max_pending:
            log.warning("online scoring is behind; turn %s not scored", sample.turn_id)
            return False
        task = asyncio.get_running_loop().create_task(self._score(sample), name=f"online-score-{sample.turn_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def picks(self) -> bool:
        """One draw: True with probability `fraction`."""
        return self.rng.random() < self.fraction

    async def drain(self) -> None:
        """Wait for the scoring in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _score(self, sample: Sample) -> None:
        try:
            scores = await score_sample(sample, self.judge)
            await store_scores(self.pool, sample, scores, judge=self.judge.get_model_name())
        except Exception:
            log.exception("online scoring of turn %s failed", sample.turn_id)


async def score_sample(sample: Sample, judge: DeepEvalBaseLLM) -> dict[str, CaseScore]:
    """Answer relevancy always; faithfulness when the turn had context (memories, attachments)."""
    from deepeval.metrics import AnswerRelevancyMetric, FaithfulnessMetric
    from deepeval.test_case import LLMTestCase

    from evals.metrics import measure

    case = LLMTestCase(
        input=sample.question, actual_output=sample.answer, retrieval_context=list(sample.context) or None
    )
    jobs = {"answer_relevancy": measure(AnswerRelevancyMetric(model=judge), case, str(sample.turn_id))}
    if sample.context:
        jobs["faithfulness"] = measure(FaithfulnessMetric(model=judge), case, str(sample.turn_id))
    results = await asyncio.gather(*jobs.values())
    return dict(zip(jobs, results, strict=True))


async def store_scores(pool: asyncpg.Pool, sample: Sample, scores: dict[str, CaseScore], *, judge: str) -> None:
    await scoped(pool, sample).executemany(
        """INSERT INTO turn_scores (turn_id, platform, workspace_id, user_id, metric, score, reason, error, judge)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (platform, workspace_id, turn_id, metric) DO UPDATE
           SET score = EXCLUDED.score, reason = EXCLUDED.reason, error = EXCLUDED.error, judge = EXCLUDED.judge,
               created_at = now()""",
        [
            (sample.turn_id, sample.platform, sample.workspace_id, sample.user_id, metric, s.score,
             scrub(s.reason) if s.reason else None, s.error, judge)
            for metric, s in scores.items()
        ],
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class DailyScore:
    day: date
    metric: str
    turns: int
    mean: float | None
    errors: int


async def daily_scores(pool: asyncpg.Pool, since: datetime) -> list[DailyScore]:
    """Online scores per day and metric, for `parley eval online`."""
    rows = await pool.fetch(
        """SELECT created_at::date AS day, metric, count(*) AS turns, avg(score) AS mean,
                  count(*) FILTER (WHERE error IS NOT NULL) AS errors
           FROM turn_scores WHERE created_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2""",
        since,
    )
    return [
        DailyScore(day=r["day"], metric=r["metric"], turns=r["turns"],
                   mean=float(r["mean"]) if r["mean"] is not None else None, errors=r["errors"])
        for r in rows
    ]
