"""Scale of the memory store: bulk insert rate and per-person top-10 latency and recall.

Loads N memories (default 1,000,000) spread over 10,000 people in 100 workspaces, with random unit vectors
(embedding is excluded), by binary COPY through `core.memory.store.copy_memories`. Then it queries random
people through the store's real search (`core.memory.search.search`, the exact scan inside the person's scope,
as the service does) and compares the top 10 with a brute-force scan of that person's vectors in numpy
(recall@10). A second part gives one person a large scope with its own partial HNSW index
(`ensure_scope_indexes`) and measures the approximate path the same way, side by side on an index built with
pgvector's default ef_construction (the baseline) and on one built as maintenance builds it; each with queries
related to what the person said and queries on new topics (`near_stored`), without words and with words (the
hybrid path a turn takes), and with words at the pool of candidates a turn asks for (`_turn_pool`). Each query
runs twice, one right after the other: through this tree's `memory_recall` and through main's (migration
0037's, installed beside it in its own schema, `BASELINE_SCHEMA`), so both see the same moment of a shared
machine. Each reports, beside the wall times, where the serving backend spent them (compare
ratios within one run, latencies on a shared machine move): on a core, waiting for one, and off both (parallel
workers, I/O, locks: work or waits the backend's own CPU does not show), and how often the two give the same
ranked top 10. A third part gives one person a medium scope (`--medium-scope`, between an ordinary person and
the heavy one) and recalls each query by the exact scan of the scope and by the walk of its own index, one
right after the other: what `MemoryConfig.large_scope_rows` decides between.

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
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import numpy as np
from asyncpg.connection import LoggedQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.memory import maintenance, search, store
from core.memory.ranking import RankWeights, rank
from core.memory.service import MemoryConfig
from core.models import UserKey
from core.store.migrations import MIGRATIONS_DIR, migrate
from core.store.pool import create_pool

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
    await _install_baseline(uri)
    pool = await create_pool(uri, max_size=4)
    main_pool = await create_pool(_with_search_path(uri, f"{BASELINE_SCHEMA}, public"), max_size=4)
    pools = {"this_tree": pool, "main": main_pool}
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
    per_person = await _query_people(pools, rng, owners, args)

    # --- one large scope with its own partial HNSW index -----------------------------------------
    large = await _large_scope(pools, rng, words, text_rng, args) if args.large_scope else None

    # --- one medium scope: the exact scan against its own index, query by query -----------------------
    medium = await _medium_scope(pool, rng, words, text_rng, args) if args.medium_scope else None
    await pool.close()
    await main_pool.close()
    return {
        "memories": args.memories,
        "users": len(owners),
        "workspaces": args.workspaces,
        "dimensions": args.dims,
        "insert": {"seconds": round(insert_s, 1), "rows_per_s": round(args.memories / insert_s)},
        "per_user_top10": per_person,
        "large_scope": large,
        "medium_scope": medium,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "load_average": {"start": round(load_at_start, 1), "end": round(os.getloadavg()[0], 1)},
    }


async def _query_people(
    pools: dict[str, Any], rng: np.random.Generator, owners: list[UserKey], args: argparse.Namespace
) -> dict[str, Any]:
    sample = [owners[i] for i in rng.choice(len(owners), size=min(args.queries, len(owners)), replace=False)]
    timed: dict[str, Timed] = {path: Timed() for path in pools}
    recalls: list[float] = []
    agree: list[bool] = []
    with _progress() as progress:
        task = progress.add_task("top-10 queries", total=len(sample))
        for turn, person in enumerate(sample):
            query = unit_vectors(rng, 1, args.dims)[0]
            found = {path: await _recall(p, person, query, "", 10, timed[path]) for path, p in _in_turn(pools, turn)}
            agree.append(_same_top10(found["this_tree"], found["main"]))
            got = [c.id for c in found["this_tree"].candidates]
            recalls.append(await _recall_vs_brute_force(pools["this_tree"], person, query, got))
            progress.advance(task)
    return {
        "queries": len(sample),
        **timed["this_tree"].summary(),
        "main": timed["main"].summary(),
        "same_ranked_top10_as_main": round(statistics.fmean(agree), 4),
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "path": "exact scan inside the (platform, workspace_id, user_id) B-tree scope",
    }


BASELINE_SCHEMA = "parley_main"
"""Where main's recall is installed beside this tree's, from the migration files themselves: 0037's
`memory_recall` (which replaced 0033's and 0035's) with the `parley_swap_tenant` it names its tenant with, and
0031's `memory_text_hits` with 0032's settings (no parallel workers, no JIT). The baseline pool finds them first
on its search_path, so both go through the same `core.memory.search.search`."""
_BASELINE_FUNCTIONS = (
    ("0031_memory_recall_planned_once.sql", "memory_text_hits"),
    ("0037_tenant_named_without_superuser.sql", "parley_swap_tenant"),
    ("0037_tenant_named_without_superuser.sql", "memory_recall"),
)
_BASELINE_SETTINGS = "0032_memory_recall_serial.sql"
"""Main's ALTER FUNCTION ... SET on those functions, applied to the baseline's copies (0037's recall repeats
them in its own SET clauses)."""
_FUNCTION_END = "\n$function$;"


async def _install_baseline(uri: str) -> None:
    """Main's recall functions in `BASELINE_SCHEMA`, callable by the app role as main's are. Each calls the
    baseline's copies of the others: the recall runs with search_path fixed to public, so the calls are
    qualified."""
    names = "|".join(name for _, name in _BASELINE_FUNCTIONS)
    conn = await asyncpg.connect(uri)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {BASELINE_SCHEMA} CASCADE; CREATE SCHEMA {BASELINE_SCHEMA}")
        await conn.execute("DO $$ BEGIN PERFORM '[0]'::vector; END $$")  # hnsw.ef_search known, as in 0037
        for file, name in _BASELINE_FUNCTIONS:
            text = (MIGRATIONS_DIR / file).read_text()
            found = re.search(rf"\bCREATE (OR REPLACE )?FUNCTION {name}\(", text)
            if found is None:
                raise LookupError(f"{file} defines no function {name}")
            ddl = text[found.start() : text.index(_FUNCTION_END, found.start()) + len(_FUNCTION_END)]
            ddl = re.sub(rf"(?<![\w.])({names})\(", rf"{BASELINE_SCHEMA}.\1(", ddl)
            await conn.execute(re.sub(r"^CREATE (OR REPLACE )?FUNCTION", "CREATE FUNCTION", ddl))
        settings = (MIGRATIONS_DIR / _BASELINE_SETTINGS).read_text()
        settings = re.sub(r"\bALTER FUNCTION (memory_\w+)\(", rf"ALTER FUNCTION {BASELINE_SCHEMA}.\1(", settings)
        await conn.execute(settings)
        await conn.execute(
            f"GRANT USAGE ON SCHEMA {BASELINE_SCHEMA} TO parley_app;"
            f" GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {BASELINE_SCHEMA} TO parley_app"
        )
    finally:
        await conn.close()


def _with_search_path(uri: str, search_path: str) -> str:
    """`uri` with a server setting for its connections (asyncpg passes unknown query parameters on)."""
    return f"{uri}{'&' if '?' in uri else '?'}search_path={quote(search_path)}"


def _in_turn(pools: dict[str, Any], turn: int) -> list[tuple[str, Any]]:
    """Both pools, the one going first alternating by query: the first to read a person's rows pays for
    bringing them into shared buffers, the second finds them there."""
    ordered = list(pools.items())
    return ordered if turn % 2 == 0 else ordered[::-1]


def _same_top10(got: search.SearchResult, main: search.SearchResult) -> bool:
    """Whether both searches rank to the same top 10, as a turn ranks them (the fused score)."""
    now = datetime.now(UTC)

    def top(found: search.SearchResult) -> list[int]:
        return [r.id for r in rank(found.candidates, k=10, weights=RankWeights(), now=now)]

    return top(got) == top(main)


@dataclass(frozen=True)
class ServerTime:
    """Where the backend serving a recall spent the call's wall time, from its scheduler statistics: on a
    core, runnable but waiting for one (a busy machine), and the rest, off the CPU: asleep on parallel
    workers it launched (their CPU is in their own processes), on storage or locks, or idle while the
    client encodes the call and decodes the rows (about 0.5 ms)."""

    cpu_ms: float
    runqueue_ms: float
    off_cpu_ms: float


@dataclass
class Timed:
    """Wall time, where the serving backend spent it and the statements sent, per recall."""

    wall_ms: list[float] = field(default_factory=list)
    server: list[ServerTime] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return round(statistics.fmean(values), 2) if values else None

        return {
            **{k: summary_ms(self.wall_ms)[k] for k in ("p50_ms", "p95_ms")},
            "server_cpu_ms_mean": mean([t.cpu_ms for t in self.server]),
            "server_waiting_for_a_core_ms_mean": mean([t.runqueue_ms for t in self.server]),
            "server_off_cpu_ms_mean": mean([t.off_cpu_ms for t in self.server]),
            "statements_per_recall": statistics.fmean(self.statements),
        }


async def _recall(
    pool: Any, person: UserKey, query: np.ndarray, text: str, pool_size: int, timed: Timed
) -> search.SearchResult:
    """One recall's search through `pool` (this tree's recall or main's), its costs added to `timed`."""
    sent: list[str] = []

    def log(query: LoggedQuery) -> None:
        sent.append(query.query)

    started = time.perf_counter()
    async with pool.acquire() as conn:
        conn.add_query_logger(log)
        before, sent_at = _server_schedstat_ns(conn), time.perf_counter_ns()
        found = await search.search(conn, person, query=text, vector=query, model=MODEL, pool_size=pool_size, recent=0)
        after, back_at = _server_schedstat_ns(conn), time.perf_counter_ns()
        conn.remove_query_logger(log)
    timed.wall_ms.append((time.perf_counter() - started) * 1000)
    if before is not None and after is not None:
        cpu, runqueue = after[0] - before[0], after[1] - before[1]
        timed.server.append(ServerTime(cpu / 1e6, runqueue / 1e6, (back_at - sent_at - cpu - runqueue) / 1e6))
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
    pools: dict[str, Any],
    rng: np.random.Generator,
    words: list[str],
    text_rng: random.Random,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One person with `args.large_scope` memories, queried on a scope index built with the baseline's
    ef_construction and then on one built as maintenance builds it, with the same queries."""
    pool = pools["this_tree"]
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
            result[label][kind] = await _query_large_scope(pools, person, vectors, queries, [""] * len(queries))
            result[label][f"{kind}_with_words"] = await _query_large_scope(pools, person, vectors, queries, texts)
            result[label][f"{kind}_with_words_turn_pool"] = await _query_large_scope(
                pools, person, vectors, queries, texts, pool_size=TURN_POOL
            )
    return result


async def _query_large_scope(
    pools: dict[str, Any],
    person: UserKey,
    vectors: np.ndarray,
    queries: np.ndarray,
    texts: list[str],
    *,
    pool_size: int = 10,
) -> dict[str, Any]:
    """Top 10 by vector of each query through the store's search, with `texts` as its words, through this
    tree's recall and main's in turn; with the CPU time the database server spent on each (robust to a
    busy machine, where wall times are not), the statements each sent, and how often both rank the same
    top 10."""
    timed: dict[str, Timed] = {path: Timed() for path in pools}
    recalls: list[float] = []
    agree: list[bool] = []
    paths: set[str] = set()
    for turn, (query, text) in enumerate(zip(queries, texts, strict=True)):
        both = {
            path: await _recall(p, person, query, text, pool_size, timed[path]) for path, p in _in_turn(pools, turn)
        }
        agree.append(_same_top10(both["this_tree"], both["main"]))
        found = both["this_tree"]
        paths.add(found.path)
        recalls.append(_recall_at_10(found, vectors, query, first_id=10**9))
    return {
        **timed["this_tree"].summary(),
        "main": timed["main"].summary(),
        "same_ranked_top10_as_main": round(statistics.fmean(agree), 4),
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "path": sorted(paths),
    }


async def _medium_scope(
    pool: Any, rng: np.random.Generator, words: list[str], text_rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    """One person with `args.medium_scope` memories (between an ordinary person and the heavy one), each
    query recalled both ways one right after the other (the first alternating): by the exact scan of the
    scope, as before the scope had an index of its own, and by the walk of that index, as maintenance gives
    it from `MemoryConfig.large_scope_rows`. The index stays built; only its entry in `memory_scope_indexes`,
    which is what sends a recall to the walk, comes and goes."""
    person = UserKey(platform="bench", workspace_id="W-medium", user_id="U-medium")
    vectors = clustered_unit_vectors(rng, args.medium_scope, args.dims)
    async with pool.acquire() as conn:
        await store.copy_memories(conn, records([person], vectors, 2 * 10**9, words, text_rng))
    started = time.perf_counter()
    await maintenance.ensure_scope_indexes(pool, model=MODEL, dimensions=args.dims, min_rows=args.medium_scope)
    build_s = time.perf_counter() - started
    entry = await pool.fetchrow(
        "DELETE FROM memory_scope_indexes WHERE platform = $1 AND workspace_id = $2 AND user_id = $3"
        " RETURNING platform, workspace_id, user_id, embedding_model, dimensions, index_name",
        person.platform,
        person.workspace_id,
        person.user_id,
    )

    async def indexed(on: bool) -> None:
        if on:
            await pool.execute(
                "INSERT INTO memory_scope_indexes (platform, workspace_id, user_id, embedding_model, dimensions,"
                " index_name) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                *entry.values(),
            )
        else:
            await pool.execute("DELETE FROM memory_scope_indexes WHERE index_name = $1", entry["index_name"])

    result: dict[str, Any] = {
        "memories": args.medium_scope,
        "vectors": "clustered unit vectors (200 topics)",
        "index_build_s": round(build_s, 1),
        "large_scope_rows": MemoryConfig().large_scope_rows,
    }
    query_sets = {
        "related": near_stored(rng, vectors, args.queries),
        "new_topic": clustered_unit_vectors(rng, args.queries, args.dims),
    }
    texts = [" ".join(text_rng.choices(words, k=5)) for _ in range(args.queries)]
    for kind, queries in query_sets.items():
        for label, with_words, pool_size in (("", False, 10), ("_with_words_turn_pool", True, TURN_POOL)):
            timed = {"exact_scan": Timed(), "own_index": Timed()}
            recalls: dict[str, list[float]] = {path: [] for path in timed}
            for turn, (query, text) in enumerate(zip(queries, texts, strict=True)):
                for path in list(timed) if turn % 2 == 0 else list(timed)[::-1]:
                    await indexed(path == "own_index")
                    found = await _recall(pool, person, query, text if with_words else "", pool_size, timed[path])
                    assert found.path == ("hnsw" if path == "own_index" else "exact"), (found.path, path)
                    recalls[path].append(_recall_at_10(found, vectors, query, first_id=2 * 10**9))
            result[kind + label] = {
                path: {**timed[path].summary(), "recall_at_10": round(statistics.fmean(recalls[path]), 4)}
                for path in timed
            }
    await indexed(True)
    return result


def _recall_at_10(found: search.SearchResult, vectors: np.ndarray, query: np.ndarray, *, first_id: int) -> float:
    """The share of the 10 stored vectors nearest `query` among what the recall found (the 10 nearest asked
    for, and text hits); stored row i was written as "memory {first_id + i}: ..." (`records`)."""
    truth = np.argsort(-(vectors @ query), kind="stable")[:10]
    got_rows = {c.content.split(":")[0] for c in found.candidates}
    return sum(f"memory {first_id + int(i)}" in got_rows for i in truth) / 10


def _server_schedstat_ns(conn: Any) -> tuple[int, int] | None:
    """Nanoseconds the connection's server process has run on a core and waited runnable for one so far
    (/proc/PID/schedstat), when the server runs on this machine (the throwaway one does); None otherwise.
    The time in parallel workers it launches is not in it: that shows as its time off the CPU."""
    try:
        on_cpu, waiting, _ = Path(f"/proc/{conn.get_server_pid()}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return int(on_cpu), int(waiting)


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
        "--medium-scope",
        type=int,
        default=10_000,
        help="memories of the one medium person, recalled by the exact scan and by its own index (0: skip)",
    )
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
