"""Statements per turn (issue #22, ninth stop): every statement costs the worker (asyncpg, the loop's
wakeups) and Postgres (parse, bind, execute, row-level security), so a turn's count is held where it is.
The pool logs in as `parley_app`, as `parley serve` does, and logs every statement it sends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest
from pgvector.asyncpg import register_vector
from pydantic_ai.embeddings import Embedder

from adapters.api.deps import ApiConfig
from bot.app import Seams
from bot.server import create_app
from bot.settings import Settings
from core import turns
from core.memory.extraction import FactDecision
from core.memory.service import MemoryConfig, MemoryService
from core.models import WorkspaceKey
from core.pipeline import Pipeline
from core.seams import NoGuard, NoMedia
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from tests.api_helpers import bearer, fake_model_settings, live_server, new_key
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import RecordingSink, build_pipeline, message
from tests.strategies import HashingEmbeddingModel

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]
API_TURN = 5
"""The key and the session (migration 0039), the claim with the thread's history, the context (facts, profile and
recall), the start, and the reply with its memory row: each one statement that names its tenant itself (migrations
0034, 0038 and 0039)."""
PLATFORM_TURN = 5
"""No key or session; the record of the messages that carried the reply (one statement). A channel's facts
come in the same statement as a DM's: no tenant switch."""
TRANSACTIONS = 5
"""Each statement sent outside a BEGIN is a transaction of its own: the API's key and session, then the claim,
the context, the start and the finish; a platform's delivery record instead of the key."""


INTROSPECTION = ("typeinfo_tree", "set_config('jit'")
"""asyncpg's type introspection, once per connection and type on its first use: not the turn's."""


class Sent(list[str]):
    """Every statement the pool's connections send (asyncpg's query logger: text, not arguments), and the
    transactions they make: a BEGIN's, and each statement sent outside one, which is a transaction of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0
        self._open: set[int] = set()

    def logger(self, conn: asyncpg.Connection) -> Callable[[asyncpg.connection.LoggedQuery], None]:
        def log(query: asyncpg.connection.LoggedQuery) -> None:
            if any(marker in query.query for marker in INTROSPECTION):
                return
            self.append(query.query)
            if query.query.startswith("BEGIN"):
                self._open.add(id(conn))
                self.transactions += 1
            elif query.query in ("COMMIT", "ROLLBACK"):
                self._open.discard(id(conn))
            elif id(conn) not in self._open:
                self.transactions += 1

        return log

    def clear(self) -> None:
        super().clear()
        self.transactions = 0


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
async def app_pool(pg_uri: str, sent: Sent) -> AsyncIterator[asyncpg.Pool]:
    async def init(conn: asyncpg.Connection) -> None:
        await register_vector(conn)
        conn.add_query_logger(sent.logger(conn))

    async def keep_session(conn: asyncpg.Connection) -> None:
        """As core.store.pool: no reset statement on release."""

    uri = await ensure_app_login(pg_uri)
    pool = await asyncpg.create_pool(uri, min_size=1, max_size=8, init=init, reset=keep_session)
    assert pool is not None
    yield pool
    await pool.close()


async def nothing_new(prompt: str) -> FactDecision:
    """The model's fact extraction, deciding what it mostly decides: nothing to keep."""
    return FactDecision()


@pytest.fixture
def memory(app_pool: asyncpg.Pool) -> MemoryService:
    return MemoryService(app_pool, Embedder(HashingEmbeddingModel()), MemoryConfig(), extractor=nothing_new)


@pytest.fixture
def settings(openai_server: FakeOpenAI) -> Settings:
    return fake_model_settings(openai_server.base_url)


@pytest.fixture
def pipeline(app_pool: asyncpg.Pool, settings: Settings, memory: MemoryService) -> Pipeline:
    return build_pipeline(settings, app_pool, seams=Seams(media=NoMedia(), guard=NoGuard(), memory=memory))


async def test_an_answered_api_turn_sends_at_most_five_statements_in_five_transactions(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool, settings: Settings, pipeline: Pipeline, memory: MemoryService,
    sent: Sent,
) -> None:
    config = ApiConfig(rate_per_min=1000, invalid_keys_per_min=1000, max_body_bytes=64 * 1024)
    app = create_app(settings, pipeline, app_pool, config=config)
    _, key = await new_key(pool)
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        first = (await api.post("/v1/chat", json={"message": "hello there"}, headers=bearer(key))).json()
        await memory.drain()
        sent.clear()
        second = await api.post(
            "/v1/chat", json={"message": "and what now?", "session_id": first["session_id"]}, headers=bearer(key)
        )
        await memory.drain()
    assert second.status_code == 200 and second.json()["error"] is None
    assert len(sent) <= API_TURN, "\n".join(sent)
    assert sent.transactions <= TRANSACTIONS, "\n".join(sent)


@pytest.mark.parametrize("is_dm", [True, False])
async def test_an_answered_platform_turn_sends_at_most_five_statements_in_five_transactions(
    pipeline: Pipeline, memory: MemoryService, sent: Sent, is_dm: bool
) -> None:
    first = message("hello there", is_dm=is_dm)
    await pipeline.run(first, RecordingSink())
    await memory.drain()
    sent.clear()
    reply = await pipeline.run(
        message("and what now?", workspace=first.workspace_id, is_dm=is_dm), RecordingSink(message_ids=["m1", "m2"])
    )
    await memory.drain()
    assert reply.error is None
    assert len(sent) <= PLATFORM_TURN, "\n".join(sent)
    assert sent.transactions <= TRANSACTIONS, "\n".join(sent)


async def test_the_claim_reads_the_last_messages_of_its_own_thread_oldest_first(
    pipeline: Pipeline, memory: MemoryService, app_pool: asyncpg.Pool
) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    for text in ("one", "two", "three"):
        await pipeline.run(message(text, workspace=workspace, thread="T1"), RecordingSink())
    await pipeline.run(message("elsewhere", workspace=workspace, thread="T2"), RecordingSink())
    await memory.drain()
    claim = await turns.claim_turn(
        app_pool, WorkspaceKey(platform="console", workspace_id=workspace), uuid.uuid4().hex,
        owner=None, budgets=[], channel_id="C1", thread_id="T1", history=3,
    )
    assert [m.role for m in claim.history] == ["assistant", "user", "assistant"]
    assert claim.history[1].content == "three"


async def test_a_claim_leaves_its_connection_with_no_tenant_so_a_stray_statement_sees_no_row(
    pg_uri: str, pipeline: Pipeline, memory: MemoryService
) -> None:
    first = message("hello there")
    await pipeline.run(first, RecordingSink())
    await memory.drain()
    one = await create_pool(await ensure_app_login(pg_uri), max_size=1)
    try:
        claim = await turns.claim_turn(
            one, WorkspaceKey(platform="console", workspace_id=first.workspace_id), uuid.uuid4().hex,
            owner=None, budgets=[], channel_id="C1", thread_id="T1", history=5,
        )
        assert claim.claimed and len(claim.history) == 2
        async with one.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('parley.workspace_id', true)") == ""
            assert await conn.fetchval("SELECT count(*) FROM messages") == 0
    finally:
        await one.close()
