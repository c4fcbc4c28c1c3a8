"""A turn's context read, start and finish, each one statement that names its tenant itself (migration 0038,
issue #22's fifteenth stop): the finish stores the reply, its usage and totals and the message's memory row
together or not at all, row-level security bounds every row they touch, and the context (facts, profile,
recall) is what the separate reads give."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import pytest
from pydantic_ai.embeddings import Embedder

from bot.app import Seams
from core import turns
from core.memory.extraction import FactDecision
from core.memory.facts import Fact, Home, NewFact, Said, add_fact
from core.memory.profiles import ProfileChanges, update_profile
from core.memory.scope import fact_scope
from core.memory.service import MemoryConfig, MemoryService
from core.memory.store import NewMemory
from core.models import Inbound, Reply, UserKey
from core.seams import NoGuard, NoMedia, Profile
from core.store import tenancy
from core.store.pool import create_pool
from core.store.roles import ensure_app_login
from core.store.tenancy import Tenant
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline, message, settings_for
from tests.strategies import HashingEmbeddingModel

CALL = turns.ModelCall(model="m", input_tokens=3, output_tokens=4, cost_usd=0.5)


@pytest.fixture(scope="module")
async def app_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool that logs in as `parley_app`, the way `parley serve` does."""
    pool = await create_pool(await ensure_app_login(pg_uri), max_size=2)
    yield pool
    await pool.close()


async def started(pool: asyncpg.Pool, text: str = "my kite is red") -> tuple[Inbound, int, int]:
    inbound = message(text)
    assert (await turns.claim_turn(pool, inbound.user.workspace, inbound.event_id, owner=None, budgets=())).claimed
    turn_id, message_id = await turns.start_turn(pool, inbound, text=text, model="m")
    return inbound, turn_id, message_id


def memory_of(text: str, message_id: int, vector: list[float]) -> NewMemory:
    vectors = np.array(vector, dtype=np.float32)
    return NewMemory(content=text, embedding=vectors, model="m", source_message_id=message_id)


async def stored(pool: asyncpg.Pool, inbound: Inbound, turn_id: int) -> dict[str, object]:
    """What the database holds of the turn (read as the owner, past every wall)."""
    keys = (inbound.platform, inbound.workspace_id)
    return {
        "status": await pool.fetchval("SELECT status FROM turns WHERE id = $1", turn_id),
        "messages": [
            tuple(r) for r in await pool.fetch(
                "SELECT role, content FROM messages WHERE platform = $1 AND workspace_id = $2 ORDER BY id", *keys
            )
        ],
        "usage": await pool.fetchval("SELECT count(*) FROM usage WHERE turn_id = $1", turn_id),
        "memories": [
            tuple(r) for r in await pool.fetch(
                "SELECT content, source_message_id FROM memories WHERE platform = $1 AND workspace_id = $2", *keys
            )
        ],
        "finished": await pool.fetchval(
            "SELECT finished_at IS NOT NULL FROM processed_events WHERE platform = $1 AND workspace_id = $2"
            " AND event_id = $3", *keys, inbound.event_id,
        ),
    }


async def test_a_finish_stores_the_reply_its_usage_and_the_messages_memory_row_in_one_statement(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    inbound, turn_id, message_id = await started(app_pool)
    reply = Reply(text="noted", thread_id=inbound.thread_id, turn_id=turn_id)
    await turns.finish_turn(
        app_pool, inbound, turn_id=turn_id, reply=reply, calls=[CALL], trace_id=None,
        memory=memory_of("my kite is red", message_id, [1.0, 0.0]),
    )
    assert await stored(pool, inbound, turn_id) == {
        "status": "answered",
        "messages": [("user", "my kite is red"), ("assistant", "noted")],
        "usage": 1,
        "memories": [("my kite is red", message_id)],
        "finished": True,
    }


async def test_a_finish_that_fails_stores_nothing_and_its_retry_stores_everything_once(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    inbound, turn_id, message_id = await started(app_pool)
    reply = Reply(text="noted", thread_id=inbound.thread_id, turn_id=turn_id)
    with pytest.raises(asyncpg.PostgresError):  # the memory row is refused (pgvector takes no NaN) after the reply
        await turns.finish_turn(
            app_pool, inbound, turn_id=turn_id, reply=reply, calls=[CALL], trace_id=None,
            memory=memory_of("my kite is red", message_id, [float("nan"), 0.0]),
        )
    before = await stored(pool, inbound, turn_id)
    await turns.finish_turn(
        app_pool, inbound, turn_id=turn_id, reply=reply, calls=[CALL], trace_id=None,
        memory=memory_of("my kite is red", message_id, [1.0, 0.0]),
    )
    assert before == {
        "status": "started", "messages": [("user", "my kite is red")], "usage": 0, "memories": [], "finished": False,
    }
    assert await stored(pool, inbound, turn_id) == {
        "status": "answered",
        "messages": [("user", "my kite is red"), ("assistant", "noted")],
        "usage": 1,
        "memories": [("my kite is red", message_id)],
        "finished": True,
    }


async def test_a_finish_named_for_another_workspace_cannot_touch_this_workspaces_turn(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    _, turn_id, _ = await started(app_pool)
    intruder = message("hello")  # another workspace, naming this turn's id
    reply = Reply(text="", thread_id=intruder.thread_id, turn_id=turn_id, error="overwritten")
    await turns.finish_turn(app_pool, intruder, turn_id=turn_id, reply=reply, calls=[], trace_id=None)
    assert await pool.fetchval("SELECT status FROM turns WHERE id = $1", turn_id) == "started"


async def test_a_start_stores_the_message_with_its_turn_in_the_persons_scope(
    pool: asyncpg.Pool, app_pool: asyncpg.Pool
) -> None:
    inbound, turn_id, message_id = await started(app_pool, "hello there")
    row = await pool.fetchrow("SELECT turn_id, user_id, content FROM messages WHERE id = $1", message_id)
    assert row is not None and tuple(row) == (turn_id, inbound.user_id, "hello there")


@pytest.fixture
async def said(pool: asyncpg.Pool) -> Inbound:
    """A person with a profile, a fact of their own, a colleague's, a workspace note, a note of the channel C1
    and one of C2."""
    inbound = message("hi")
    user, colleague = inbound.user, message("hi", workspace=inbound.workspace_id, user="U2").user
    at = datetime(2026, 12, 1, tzinfo=UTC)
    await update_profile(pool, user, ProfileChanges(display_name="Ada", timezone="Europe/Lisbon"))
    facts = [
        (user, Home.person("U1"), "likes kites"),
        (colleague, Home.person("U2"), "likes boats"),
        (user, Home.workspace(), "standup is at nine"),
        (user, Home.channel("C1"), "C1 ships on Fridays"),
        (user, Home.channel("C2"), "C2 is for design"),
    ]
    for i, (who, home, content) in enumerate(facts):
        async with fact_scope(pool, who.workspace) as conn:
            await add_fact(conn, who, home, NewFact(content=content), Said(author_id=who.user_id, channel_id="",
                                                                           at=at.replace(hour=i)))
    return inbound


@pytest.mark.parametrize(("is_dm", "expected"), [
    (True, ["likes kites", "standup is at nine"]),
    (False, ["likes kites", "standup is at nine", "C1 ships on Fridays"]),
])
async def test_a_turns_context_is_the_persons_facts_in_force_and_profile_as_read_apart(
    app_pool: asyncpg.Pool, said: Inbound, is_dm: bool, expected: list[str]
) -> None:
    memory = MemoryService(app_pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    known, profile, _ = await memory.context(said.user, "kites", k=3, channel_id="C1", is_dm=is_dm)
    assert [f.content for f in known] == expected
    assert known == await memory.facts(said.user, channel_id="C1", is_dm=is_dm)
    assert profile == await memory.profile(said.user) and profile.display_name == "Ada"


async def test_a_turns_context_recalls_what_recall_alone_gives(app_pool: asyncpg.Pool, said: Inbound) -> None:
    memory = MemoryService(app_pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    for text in ("my kite is red", "I flew the kite on Sunday", "lunch was soup", "the standup moved"):
        await memory.store(said.user, text)
    question = "which kite did I fly?"
    _, _, hits = await memory.context(said.user, question, k=2, channel_id="C1", is_dm=False)
    assert [h.content for h in hits] == [h.content for h in await memory.recall(said.user, question, k=2)]
    assert len(hits) == 2


async def test_a_turns_context_asked_for_no_memories_recalls_none(app_pool: asyncpg.Pool, said: Inbound) -> None:
    memory = MemoryService(app_pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await memory.store(said.user, "my kite is red")
    known, _, hits = await memory.context(said.user, "my kite?", k=0, channel_id="C1", is_dm=True)
    assert hits == [] and [f.content for f in known] == ["likes kites", "standup is at nine"]


async def test_a_turns_context_without_profile_facts_or_memories_is_empty(app_pool: asyncpg.Pool) -> None:
    memory = MemoryService(app_pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    user = message("hi", workspace=f"w-{uuid.uuid4().hex[:8]}").user
    assert await memory.context(user, "anything?", k=3, channel_id="C1", is_dm=False) == ([], Profile(), [])


class LearningFails(MemoryService):
    """A memory whose learning meets a database gone away, after the turn's finish has stored everything."""

    async def learn(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        channel_id: str = "",
        is_dm: bool = True,
        known: list[Fact] | None = None,
    ) -> None:
        raise ConnectionResetError("the database went away")


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_turn_whose_learning_fails_after_its_finish_still_answers_what_it_stored(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    memory = LearningFails(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    pipeline = build_pipeline(
        settings_for(openai_server), pool, seams=Seams(media=NoMedia(), guard=NoGuard(), memory=memory)
    )
    inbound = message("my kite is red")
    reply = await pipeline.run(inbound)
    assert reply.error is None and reply.turn_id is not None
    assert await stored(pool, inbound, reply.turn_id) == {
        "status": "answered",
        "messages": [("user", "my kite is red"), ("assistant", reply.text)],
        "usage": 1,
        "memories": [("my kite is red", await pool.fetchval(
            "SELECT id FROM messages WHERE turn_id = $1 AND role = 'user'", reply.turn_id
        ))],
        "finished": True,
    }


async def nothing_new(prompt: str) -> FactDecision:
    """The model's fact extraction, deciding what it mostly decides: nothing to keep."""
    return FactDecision()


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_turn_the_model_will_learn_from_reads_the_facts_it_is_shown_in_its_finish(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig(), extractor=nothing_new)
    pipeline = build_pipeline(
        settings_for(openai_server), pool, seams=Seams(media=NoMedia(), guard=NoGuard(), memory=memory)
    )
    begun: list[Tenant] = []
    counted = tenancy.begin_sql
    monkeypatch.setattr(tenancy, "begin_sql", lambda tenant: begun.append(tenant) or counted(tenant))
    shown: list[list[Fact] | None] = []
    learn = memory.learn

    async def spy(*args: Any, known: list[Fact] | None = None, **kwargs: Any) -> None:
        shown.append(known)
        await learn(*args, known=known, **kwargs)

    monkeypatch.setattr(memory, "learn", spy)
    reply = await pipeline.run(message("I moved to Lisbon last week"))
    await memory.drain()
    assert reply.error is None
    assert shown == [[]]  # asked and read by the finish: the person has no facts yet
    assert begun == []  # no transaction of BEGIN and COMMIT in the whole turn, its learning included
