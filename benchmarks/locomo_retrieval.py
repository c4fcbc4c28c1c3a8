"""LoCoMo evidence recall@k of Parley's memory store.

For each LoCoMo conversation, every dialog turn (with its image caption) is stored through the real
`MemoryService` as a memory of one person, one session per thread; each question of categories 1-4
is then recalled, and the share of its evidence turns found in the top k is averaged, overall and
per category. Runs on a throwaway embedded Postgres unless --database-url is given.

    python benchmarks/locomo_retrieval.py --data ../shared/datasets/locomo_dev.json --k 5 10 25 50 --json

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
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import Progress

from core.memory.embedding import DEFAULT_EMBEDDING_MODEL, build_embedder
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.store.migrations import migrate
from core.store.pool import create_pool

CATEGORIES = ("1", "2", "3", "4")
_SESSION = re.compile(r"^session_(\d+)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Turn:
    dia_id: str
    session: int
    text: str


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
        for t in turns:
            text = f"{t['speaker']}: {t['text']}"
            if t.get("blip_caption"):
                text += f" [shares an image: {t['blip_caption']}]"
            yield Turn(dia_id=str(t["dia_id"]).strip(), session=number, text=text)


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


async def run(data: Path, ks: Sequence[int], database_url: str | None, model: str) -> dict[str, Any]:
    samples = json.loads(data.read_text())
    uri = database_url or _throwaway_database()
    await migrate(uri)
    pool = await create_pool(uri, max_size=4)
    service = MemoryService(pool, build_embedder(model), MemoryConfig())
    await service.start(reembed_in_background=False)
    max_k = max(ks)
    per_k: dict[int, list[float]] = {k: [] for k in ks}
    per_cat: dict[str, dict[int, list[float]]] = {c: {k: [] for k in ks} for c in CATEGORIES}
    latencies: list[float] = []
    skipped_ids = skipped_questions = 0
    run_tag = f"{time.time_ns()}"
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        for sample in samples:
            sample_id = str(sample.get("sample_id", len(latencies)))
            user = UserKey(platform="eval", workspace_id=f"locomo-{run_tag}-{sample_id}", user_id="locomo")
            turns = list(turns_of(sample["conversation"]))
            turn_ids = {t.dia_id for t in turns}
            by_memory: dict[int, set[str]] = {}
            storing = progress.add_task(f"{sample_id}: storing turns", total=len(turns))
            for turn in turns:
                memory_id = await service.store(user, turn.text, thread_id=f"session-{turn.session}")
                if memory_id is not None:
                    by_memory.setdefault(memory_id, set()).add(turn.dia_id)
                progress.advance(storing)
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
                for k in ks:
                    r = evidence_recall(ranked, evidence, k)
                    per_k[k].append(r)
                    per_cat[q.category][k].append(r)
    await pool.close()

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 4) if values else None

    return {
        "recall": {str(k): mean(v) for k, v in per_k.items()},
        "per_category": {c: {str(k): mean(v) for k, v in d.items()} for c, d in per_cat.items()},
        "latency_ms": {k: summary_ms(latencies)[f"{k}_ms"] for k in ("p50", "p95")},
        "questions": len(per_k[ks[0]]),
        "conversations": len(samples),
        "skipped_evidence_ids": skipped_ids,
        "skipped_questions": skipped_questions,
        "embedding_model": service.model,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }


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
    args = parser.parse_args()
    result = asyncio.run(run(args.data, sorted(set(args.k)), args.database_url, args.embedding_model))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
