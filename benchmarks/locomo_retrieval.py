"""LoCoMo evidence recall@k of Parley's memory store.

For each LoCoMo conversation, every dialog turn (with its image caption) is stored through the real
`MemoryService` as a memory of one person, one session per thread, dated when its session took
place; each question of categories 1-4 is then recalled (the clock a day after the last session),
and the share of its evidence turns found in the top k is averaged, overall and per category,
separately for the development conversations (`--dev`, the ones tuned on) and the unseen rest.
Runs on a throwaway embedded Postgres unless --database-url is given (with --reuse, conversations
already stored there are not embedded again).

    python benchmarks/locomo_retrieval.py --data locomo10.json --k 5 10 25 50 --json
    python benchmarks/locomo_retrieval.py --data locomo10.json --set weights.when=0 --only unseen

The LoCoMo data is CC BY-NC 4.0: it is read from --data, never copied into the project.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import offline_environment, summary_ms

offline_environment()

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import Progress

from core.guard.masking import scrub
from core.memory.embedding_backend import DEFAULT_EMBEDDING_MODEL, build_embedder
from core.memory.scope import person_scope
from core.memory.service import MemoryConfig, MemoryService
from core.memory.store import find_by_content
from core.models import UserKey
from core.store.migrations import migrate
from core.store.pool import create_pool

CATEGORIES = ("1", "2", "3", "4")
DEV_CONVERSATIONS = ("conv-26", "conv-30")
_SESSION = re.compile(r"^session_(\d+)$")
REUSE_TAG = "reuse"
"""The run tag of conversations kept across runs (`--reuse`), which `locomo_replay.py` reads too."""
_SESSION_DATE = "%I:%M %p on %d %B, %Y"
"""LoCoMo's `session_N_date_time`, e.g. "1:56 pm on 8 May, 2023"."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Turn:
    dia_id: str
    session: int
    text: str
    said_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Question:
    text: str
    category: str
    evidence: tuple[str, ...]


def turns_of(conversation: dict[str, Any]) -> Iterator[Turn]:
    """Dialog turns in order; the image caption is part of the turn's text."""
    sessions = sorted(
        (int(m.group(1)), value)
        for key, value in conversation.items()
        if (m := _SESSION.match(key)) and isinstance(value, list)
    )
    for number, turns in sessions:
        started = session_date(conversation.get(f"session_{number}_date_time"))
        for i, t in enumerate(turns):
            text = f"{t['speaker']}: {t['text']}"
            if t.get("blip_caption"):
                text += f" [shares an image: {t['blip_caption']}]"
            said_at = None if started is None else started + timedelta(seconds=30 * i)
            yield Turn(dia_id=str(t["dia_id"]).strip(), session=number, text=text, said_at=said_at)


def session_date(value: object) -> datetime | None:
    """When a session took place (UTC), None when it is missing or unreadable."""
    try:
        return datetime.strptime(str(value).strip(), _SESSION_DATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def asked_after(turns: Sequence[Turn]) -> Callable[[], datetime]:
    """The clock of the questions: a day after the last session (now, for undated conversations)."""
    last = max((t.said_at for t in turns if t.said_at is not None), default=None)
    asked = datetime.now(UTC) if last is None else last + timedelta(days=1)
    return lambda: asked


def with_overrides(config: MemoryConfig, assignments: Sequence[str]) -> MemoryConfig:
    """`config` with `name=value` (or `weights.name=value`) numbers replaced, for ablations."""
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if name.startswith("weights."):
            weights = dataclasses.replace(config.weights, **{name.removeprefix("weights."): float(value)})
            config = dataclasses.replace(config, weights=weights)
        else:
            current = getattr(config, name)
            config = dataclasses.replace(config, **{name: type(current)(value)})
    return config


def questions_of(sample: dict[str, Any]) -> Iterator[Question]:
    for qa in sample["qa"]:
        category = str(qa.get("category"))
        if category in CATEGORIES:
            evidence = tuple(e.strip() for item in qa.get("evidence", []) for e in re.split(r"[;,]", str(item)))
            yield Question(text=str(qa["question"]), category=category, evidence=tuple(e for e in evidence if e))


def evidence_recall(ranked: Sequence[set[str]], evidence: Sequence[str], k: int) -> float:
    """Share of `evidence` among the turn ids of the first k results."""
    found: set[str] = set().union(*ranked[:k]) if ranked else set()
    return sum(e in found for e in evidence) / len(evidence)


@dataclass(kw_only=True)
class Tally:
    """Recall of one group of conversations, per k and per category."""

    ks: Sequence[int]
    per_k: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    per_cat: dict[str, dict[int, list[float]]] = dataclasses.field(default_factory=dict)
    conversations: list[str] = dataclasses.field(default_factory=list)

    def add(self, category: str, recalls: dict[int, float]) -> None:
        for k, r in recalls.items():
            self.per_k.setdefault(k, []).append(r)
            self.per_cat.setdefault(category, {}).setdefault(k, []).append(r)

    def summary(self) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return round(statistics.fmean(values), 4) if values else None

        return {
            "conversations": self.conversations,
            "questions": len(self.per_k.get(self.ks[0], [])),
            "recall": {str(k): mean(self.per_k.get(k, [])) for k in self.ks},
            "per_category": {
                c: {str(k): mean(self.per_cat.get(c, {}).get(k, [])) for k in self.ks} for c in CATEGORIES
            },
        }


async def run(args: argparse.Namespace, ks: Sequence[int]) -> dict[str, Any]:
    dev = set(args.dev.split(",")) if args.dev else set()
    samples = [
        s
        for s in json.loads(args.data.read_text())
        if args.only == "all" or (str(s.get("sample_id")) in dev) == (args.only == "dev")
    ]
    uri = args.database_url or _throwaway_database()
    await migrate(uri)
    pool = await create_pool(uri, max_size=4)
    config = with_overrides(MemoryConfig(), args.set)
    service = MemoryService(pool, build_embedder(args.embedding_model), config)
    await service.start(reembed_in_background=False)
    max_k = max(ks)
    groups = {"dev": Tally(ks=ks), "unseen": Tally(ks=ks)}
    latencies: list[float] = []
    skipped_ids = skipped_questions = 0
    run_tag = REUSE_TAG if args.reuse else f"{time.time_ns()}"
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        for sample in samples:
            sample_id = str(sample.get("sample_id", len(latencies)))
            tally = groups["dev" if sample_id in dev else "unseen"]
            tally.conversations.append(sample_id)
            user = conversation_user(sample_id, run_tag)
            turns = list(turns_of(sample["conversation"]))
            turn_ids = {t.dia_id for t in turns}
            by_memory = await store_turns(service, user, turns, progress, sample_id)
            service.clock = asked_after(turns)
            questions = list(questions_of(sample))
            asking = progress.add_task(f"{sample_id}: recalling", total=len(questions))
            for q in questions:
                progress.advance(asking)
                evidence = [e for e in q.evidence if e in turn_ids]
                skipped_ids += len(q.evidence) - len(evidence)
                if not evidence:
                    skipped_questions += 1
                    continue
                started = time.perf_counter()
                hits = await service.recall(user, q.text, k=max_k)
                latencies.append((time.perf_counter() - started) * 1000)
                ranked = [by_memory.get(h.id, set()) for h in hits]
                tally.add(q.category, {k: evidence_recall(ranked, evidence, k) for k in ks})
    await pool.close()
    return {
        **{name: tally.summary() for name, tally in groups.items() if tally.conversations},
        "config": args.set,
        "latency_ms": {k: summary_ms(latencies)[f"{k}_ms"] for k in ("p50", "p95")},
        "skipped_evidence_ids": skipped_ids,
        "skipped_questions": skipped_questions,
        "embedding_model": service.model,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }


def conversation_user(sample_id: str, run_tag: str) -> UserKey:
    """The one person whose memories hold a conversation's turns in the run tagged `run_tag`."""
    return UserKey(platform="eval", workspace_id=f"locomo-{run_tag}-{sample_id}", user_id="locomo")


async def store_turns(
    service: MemoryService, user: UserKey, turns: Sequence[Turn], progress: Progress, sample_id: str
) -> dict[int, set[str]]:
    """Store the turns as the person's memories; return which turns each memory holds. Turns already
    stored (a reused database) are looked up instead of embedded again."""
    by_memory: dict[int, set[str]] = {}
    storing = progress.add_task(f"{sample_id}: storing turns", total=len(turns))
    for turn in turns:
        async with person_scope(service.pool, user) as conn:
            memory_id = await find_by_content(conn, user, scrub(turn.text).strip())
        if memory_id is None:
            memory_id = await service.store(
                user, turn.text, thread_id=f"session-{turn.session}", said_at=turn.said_at
            )
        if memory_id is not None:
            by_memory.setdefault(memory_id, set()).add(turn.dia_id)
        progress.advance(storing)
    return by_memory


def _throwaway_database() -> str:
    """An embedded Postgres in a fresh short temp folder, deleted when this process exits."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="lb", dir="/tmp"))
    server = pgserver.get_server(folder / "pg", cleanup_mode="delete")
    uri: str = server.get_uri()
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="LoCoMo JSON (a list of conversations)")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 25, 50])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--database-url", default=None, help="use this Postgres instead of a throwaway one")
    parser.add_argument("--embedding-model", default=DEFAULT_EMBEDDING_MODEL)
    parser.add_argument(
        "--dev",
        default=",".join(DEV_CONVERSATIONS),
        help="comma-separated sample ids tuned on, reported apart from the unseen rest",
    )
    parser.add_argument("--only", choices=("all", "dev", "unseen"), default="all")
    parser.add_argument("--reuse", action="store_true", help="keep the stored conversations across runs")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a MemoryConfig number"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args, sorted(set(args.k))))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
