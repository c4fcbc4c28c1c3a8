"""The memory store on a real Postgres: writing, recall, masking, persistence, retention, indexes."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.embeddings import Embedder

from core.guard.masking import scrub
from core.memory import maintenance, search, store
from core.memory.embedding_backend import BatchingEmbeddingModel, build_embedder
from core.memory.ranking import Signals
from core.memory.reembed import pending_reembed, reembed
from core.memory.retention import cleanup_memories
from core.memory.scope import person_scope
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.store.migrations import migrate
from core.store.pool import create_pool
from tests.strategies import HashingEmbeddingModel, memory_texts, texts_with_secret

DB_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def person() -> UserKey:
    return UserKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:10]}", user_id="U1")


@pytest.fixture
def hashing() -> HashingEmbeddingModel:
    return HashingEmbeddingModel()


@pytest.fixture
async def service(pool: asyncpg.Pool, hashing: HashingEmbeddingModel) -> AsyncIterator[MemoryService]:
    svc = MemoryService(pool, Embedder(BatchingEmbeddingModel(hashing)), MemoryConfig())
    await svc.start(reembed_in_background=False)
    yield svc
    await svc.aclose()


@pytest.fixture(scope="module")
async def minilm_service(pool: asyncpg.Pool) -> AsyncIterator[MemoryService]:
    svc = MemoryService(pool, build_embedder(), MemoryConfig())
    await svc.start(reembed_in_background=False)
    yield svc
    await svc.aclose()


async def add_message(pool: asyncpg.Pool, user: UserKey, text: str, *, thread: str = "th1") -> int:
    turn_id = await pool.fetchval(
        "INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id) VALUES ($1, $2, 'C1', $3, $4)"
        " RETURNING id",
        user.platform,
        user.workspace_id,
        thread,
        user.user_id,
    )
    message_id: int = await pool.fetchval(
        "INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)"
        " VALUES ($1, $2, 'C1', $3, $4, 'user', $5, $6) RETURNING id",
        user.platform,
        user.workspace_id,
        thread,
        user.user_id,
        text,
        turn_id,
    )
    return message_id


async def stored(pool: asyncpg.Pool, user: UserKey) -> list[store.StoredMemory]:
    async with person_scope(pool, user) as conn:
        return await store.list_memories(conn, user)


async def test_every_turn_becomes_a_memory_with_its_source_message(pool: asyncpg.Pool, service: MemoryService) -> None:
    user = person()
    message_id = await add_message(pool, user, "I moved to Lisbon last spring", thread="1700000000.1")
    await service.remember(user, "I moved to Lisbon last spring", message_id=message_id)
    [memory] = await stored(pool, user)
    assert memory.content == "I moved to Lisbon last spring"
    assert memory.source_message_id == message_id
    assert memory.thread_id == "1700000000.1"
    assert memory.kind == "turn"


async def test_identical_content_is_stored_once(pool: asyncpg.Pool, service: MemoryService) -> None:
    user = person()
    for text in ["My favourite colour is teal", "my favourite colour is TEAL", "  My favourite   colour is teal "]:
        await service.remember(user, text, message_id=None)
    assert len(await stored(pool, user)) == 1


async def test_empty_turns_are_not_remembered(pool: asyncpg.Pool, service: MemoryService) -> None:
    user = person()
    await service.remember(user, "   ", message_id=None)
    assert await stored(pool, user) == []


async def test_an_imported_message_keeps_when_it_was_said(pool: asyncpg.Pool, service: MemoryService) -> None:
    user = person()
    said = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    await service.store(user, "We adopted a puppy called Coco", said_at=said)
    [memory] = await stored(pool, user)
    assert memory.created_at == said


async def test_recall_prefers_what_was_said_in_the_time_the_question_names(service: MemoryService) -> None:
    user = person()
    await service.store(user, "dinner with my sister at the harbour", said_at=datetime(2023, 3, 3, tzinfo=UTC))
    await service.store(user, "dinner with my brother at the harbour", said_at=datetime(2023, 7, 9, tzinfo=UTC))
    await service.store(user, "the quarterly report is due soon", said_at=datetime(2023, 7, 1, tzinfo=UTC))
    for month, expected in (("March", "sister"), ("July", "brother")):
        [hit] = await service.recall(user, f"who did I have dinner with in {month} 2023?", k=1)
        assert expected in hit.content


@DB_SETTINGS
@given(texts=st.lists(memory_texts, max_size=30), k=st.integers(1, 40), query=memory_texts)
async def test_recall_returns_k_rows_whenever_k_exist(
    pool: asyncpg.Pool, service: MemoryService, texts: list[str], k: int, query: str
) -> None:
    user = person()
    for text in texts:
        await service.remember(user, text, message_id=None)
    distinct = len(await stored(pool, user))
    hits = await service.recall(user, query, k=k)
    assert len(hits) == min(k, distinct)
    assert len({h.id for h in hits}) == len(hits)


@DB_SETTINGS
@given(item=texts_with_secret())
async def test_p19_sensitive_data_is_masked_before_storing_and_embedding(
    pool: asyncpg.Pool, service: MemoryService, hashing: HashingEmbeddingModel, item: tuple[str, str, str]
) -> None:
    text, sensitive, secret = item
    user = person()
    hashing.seen.clear()
    await service.remember(user, text, message_id=None)
    await service.recall(user, f"what was {sensitive}?", k=3)
    [memory] = await stored(pool, user)
    assert secret not in memory.content
    assert memory.content == scrub(text).strip()
    assert hashing.seen and not any(secret in seen for seen in hashing.seen)


async def test_p16_memories_persist_across_restarts() -> None:
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="p16", dir="/tmp"))
    user = person()
    try:
        server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
        uri = server.get_uri()
        await migrate(uri)
        pool = await create_pool(uri)
        first = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
        await first.remember(user, "my daughter's name is Ada", message_id=None)
        await pool.close()
        server.cleanup()  # the Postgres process stops: a restart of the whole deployment

        server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
        pool = await create_pool(server.get_uri())
        second = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
        hits = await second.recall(user, "daughter name", k=1)
        await pool.close()
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert [h.content for h in hits] == ["my daughter's name is Ada"]


PARAPHRASES = [
    ("My favourite colour is teal.", "Which color do I like best?"),
    ("I'm allergic to peanuts.", "Is there any food that makes me sick?"),
    ("My sister Maria lives in Toronto.", "Where does my sibling live?"),
    ("I drive a red Tesla Model 3.", "What car do I own?"),
    ("I run a marathon every October.", "Which race do I take part in each autumn?"),
    ("Our team deploys to production on Thursdays.", "On which weekday do we release?"),
    ("I am learning to play the cello.", "Which instrument am I studying?"),
    ("My dog Biscuit is a golden retriever.", "What breed is my pet?"),
]


@pytest.fixture(scope="module")
async def paraphrase_user(minilm_service: MemoryService) -> UserKey:
    user = person()
    for fact, _ in PARAPHRASES:
        await minilm_service.remember(user, fact, message_id=None)
    return user


@settings(max_examples=20, deadline=None)
@given(pair=st.sampled_from(PARAPHRASES), shout=st.booleans())
async def test_p17_stored_text_is_recalled_by_a_paraphrase(
    minilm_service: MemoryService, paraphrase_user: UserKey, pair: tuple[str, str], shout: bool
) -> None:
    fact, question = pair
    hits = await minilm_service.recall(paraphrase_user, question.upper() if shout else question, k=1)
    assert [h.content for h in hits] == [fact]


@settings(max_examples=10, deadline=None)
@given(texts=st.lists(memory_texts, min_size=1, max_size=8, unique_by=lambda t: frozenset(t.split())))
async def test_p17_stored_text_round_trips_by_similarity(minilm_service: MemoryService, texts: list[str]) -> None:
    user = person()
    for text in texts:
        await minilm_service.remember(user, text, message_id=None)
    for text in texts:
        assert (await minilm_service.recall(user, text, k=1))[0].content == text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=st.lists(st.floats(0, 400), min_size=1, max_size=12), retention=st.integers(1, 365))
async def test_p18_memories_older_than_retention_are_deleted(
    pool: asyncpg.Pool, service: MemoryService, ages: list[float], retention: int
) -> None:
    user = person()
    now = datetime.now(UTC)
    for i, age in enumerate(ages):
        memory_id = await service.store(user, f"memory number {i}")
        await pool.execute("UPDATE memories SET created_at = $2 WHERE id = $1", memory_id, now - timedelta(days=age))
    await cleanup_memories(pool, retention_days=retention, now=now)
    kept = {m.content for m in await stored(pool, user)}
    assert kept == {f"memory number {i}" for i, age in enumerate(ages) if age <= retention}


async def test_a_global_hnsw_index_with_a_user_filter_loses_rows(pool: asyncpg.Pool) -> None:
    """Why the store never filters a shared HNSW index: pgvector 0.6.2 returns the filter's
    survivors among ef_search candidates, often fewer than k."""
    rng = np.random.default_rng(3)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("CREATE TEMP TABLE shared_index (user_id int, e vector(8)) ON COMMIT DROP")
        await conn.copy_records_to_table(
            "shared_index", records=[(i % 300, rng.standard_normal(8).astype(np.float32)) for i in range(3000)]
        )
        await conn.execute("CREATE INDEX ON shared_index USING hnsw (e vector_cosine_ops)")
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(
            "SELECT * FROM shared_index WHERE user_id = 7 ORDER BY e <=> $1 LIMIT 10",
            rng.standard_normal(8).astype(np.float32),
        )
    assert len(rows) < 10


async def test_a_per_user_filter_never_loses_results(pool: asyncpg.Pool, service: MemoryService) -> None:
    workspace = f"T{uuid.uuid4().hex[:10]}"
    sizes = {f"U{i}": n for i, n in enumerate([0, 1, 3, 9, 10, 11, 25, 60])}
    for user_id, n in sizes.items():
        user = UserKey(platform="slack", workspace_id=workspace, user_id=user_id)
        for j in range(n):
            await service.remember(user, f"{user_id} note {j} about coffee", message_id=None)
    for user_id, n in sizes.items():
        user = UserKey(platform="slack", workspace_id=workspace, user_id=user_id)
        hits = await service.recall(user, "coffee", k=10)
        assert len(hits) == min(10, n)
        assert all(h.content.startswith(f"{user_id} ") for h in hits)


async def test_a_large_scope_is_served_by_its_own_partial_hnsw_index(
    pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person()
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((1200, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with pool.acquire() as conn:
        await store.copy_memories(
            conn, [store.copy_record(user, f"row {i}", v, service.model) for i, v in enumerate(vectors)]
        )
    assert await maintenance.ensure_scope_indexes(pool, model=service.model, dimensions=64, min_rows=1000)
    query = vectors[0] * 0.6 + vectors[1] * 0.4
    async with person_scope(pool, user) as conn:
        found = await search.search(conn, user, query="", vector=query, model=service.model, pool_size=25, recent=0)
    assert found.path == "hnsw"  # the walk is through this index: tests/test_memory_recall_statement.py
    assert len(found.candidates) == 25
    truth = {f"row {i}" for i in np.argsort(-(vectors @ query))[:10]}
    assert len(truth & {c.content for c in found.candidates}) >= 9
    assert len(await service.recall(user, "row", k=40)) == 40
    await maintenance.drop_scope_indexes(pool, user)


async def test_maintenance_indexes_a_person_from_large_scope_rows_memories_and_not_one_short(
    pool: asyncpg.Pool,
) -> None:
    rows = MemoryConfig().large_scope_rows
    model = f"test:threshold-{uuid.uuid4().hex[:8]}"  # only this test's people can qualify
    reached, short = person(), person()
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((rows, 16)).astype(np.float32)
    async with pool.acquire() as conn:
        for user, n in ((reached, rows), (short, rows - 1)):
            await store.copy_memories(
                conn, [store.copy_record(user, f"row {i}", v, model) for i, v in enumerate(vectors[:n])]
            )
    assert len(await maintenance.ensure_scope_indexes(pool, model=model, dimensions=16, min_rows=rows)) == 1
    try:
        for user, path in ((reached, "hnsw"), (short, "exact")):
            async with person_scope(pool, user) as conn:
                found = await search.search(
                    conn, user, query="", vector=vectors[0], model=model, pool_size=10, recent=0
                )
            assert found.path == path, user
    finally:
        await maintenance.drop_scope_indexes(pool, reached)


async def test_reembed_gives_every_memory_a_vector_of_the_new_model(pool: asyncpg.Pool) -> None:
    user = person()
    old = MemoryService(pool, Embedder(HashingEmbeddingModel(dims=64)), MemoryConfig())
    for text in ["tea with lemon", "kayak trip in June", "a cello lesson"]:
        await old.remember(user, text, message_id=None)
    new = MemoryService(pool, Embedder(HashingEmbeddingModel(dims=32)), MemoryConfig())
    assert await pending_reembed(pool, new.model, workspace=user.workspace) == 3
    progress: list[int] = []
    done = await reembed(pool, new.embedder, batch=2, workspace=user.workspace, progress=progress.append)
    assert done == 3 and progress == [2, 3]
    assert await pending_reembed(pool, new.model, workspace=user.workspace) == 0
    assert [h.content for h in await new.recall(user, "kayak June", k=1)] == ["kayak trip in June"]


# --- the bounded search against a full scan of the scope ----------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ScannedRow:
    """One memory as a full scan sees it: `tf` maps the query's lexemes in it to their counts, None
    when it does not match the query."""

    id: int
    thread: str | None
    created_at: datetime
    similarity: float | None
    vector: np.ndarray | None
    """The memory's vector when it is of the query's model."""
    dl: int
    tf: dict[str, int] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    signals: Signals
    previous: Signals | None
    following: Signals | None


def centred_similarity(vector: np.ndarray, query: np.ndarray, mean: np.ndarray) -> float:
    """Cosine of `vector` and `query` measured from `mean`; 0 for either at the mean."""
    apart, asked = vector.astype(np.float64) - mean, query.astype(np.float64) - mean
    if np.linalg.norm(apart) <= search.AT_MEAN * np.linalg.norm(vector) or np.linalg.norm(
        asked
    ) <= search.AT_MEAN * np.linalg.norm(query):
        return 0.0
    return float(apart @ asked / (np.linalg.norm(apart) * np.linalg.norm(asked)))


def full_scan(rows: Sequence[ScannedRow], *, query: np.ndarray | None, limit: int, recent: int) -> dict[int, Expected]:
    """What the search must return, computed the slow, obvious way over every row: the `limit` best
    by similarity and by BM25, the `recent` newest, the thread neighbours of the best, and with no
    signal at all the newest up to `limit`; similarities measured from the mean of the picked."""
    n = len(rows)
    avgdl = max(sum(r.dl for r in rows) / n, 1.0) if n else 1.0
    df: dict[str, int] = {}
    for r in rows:
        for lexeme in r.tf or {}:
            df[lexeme] = df.get(lexeme, 0) + 1
    text: dict[int, float] = {}
    for r in rows:
        if r.tf:
            text[r.id] = sum(
                math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                * tf
                * (search.BM25_K1 + 1)
                / (tf + search.BM25_K1 * (1 - search.BM25_B + search.BM25_B * r.dl / avgdl))
                for w, tf in r.tf.items()
            )
    by_vector = sorted((r for r in rows if r.similarity is not None), key=lambda r: (r.similarity, r.id), reverse=True)
    by_text = sorted(text, key=lambda i: (text[i], i), reverse=True)
    best = {r.id for r in by_vector[:limit]} | set(by_text[:limit])
    by_time = [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    silent = {r.id for r in rows if r.similarity is None and r.id not in text}
    picked = best | set(by_time[:recent]) | {i for i in by_time[:limit] if i in silent}
    before: dict[int, int] = {}
    after: dict[int, int] = {}
    threads: dict[str, list[int]] = {}
    for r in sorted(rows, key=lambda r: r.id):
        if r.thread is not None:
            threads.setdefault(r.thread, []).append(r.id)
    for ids in threads.values():
        for a, b in itertools.pairwise(ids):
            after[a], before[b] = b, a
    picked |= {before[i] for i in best if i in before} | {after[i] for i in best if i in after}
    vectors = {r.id: r.vector for r in rows if r.vector is not None}
    mean = np.mean([vectors[i].astype(np.float64) for i in picked if i in vectors] or [np.zeros(1)], axis=0)
    signals = {
        r.id: Signals(
            similarity=None
            if query is None or r.vector is None
            else centred_similarity(r.vector, query, mean.astype(np.float32).astype(np.float64)),
            text_score=text.get(r.id, 0.0),
        )
        for r in rows
    }
    return {
        i: Expected(
            signals=signals[i],
            previous=signals[before[i]] if i in before else None,
            following=signals[after[i]] if i in after else None,
        )
        for i in picked
    }


def assert_same_signals(got: Signals | None, want: Signals | None) -> None:
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert (got.similarity is None) == (want.similarity is None)
        assert got.similarity == pytest.approx(want.similarity, abs=1e-5)  # float4 vectors in Postgres
        assert got.text_score == pytest.approx(want.text_score, abs=1e-9)


MODEL = "test:scan"


@st.composite
def scopes(draw: st.DrawFn) -> list[tuple[str, str | None, int, str | None]]:
    """Memories of one person: (text, thread, minutes after a fixed time, model). Few threads and
    minutes, so neighbours and creation-time ties are common; some rows carry another model's vector."""
    size = draw(st.integers(0, 40))
    return [
        (
            f"{i} " + draw(memory_texts),
            draw(st.sampled_from([None, "t1", "t2", "t3"])),
            draw(st.integers(0, 5)),
            draw(st.sampled_from([MODEL, MODEL, MODEL, "test:other", None])),
        )
        for i in range(size)
    ]


@DB_SETTINGS
@given(
    memories=scopes(),
    query=st.one_of(st.just(""), memory_texts, st.just("the and of")),
    with_vector=st.booleans(),
    limit=st.integers(1, 8),
    recent=st.integers(0, 4),
    generic=st.booleans(),
    seed=st.integers(0, 2**16),
)
async def test_search_gathers_what_a_full_scan_of_the_scope_ranks(
    pool: asyncpg.Pool,
    memories: list[tuple[str, str | None, int, str | None]],
    query: str,
    with_vector: bool,
    limit: int,
    recent: int,
    generic: bool,
    seed: int,
) -> None:
    user = person()
    other = UserKey(platform=user.platform, workspace_id=user.workspace_id, user_id="U2")
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((3, 8)).astype(np.float32)  # few distinct vectors: similarity ties
    start = datetime(2025, 1, 1, tzinfo=UTC)
    records = []
    for text, thread, minutes, model in memories:
        for owner in (user, other):  # a colleague's rows interleave in the same threads: never neighbours
            vector = shared[rng.integers(3)] if model else None
            records.append(
                (
                    owner.platform,
                    owner.workspace_id,
                    owner.user_id,
                    text,
                    store.content_hash(text),
                    thread,
                    vector,
                    model,
                    start + timedelta(minutes=minutes),
                )
            )
    vector = rng.standard_normal(8).astype(np.float32) if with_vector else None
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO memories (platform, workspace_id, user_id, content, content_hash, thread_id, embedding,"
            " embedding_model, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            records,
        )
    async with person_scope(pool, user) as conn:
        scanned = [
            ScannedRow(
                id=r["id"],
                thread=r["thread_id"],
                created_at=r["created_at"],
                similarity=r["similarity"],
                vector=r["embedding"].to_numpy() if r["similarity"] is not None else None,
                dl=r["dl"],
                tf=None if r["tf"] is None else json.loads(r["tf"]),
            )
            for r in await conn.fetch(
                """
                SELECT id, thread_id, created_at, length(tsv) AS dl, embedding,
                       CASE WHEN embedding_model = $4 THEN 1 - (embedding <=> $5) END AS similarity,
                       CASE WHEN $7 <> '' AND tsv @@ to_tsquery('english', $7) THEN (
                           SELECT coalesce(jsonb_object_agg(lexeme, greatest(cardinality(positions), 1)), '{}')
                           FROM unnest(tsv)
                           WHERE lexeme = ANY (tsvector_to_array(to_tsvector('english', $6)))) END AS tf
                FROM memories WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
                """,
                user.platform,
                user.workspace_id,
                user.user_id,
                MODEL,
                vector,
                query,
                search.or_query(query),
            )
        ]
        threads = {r.id: r.thread for r in scanned}
        if generic:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        found = await search.search(conn, user, query=query, vector=vector, model=MODEL, pool_size=limit, recent=recent)
    expected = full_scan(scanned, query=vector, limit=limit, recent=recent)
    assert found.path == "exact"
    assert sorted(c.id for c in found.candidates) == sorted(expected)
    for c in found.candidates:
        assert_same_signals(c.signals, expected[c.id].signals)
        assert_same_signals(c.previous, expected[c.id].previous)
        assert_same_signals(c.following, expected[c.id].following)
        assert c.thread_id == threads[c.id]
