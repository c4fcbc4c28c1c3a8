"""LoCoMo evidence recall@k replayed from saved candidate pools: a ranking change measured in seconds.

`locomo_retrieval.py` recalls every question through the service, minutes per run on this machine.
The ranking (`core.memory.ranking.rank`) is a pure function of the candidates the store's search
returns, so this script saves each question's candidates once (`--pools FILE`, taken from a database
that `locomo_retrieval.py --reuse --database-url URL` filled; turns it lacks are stored first) and
then ranks them again with `--set weights.NAME=VALUE` overrides. With no override it gives the full
run's figures exactly; it also reports the share of the evidence the pool holds at all, the ceiling
any ranking of that pool has.

    python benchmarks/locomo_retrieval.py --data locomo10.json --database-url URL --reuse
    python benchmarks/locomo_replay.py --data locomo10.json --database-url URL --pools /tmp/pools.pkl
    python benchmarks/locomo_replay.py --pools /tmp/pools.pkl --set weights.thread=0.7

The pools file holds LoCoMo's text (CC BY-NC 4.0): keep it outside the project. It is a pickle, so
load only one this script wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import offline_environment

offline_environment()

import argparse
import asyncio
import json
import pickle
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import Progress

from benchmarks.locomo_retrieval import (
    DEV_CONVERSATIONS,
    REUSE_TAG,
    Tally,
    asked_after,
    conversation_user,
    evidence_recall,
    questions_of,
    store_turns,
    turns_of,
    with_overrides,
)
from core.memory.embedding_backend import DEFAULT_EMBEDDING_MODEL, build_embedder
from core.memory.ranking import Candidate
from core.memory.service import CandidatePool, MemoryConfig, MemoryService, rank_pool
from core.store.migrations import migrate
from core.store.pool import create_pool


@dataclass(frozen=True, kw_only=True, slots=True)
class SavedQuestion:
    """One question's candidate pool as the service's search returned it, with what grading needs."""

    conversation: str
    category: str
    text: str
    """The question as recall saw it (scrubbed, stripped)."""
    evidence: tuple[str, ...]
    asked_at: datetime
    candidates: tuple[Candidate, ...]
    turns: dict[int, frozenset[str]]
    """The LoCoMo turn ids each candidate memory holds."""


def replay(saved: Sequence[SavedQuestion], config: MemoryConfig, ks: Sequence[int], dev: set[str]) -> dict[str, Any]:
    """Recall@k of `saved` ranked with `config`'s weights, the development conversations apart from
    the rest, and the share of evidence in the pool."""
    groups = {"dev": Tally(ks=ks), "unseen": Tally(ks=ks)}
    in_pool: dict[str, list[float]] = {"dev": [], "unseen": []}
    for q in saved:
        group = "dev" if q.conversation in dev else "unseen"
        if q.conversation not in groups[group].conversations:
            groups[group].conversations.append(q.conversation)
        pool = CandidatePool(query=q.text, candidates=q.candidates)
        hits = rank_pool(pool, k=max(ks), weights=config.weights, now=q.asked_at)
        ranked = [set(q.turns.get(h.id, ())) for h in hits]
        groups[group].add(q.category, {k: evidence_recall(ranked, q.evidence, k) for k in ks})
        pooled = [set(q.turns.get(c.id, ())) for c in q.candidates]
        in_pool[group].append(evidence_recall(pooled, q.evidence, len(pooled)))
    return {
        name: {**tally.summary(), "evidence_in_pool": round(statistics.fmean(in_pool[name]), 4)}
        for name, tally in groups.items()
        if tally.conversations
    }


async def save_pools(args: argparse.Namespace, config: MemoryConfig, ks: Sequence[int]) -> list[SavedQuestion]:
    """Every question's candidates from the reused database, as `MemoryService.recall` takes them for the
    largest k (`MemoryService.candidate_pool`)."""
    uri = args.database_url
    await migrate(uri)
    pool = await create_pool(uri, max_size=2)
    service = MemoryService(pool, build_embedder(args.embedding_model), config)
    await service.start(reembed_in_background=False)
    saved: list[SavedQuestion] = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        for sample in json.loads(args.data.read_text()):
            sample_id = str(sample.get("sample_id"))
            user = conversation_user(sample_id, REUSE_TAG)
            turns = list(turns_of(sample["conversation"]))
            by_memory = await store_turns(service, user, turns, progress, sample_id)
            turn_ids = {t.dia_id for t in turns}
            asked_at = asked_after(turns)()
            questions = list(questions_of(sample))
            saving = progress.add_task(f"{sample_id}: saving pools", total=len(questions))
            for q in questions:
                progress.advance(saving)
                evidence = tuple(e for e in q.evidence if e in turn_ids)
                if not evidence:
                    continue
                found = await service.candidate_pool(user, q.text, k=max(ks))
                saved.append(
                    SavedQuestion(
                        conversation=sample_id,
                        category=q.category,
                        text=found.query,
                        evidence=evidence,
                        asked_at=asked_at,
                        candidates=tuple(found.candidates),
                        turns={c.id: frozenset(by_memory.get(c.id, ())) for c in found.candidates},
                    )
                )
    await pool.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="LoCoMo JSON (a list of conversations), to save the pools")
    parser.add_argument("--pools", type=Path, required=True, help="saved pools: read if it exists, else written")
    parser.add_argument("--database-url", default=None, help="the database locomo_retrieval.py --reuse filled")
    parser.add_argument("--embedding-model", default=DEFAULT_EMBEDDING_MODEL)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 25, 50])
    parser.add_argument("--dev", default=",".join(DEV_CONVERSATIONS), help="comma-separated ids tuned on")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a MemoryConfig number"
    )
    args = parser.parse_args()
    config = with_overrides(MemoryConfig(), args.set)
    ks = sorted(set(args.k))
    if args.pools.exists():
        saved = pickle.loads(args.pools.read_bytes())
    elif args.database_url is None or args.data is None:
        parser.error(f"{args.pools} does not exist yet: give --data and --database-url to save the pools first")
    else:
        saved = asyncio.run(save_pools(args, config, ks))
        args.pools.write_bytes(pickle.dumps(saved))
    result = replay(saved, config, ks, set(args.dev.split(",")))
    print(json.dumps({**result, "config": args.set, "questions": len(saved)}))


if __name__ == "__main__":
    main()
