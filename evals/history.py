"""Runs in Postgres: saved after every run, read back for trend charts and `--compare`."""

from __future__ import annotations

import json
from enum import StrEnum

import asyncpg

from evals.run import Baseline, EvalRun, TrendPoint

TREND_RUNS = 30


class CompareWith(StrEnum):
    LAST_RELEASE = "last-release"
    LAST = "last"


async def save_run(pool: asyncpg.Pool, run: EvalRun) -> int:
    """Store the run and its per-metric results; return the run id."""
    info = run.info
    async with pool.acquire() as conn, conn.transaction():
        run_id = await conn.fetchval(
            """INSERT INTO eval_runs (suite, model, judge, candidate, release, git_ref, passed, failing,
                                      started_at, finished_at)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10) RETURNING id""",
            info.suite, info.model, info.judge, json.dumps(info.candidate), info.release, info.git_ref,
            run.passed, run.failing, info.started_at, info.finished_at,
        )
        await conn.executemany(
            """INSERT INTO eval_metric_results (run_id, metric, kind, status, score, threshold, direction, cases,
                                                failures, reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            [
                (run_id, m.name, m.kind, m.status, m.score, m.threshold.value, m.threshold.direction,
                 len(m.cases), len(m.failures), m.reason)
                for m in run.metrics
            ],
        )
    return int(run_id)


async def trends(pool: asyncpg.Pool, suite: str, *, limit: int = TREND_RUNS) -> dict[str, list[TrendPoint]]:
    """Each metric's score over the latest `limit` runs of `suite`, oldest first (skipped runs as gaps)."""
    rows = await pool.fetch(
        """SELECT r.id, r.finished_at, r.release, m.metric, m.score
           FROM (SELECT id, finished_at, release FROM eval_runs WHERE suite = $1
                 ORDER BY finished_at DESC, id DESC LIMIT $2) r
           JOIN eval_metric_results m ON m.run_id = r.id
           ORDER BY r.finished_at, r.id""",
        suite,
        limit,
    )
    out: dict[str, list[TrendPoint]] = {}
    for row in rows:
        out.setdefault(row["metric"], []).append(
            TrendPoint(run_id=row["id"], finished_at=row["finished_at"], release=row["release"], score=row["score"])
        )
    return out


async def baseline(pool: asyncpg.Pool, compare: CompareWith, *, suite: str, before: int | None) -> Baseline | None:
    """The latest release run (any suite), or the latest earlier run of the same suite."""
    if compare is CompareWith.LAST_RELEASE:
        row = await pool.fetchrow(
            """SELECT id, release, suite, finished_at FROM eval_runs
               WHERE release IS NOT NULL AND ($1::bigint IS NULL OR id <> $1)
               ORDER BY finished_at DESC, id DESC LIMIT 1""",
            before,
        )
    else:
        row = await pool.fetchrow(
            """SELECT id, release, suite, finished_at FROM eval_runs
               WHERE suite = $1 AND ($2::bigint IS NULL OR id < $2)
               ORDER BY finished_at DESC, id DESC LIMIT 1""",
            suite,
            before,
        )
    if row is None:
        return None
    scores = await pool.fetch("SELECT metric, score FROM eval_metric_results WHERE run_id = $1", row["id"])
    label = f"release {row['release']}" if row["release"] else f"run {row['id']} ({row['suite']})"
    return Baseline(
        run_id=row["id"], label=label, finished_at=row["finished_at"],
        scores={r["metric"]: r["score"] for r in scores},
    )
