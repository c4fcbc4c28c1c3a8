"""👎-rated turns become candidate goldens for review (`parley eval harvest`).

Everything taken from a conversation is masked with the same detectors as the rails
(`core.guard.masking.scrub`), and no user id is written out: a candidate names its turn and
workspace so a reviewer can look it up, nothing more.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict

from core.guard.masking import scrub

THREAD_BEFORE = 6
"""Earlier messages of the thread kept for the reviewer's context."""


class Said(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    content: str


class Review(BaseModel):
    """Where the candidate came from and what went wrong; delete it once the golden is written."""

    model_config = ConfigDict(frozen=True)

    turn_id: int
    platform: str
    workspace_id: str
    rated_at: datetime
    downvotes: int
    bad_output: str
    thread_before: list[Said]


class Candidate(BaseModel):
    """A quality golden waiting for a reviewer to write `expected_output`."""

    model_config = ConfigDict(frozen=True)

    id: str
    input: str
    expected_output: str | None = None
    tags: list[str]
    review: Review


async def harvest(pool: asyncpg.Pool, since: datetime) -> list[Candidate]:
    """Every turn rated 👎 since `since` that has a stored question and reply, oldest rating first."""
    rated = await pool.fetch(
        """SELECT t.id, t.platform, t.workspace_id, t.channel_id, t.thread_id,
                  max(f.created_at) AS rated_at, count(*) AS downvotes
           FROM feedback f
           JOIN turns t ON t.platform = f.platform AND t.workspace_id = f.workspace_id AND t.id = f.turn_id
           WHERE f.score = -1 AND f.created_at >= $1
           GROUP BY t.platform, t.workspace_id, t.id ORDER BY rated_at, t.id""",
        since,
    )
    out: list[Candidate] = []
    for turn in rated:
        said = {
            r["role"]: r
            for r in await pool.fetch(
                "SELECT id, role, content FROM messages WHERE turn_id = $1 ORDER BY id", turn["id"]
            )
        }
        if "user" not in said or "assistant" not in said:
            continue
        before = await pool.fetch(
            """SELECT role, content FROM messages
               WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND thread_id = $4 AND id < $5
               ORDER BY id DESC LIMIT $6""",
            turn["platform"], turn["workspace_id"], turn["channel_id"], turn["thread_id"], said["user"]["id"],
            THREAD_BEFORE,
        )
        out.append(
            Candidate(
                id=f"harvest-{turn['platform']}-{turn['id']}",
                input=scrub(said["user"]["content"]),
                tags=["harvested", "needs-review"],
                review=Review(
                    turn_id=turn["id"],
                    platform=turn["platform"],
                    workspace_id=turn["workspace_id"],
                    rated_at=turn["rated_at"],
                    downvotes=turn["downvotes"],
                    bad_output=scrub(said["assistant"]["content"]),
                    thread_before=[Said(role=r["role"], content=scrub(r["content"])) for r in reversed(before)],
                ),
            )
        )
    return out


def to_jsonl(candidates: list[Candidate]) -> str:
    return "".join(c.model_dump_json() + "\n" for c in candidates)
