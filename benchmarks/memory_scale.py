"""Scale of the memory store: bulk insert rate and per-person top-10 latency and recall.

Loads N memories (default 1,000,000) spread over 10,000 people in 100 workspaces, with random unit
vectors (embedding is excluded), by binary COPY through `core.memory.store.copy_memories`. Then it
queries random people through the store's real search (`core.memory.search.search`, the exact scan
inside the person's scope, as the service does) and compares the top 10 with a brute-force scan of
that person's vectors in numpy (recall@10). A second part gives one person a large scope with its
own partial HNSW index (`ensure_scope_indexes`) and measures the approximate path the same way,
side by side on an index built with pgvector's default ef_construction (the baseline) and on one
built as maintenance builds it; each with queries related to what the person said and queries on
new topics (`near_stored`), without words and with words (the hybrid path a turn takes), and with
words at the pool of candidates a turn asks for (`_turn_pool`). Each reports the database server's CPU
per query beside the wall times: compare ratios within one run, latencies on a shared machine move.

    python benchmarks/memory_scale.py --json [--memories 1000000] [--queries 500]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import offline_environment, summary_ms

offline_environment()

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from asyncpg.connection import LoggedQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.memory import maintenance, search, store
from core.memory.service import MemoryConfig
from core.models import UserKey
from core.store.migrations import migrate
from core.store.pool import create_pool
from core.store.tenancy import begin_sql, tenant_of

MODEL = "bench:random-unit"
TURN_POOL = MemoryConfig().candidate_pool
"""The candidates a turn's recall asks for (`MemoryService.recall`): the real query's size."""
console = Console(stderr=True)


def unit_vectors(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    v = rng.standard_normal((n, dims), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered_unit_vectors(rng: np.random.Generator, n: int, dims: int, clusters: int = 200) -> np.ndarray:
    """Unit vectors around random topic centres: the shape real embeddings have (uniform random
    vectors in 384 dimensions have no near neighbours worth the name, the worst case for HNSW)."""
    centres = unit_vectors(rng, clusters, dims)
    v = centres[rng.integers(0, clusters, n)] + 0.6 * unit_vectors(rng, n, dims)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near_stored(rng: np.random.Generator, stored: np.ndarray, n: int) -> np.ndarray:
    """Queries about something the person said: a stored memory's vector moved 0.3 of the way to a
    random topic (the tenth nearest memory is then at cosine ~0.7; a LoCoMo question's is ~0.5 with
    MiniLM). Vectors of new topics (`clustered_unit_vectors`) are the worst case: nothing related is
    stored, the tenth nearest is at cosine ~0.16, and an approximate search has least to go on."""
    v = 0.7 * stored[rng.integers(0, len(stored), n)] + 0.3 * clustered_unit_vectors(rng, n, stored.shape[1])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def people(workspaces: int, users: int) -> list[UserKey]:
    per_ws = users // workspaces
    return [
        UserKey(platform="bench", workspace_id=f"W{w:03d}", user_id=f"U{w:03d}-{u:04d}")
        for w in range(workspaces)
        for u in range(per_ws)
    ]


def records(
    owners: list[UserKey], vectors: np.ndarray, start: int, words: list[str], rng: random.Random
) -> Iterator[tuple[object, ...]]:
    for i, vec in enumerate(vectors):
        owner = owners[(start + i) % len(owners)]
        content = f"memory {start + i}: " + " ".join(rng.choices(words, k=8))
        yield store.copy_record(owner, content, vec, MODEL)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    uri = args.database_url or _throwaway_database()
    await migrate(uri)
    pool = await create_pool(uri, max_size=4)
    rng = np.random.default_rng(7)
    text_rng = random.Random(7)
    words = [f"w{i}" for i in range(2000)]
    owners = people(args.workspaces, args.users)
    await pool.execute("DELETE FROM memories WHERE embedding_model = $1", MODEL)

    # --- insert ---------------------------------------------------------------------------------
    started = time.perf_counter()
    done = 0
    with _progress() as progress:
        task = progress.add_task("COPY memories", total=args.memories)
        async with pool.acquire() as conn:
            while done < args.memories:
                n = min(args.batch, args.memories - done)
                vectors = unit_vectors(rng, n, args.dims)
                await store.copy_memories(conn, records(owners, vectors, done, words, text_rng))
                done += n
                progress.update(task, completed=done)
    insert_s = time.perf_counter() - started
    await pool.execute("ANALYZE memories")

    # --- per-person queries -----------------------------------------------------------------------
    per_person = await _query_people(pool, rng, owners, args)

    # --- one large scope with its own partial HNSW index -----------------------------------------
    large = await _large_scope(pool, rng, words, text_rng, args) if args.large_scope else None
    await pool.close()
    return {
        "memories": args.memories,
        "users": len(owners),
        "workspaces": args.workspaces,
        "dimensions": args.dims,
        "insert": {"seconds": round(insert_s, 1), "rows_per_s": round(args.memories / insert_s)},
        "per_user_top10": per_person,
        "large_scope": large,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "load_average": {"start": round(load_at_start, 1), "end": round(os.getloadavg()[0], 1)},
    }


async def _query_people(
    pool: Any, rng: np.random.Generator, owners: list[UserKey], args: argparse.Namespace
) -> dict[str, Any]:
    sample = [owners[i] for i in rng.choice(len(owners), size=min(args.queries, len(owners)), replace=False)]
    timed: dict[str, Timed] = {path: Timed() for path in ROUND_TRIPS}
    recalls: list[float] = []
    with _progress() as progress:
        task = progress.add_task("top-10 queries", total=len(sample))
        for person in sample:
            query = unit_vectors(rng, 1, args.dims)[0]
            for path in ROUND_TRIPS:  # interleaved: both see the same moment of a shared machine
                found = await _recall(pool, person, query, "", 10, path, timed[path])
            recalls.append(await _recall_vs_brute_force(pool, person, query, [c.id for c in found.candidates]))
            progress.advance(task)
    return {
        "queries": len(sample),
        **timed["one_statement"].summary(),
        "baseline_four_round_trips": timed["baseline"].summary(),
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "path": "exact scan inside the (platform, workspace_id, user_id) B-tree scope",
    }


ROUND_TRIPS = ("one_statement", "baseline")
"""How a recall reaches the database: as the service does it (`memory_recall` alone, outside a
transaction), and main's four round trips before migration 0030 (a transaction naming the tenant, the
scope's index settings, the search, the commit) around the same search, so the two differ only in
round trips."""

_BASELINE_SETTINGS_SQL = """
SELECT dimensions,
       set_config('plan_cache_mode', 'force_custom_plan', true), set_config('hnsw.ef_search', $5, true)
FROM memory_scope_indexes
WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
"""
"""The statement main sent before each search until migration 0030 (the baseline's second round trip)."""


@dataclass
class Timed:
    """Wall time, the database server's CPU and the statements sent, per recall."""

    wall_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            **{k: summary_ms(self.wall_ms)[k] for k in ("p50_ms", "p95_ms")},
            "server_cpu_ms_mean": round(statistics.fmean(self.server_cpu_ms), 2) if self.server_cpu_ms else None,
            "statements_per_recall": statistics.fmean(self.statements),
        }


async def _recall(
    pool: Any, person: UserKey, query: np.ndarray, text: str, pool_size: int, path: str, timed: Timed
) -> search.SearchResult:
    """One recall's search by `path` (`ROUND_TRIPS`), its costs added to `timed`."""
    sent: list[str] = []

    def log(query: LoggedQuery) -> None:
        sent.append(query.query)

    started = time.perf_counter()
    async with pool.acquire() as conn:
        conn.add_query_logger(log)
        cpu_before = _server_cpu_s(conn)
        if path == "baseline":
            await conn.execute(begin_sql(tenant_of(person)))
            await conn.fetchval(
                _BASELINE_SETTINGS_SQL,
                person.platform,
                person.workspace_id,
                person.user_id,
                MODEL,
                str(max(search.HNSW_EF_SEARCH, 2 * pool_size)),
            )
        found = await search.search(conn, person, query=text, vector=query, model=MODEL, pool_size=pool_size, recent=0)
        if path == "baseline":
            await conn.execute("COMMIT")
        cpu_after = _server_cpu_s(conn)
        conn.remove_query_logger(log)
    timed.wall_ms.append((time.perf_counter() - started) * 1000)
    if cpu_before is not None and cpu_after is not None:
        timed.server_cpu_ms.append((cpu_after - cpu_before) * 1000)
    timed.statements.append(len(sent))
    return found


async def _recall_vs_brute_force(pool: Any, person: UserKey, query: np.ndarray, got: list[int]) -> float:
    rows = await pool.fetch(
        "SELECT id, embedding FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3"
        " AND embedding_model = $4",
        person.platform,
        person.workspace_id,
        person.user_id,
        MODEL,
    )
    ids = np.array([r["id"] for r in rows])
    matrix = np.stack([r["embedding"].to_numpy() for r in rows])
    truth = set(ids[np.argsort(-(matrix @ query), kind="stable")[:10]].tolist())
    return len(truth & set(got)) / len(truth)


async def _large_scope(
    pool: Any, rng: np.random.Generator, words: list[str], text_rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    """One person with `args.large_scope` memories, queried on a scope index built with the baseline's
    ef_construction and then on one built as maintenance builds it, with the same queries."""
    person = UserKey(platform="bench", workspace_id="W-large", user_id="U-large")
    vectors = clustered_unit_vectors(rng, args.large_scope, args.dims)
    async with pool.acquire() as conn:
        await store.copy_memories(conn, records([person], vectors, 10**9, words, text_rng))
    query_sets = {
        "related": near_stored(rng, vectors, args.queries),
        "new_topic": clustered_unit_vectors(rng, args.queries, args.dims),
    }
    texts = [" ".join(text_rng.choices(words, k=5)) for _ in range(args.queries)]
    result: dict[str, Any] = {"memories": args.large_scope, "vectors": "clustered unit vectors (200 topics)"}
    builds = {"baseline": args.baseline_ef_construction, "current": maintenance.HNSW_EF_CONSTRUCTION}
    for label, ef_construction in builds.items():
        if not ef_construction:
            continue
        await maintenance.drop_scope_indexes(pool, person)
        started = time.perf_counter()
        await maintenance.ensure_scope_indexes(
            pool, model=MODEL, dimensions=args.dims, min_rows=args.large_scope, ef_construction=ef_construction
        )
        build_s = time.perf_counter() - started
        result[label] = {"ef_construction": ef_construction, "index_build_s": round(build_s, 1)}
        for kind, queries in query_sets.items():
            result[label][kind] = await _query_large_scope(pool, person, vectors, queries, [""] * len(queries))
            result[label][f"{kind}_with_words"] = await _query_large_scope(pool, person, vectors, queries, texts)
            result[label][f"{kind}_with_words_turn_pool"] = await _query_large_scope(
                pool, person, vectors, queries, texts, pool_size=TURN_POOL
            )
    return result


async def _query_large_scope(
    pool: Any, person: UserKey, vectors: np.ndarray, queries: np.ndarray, texts: list[str], *, pool_size: int = 10
) -> dict[str, Any]:
    """Top 10 by vector of each query through the store's search, with `texts` as its words, by each of
    `ROUND_TRIPS` in turn; with the CPU time the database server spent on each (robust to a busy
    machine, where wall times are not) and the statements each sent."""
    timed: dict[str, Timed] = {path: Timed() for path in ROUND_TRIPS}
    recalls: list[float] = []
    paths: set[str] = set()
    for query, text in zip(queries, texts, strict=True):
        for path in ROUND_TRIPS:
            found = await _recall(pool, person, query, text, pool_size, path, timed[path])
        paths.add(found.path)
        truth = np.argsort(-(vectors @ query), kind="stable")[:10]
        got_rows = {c.content.split(":")[0] for c in found.candidates}  # the 10 nearest asked for, and text hits
        recalls.append(sum(f"memory {10**9 + int(i)}" in got_rows for i in truth) / 10)
    return {
        **timed["one_statement"].summary(),
        "baseline_four_round_trips": timed["baseline"].summary(),
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "path": sorted(paths),
    }


def _server_cpu_s(conn: Any) -> float | None:
    """CPU seconds (user + system) of the connection's server process so far, when the server runs on
    this machine (the throwaway one does); None otherwise. Clock-tick resolution: average many queries."""
    try:
        fields = Path(f"/proc/{conn.get_server_pid()}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _throwaway_database() -> str:
    """An embedded Postgres in a fresh short temp folder, deleted when this process exits."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="ms", dir="/tmp"))
    server = pgserver.get_server(folder / "pg", cleanup_mode="delete")
    uri: str = server.get_uri()
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=20_000, help="rows per COPY")
    parser.add_argument("--large-scope", type=int, default=20_000, help="memories of the one large person (0: skip)")
    parser.add_argument(
        "--baseline-ef-construction",
        type=int,
        default=64,
        help="also measure the large scope on an index built so (pgvector's default; 0: skip)",
    )
    parser.add_argument("--database-url", default=None, help="use this Postgres instead of a throwaway one")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
