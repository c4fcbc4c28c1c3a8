"""Round trips per turn (issue #22): an answered turn, with the learning it leaves for the background,
takes at most six Postgres transactions through the API door and through a platform's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence

import asyncpg
import httpx
import pytest
from pydantic_ai.embeddings import Embedder

from adapters.api.deps import ApiConfig
from bot.app import Seams
from bot.server import create_app
from bot.settings import Settings
from core.memory.extraction import FactDecision
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.pipeline import Pipeline
from core.seams import NoGuard, NoMedia, Verdict
from core.store import tenancy
from core.store.pool import create_pool
from core.store.tenancy import Tenant
from tests.api_helpers import bearer, fake_model_settings, live_server, new_key
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import RecordingSink, build_pipeline, message
from tests.strategies import HashingEmbeddingModel

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("allow_model_requests")]
MOST = 6
"""Claim, context read, turn start, finish with the memory write, and one more: the API's key and
session check, or a platform's record of the messages that carried the reply."""


async def nothing_new(prompt: str) -> FactDecision:
    """The model's fact extraction, deciding what it mostly decides: nothing to keep."""
    return FactDecision()


@pytest.fixture(params=["rules", "model"])
def memory(pool: asyncpg.Pool, request: pytest.FixtureRequest) -> MemoryService:
    """Facts learned by the rules, or by the model's extraction (the default where a model is set)."""
    extractor = nothing_new if request.param == "model" else None
    return MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig(), extractor=extractor)


@pytest.fixture
def begun(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Tenant]]:
    """Every transaction the tenancy wall opens from here on (each opens with `begin_sql`); a statement that
    names its tenant itself is a transaction of its own, not counted here (tests/test_turn_statements.py is)."""
    opened: list[Tenant] = []
    counted = tenancy.begin_sql

    def count(tenant: Tenant) -> str:
        opened.append(tenant)
        return counted(tenant)

    monkeypatch.setattr(tenancy, "begin_sql", count)
    yield opened


@pytest.fixture
def settings(openai_server: FakeOpenAI) -> Settings:
    return fake_model_settings(openai_server.base_url)


@pytest.fixture
def pipeline(pool: asyncpg.Pool, settings: Settings, memory: MemoryService) -> Pipeline:
    return build_pipeline(settings, pool, seams=Seams(media=NoMedia(), guard=NoGuard(), memory=memory))


@pytest.fixture
async def api(pool: asyncpg.Pool, settings: Settings, pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    config = ApiConfig(rate_per_min=1000, invalid_keys_per_min=1000, max_body_bytes=64 * 1024)
    app = create_app(settings, pipeline, pool, config=config)
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def test_an_answered_api_turn_takes_at_most_six_transactions_its_background_learning_included(
    api: httpx.AsyncClient, pool: asyncpg.Pool, memory: MemoryService, begun: list[Tenant]
) -> None:
    _, key = await new_key(pool)
    first = (await api.post("/v1/chat", json={"message": "hello there"}, headers=bearer(key))).json()
    await memory.drain()
    begun.clear()
    second = await api.post(
        "/v1/chat", json={"message": "and what now?", "session_id": first["session_id"]}, headers=bearer(key)
    )
    await memory.drain()
    assert second.status_code == 200 and second.json()["error"] is None
    assert len(begun) <= MOST, begun


async def test_an_answered_platform_turn_takes_at_most_six_transactions_its_delivery_included(
    pipeline: Pipeline, memory: MemoryService, begun: list[Tenant]
) -> None:
    first = message("hello there")
    await pipeline.run(first, RecordingSink())
    await memory.drain()
    begun.clear()
    reply = await pipeline.run(
        message("and what now?", workspace=first.workspace_id), RecordingSink(message_ids=["m1", "m2"])
    )
    await memory.drain()
    assert reply.error is None
    assert len(begun) <= MOST, begun


async def test_learning_from_a_message_that_states_nothing_costs_no_transaction_with_the_rules(
    pool: asyncpg.Pool, begun: list[Tenant]
) -> None:
    memory = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await memory.remember(_person(), "what time is the standup?", message_id=None)
    stored = len(begun)
    await memory.drain()
    assert len(begun) == stored


@pytest.mark.parametrize("outcome", ["nothing new", "failed"])
async def test_the_model_learning_a_persons_next_message_reads_no_facts_of_its_own(
    pool: asyncpg.Pool, begun: list[Tenant], outcome: str
) -> None:
    release = asyncio.Event()

    async def slow(prompt: str) -> FactDecision:
        await release.wait()
        if outcome == "failed":
            raise RuntimeError("the model answered no decision")
        return FactDecision()

    memory = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig(), extractor=slow)
    user = _person()
    await memory.remember(user, "good morning", message_id=None)
    await memory.remember(user, "what is on today?", message_id=None)  # while the first is being learned
    stored = len(begun)
    release.set()
    await memory.drain()
    assert len(begun) == stored


async def test_learning_a_stated_fact_with_the_rules_takes_one_transaction(
    pool: asyncpg.Pool, begun: list[Tenant]
) -> None:
    memory = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    user = _person()
    await memory.remember(user, "I work at Initech.", message_id=None)
    stored = len(begun)
    await memory.drain()
    assert len(begun) == stored + 1
    assert [f.content for f in await memory.facts(user, channel_id="C1", is_dm=True)] == ["works at Initech"]


def _person() -> UserKey:
    return UserKey(platform="console", workspace_id=f"w-{uuid.uuid4().hex[:8]}", user_id="U1")


@pytest.mark.parametrize("is_dm", [True, False])
async def test_a_turn_switches_no_tenant_in_a_dm_or_a_channel(
    pipeline: Pipeline, memory: MemoryService, monkeypatch: pytest.MonkeyPatch, is_dm: bool
) -> None:
    first = message("hello there", is_dm=is_dm)
    await pipeline.run(first, RecordingSink())
    await memory.drain()
    switched: list[Tenant] = []
    switch = tenancy._switch

    async def count(conn: asyncpg.Connection, tenant: Tenant) -> None:
        switched.append(tenant)
        await switch(conn, tenant)

    monkeypatch.setattr(tenancy, "_switch", count)
    reply = await pipeline.run(message("and what now?", workspace=first.workspace_id, is_dm=is_dm), RecordingSink())
    await memory.drain()
    assert reply.error is None
    assert switched == []


class DecidingGuard(NoGuard):
    """Input rails that pass every message, once `release` is set: a grey-zone message the model self-checks."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        self.asked.set()
        await self.release.wait()
        return Verdict(blocked=False, text=text)


async def test_input_rails_still_deciding_hold_no_connection_in_a_transaction(pg_uri: str, settings: Settings) -> None:
    own = await create_pool(pg_uri, max_size=4)
    try:
        memory = MemoryService(own, Embedder(HashingEmbeddingModel()), MemoryConfig())
        guard = DecidingGuard()
        pipeline = build_pipeline(settings, own, seams=Seams(media=NoMedia(), guard=guard, memory=memory))
        turn = asyncio.ensure_future(pipeline.run(message("hello there"), RecordingSink()))
        await guard.asked.wait()
        for _ in range(100):  # the reads finish; the start waits for the rails without a connection
            if own.get_size() == own.get_idle_size():
                break
            await asyncio.sleep(0.1)
        held = own.get_size() - own.get_idle_size()
        guard.release.set()
        reply = await turn
        await memory.drain()
    finally:
        await own.close()
    assert held == 0
    assert reply.error is None and reply.turn_id is not None
