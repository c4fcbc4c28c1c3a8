"""Isolation: no recall, history, profile, fact or export ever returns another tenant's row; row-level
security blocks a query that forgot its WHERE clause; the store agrees with an in-memory model, and
facts in person, channel and workspace scopes reach exactly the turns they may."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule
from pydantic_ai.embeddings import Embedder

from core.memory import maintenance
from core.memory.conversations import user_history
from core.memory.facts import Home, NewFact, Said, add_fact
from core.memory.forget import export_user, forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.memory.scope import fact_scope, person_scope
from core.memory.service import MemoryConfig, MemoryService
from core.memory.store import content_hash
from core.models import UserKey
from core.store.pool import create_pool
from tests.strategies import HashingEmbeddingModel, memory_texts, tenant_sets

DB = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def isolated(tenants: list[UserKey]) -> list[UserKey]:
    """The drawn tenants, moved into a namespace of this example so examples never share rows."""
    run = uuid.uuid4().hex[:8]
    return [UserKey(platform=t.platform, workspace_id=f"{run}:{t.workspace_id}", user_id=t.user_id) for t in tenants]


def marker(user: UserKey) -> str:
    return f"{user.platform}|{user.workspace_id}|{user.user_id}"


@DB
@given(tenants=tenant_sets(min_size=2, max_size=8), query=memory_texts)
async def test_no_tenant_ever_sees_another_tenants_rows(pool: asyncpg.Pool, tenants: list[UserKey], query: str) -> None:
    tenants = isolated(tenants)
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    for i, user in enumerate(tenants):
        tag = marker(user)
        await service.remember(user, f"{query} owned by {tag}", message_id=None)
        await service.remember(user, f"note {i} of {tag}", message_id=None)
        await service.remember(user, f"my team is {tag}", message_id=None)
        await update_profile(pool, user, ProfileChanges(about=f"about {tag}"))
        await pool.execute(
            "INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content)"
            " VALUES ($1, $2, 'C', 'T', $3, 'user', $4)",
            user.platform,
            user.workspace_id,
            user.user_id,
            f"message of {tag}",
        )
    for user in tenants:
        tag = marker(user)
        hits = await service.recall(user, query, k=50)
        assert len(hits) == 3
        assert all(h.content.endswith(tag) for h in hits)
        assert [m.content for m in await user_history(pool, user)] == [f"message of {tag}"]
        assert (await get_profile(pool, user)).about == f"about {tag}"
        await service.drain()
        [fact] = await service.facts(user, channel_id="C", is_dm=False)
        assert (fact.scope, fact.author_id) == ("person", user.user_id)
        assert f"their team is {tag}".startswith(fact.content)  # the tag may hold a sentence end
        exported = await export_user(pool, user)
        assert all(f["author_id"] == user.user_id for f in exported.pop("shared_facts_told"))
        for table, rows in exported.items():
            if isinstance(rows, list):
                assert all(
                    (r["platform"], r["workspace_id"], r["user_id"]) == (user.platform, user.workspace_id, user.user_id)
                    for r in rows
                ), table


@DB
@given(tenants=tenant_sets(min_size=2, max_size=6), data=st.data())
async def test_forgetting_one_tenant_leaves_every_other_tenant_intact(
    pool: asyncpg.Pool, tenants: list[UserKey], data: st.DataObject
) -> None:
    tenants = isolated(tenants)
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    for user in tenants:
        await service.remember(user, f"fact of {marker(user)}", message_id=None)
        await update_profile(pool, user, ProfileChanges(language="German"))
    await service.drain()
    gone = data.draw(st.sampled_from(tenants))
    counts = await forget_user(pool, gone)
    assert counts["memories"] == 1 and counts["profiles"] == 1
    for user in tenants:
        expected = 0 if user == gone else 1
        assert len(await service.recall(user, "fact", k=5)) == expected
        assert (await get_profile(pool, user)).language == (None if user == gone else "German")


async def test_row_level_security_blocks_a_query_without_a_where_clause(pool: asyncpg.Pool) -> None:
    a, b = isolated(
        [
            UserKey(platform="slack", workspace_id="T1", user_id="U1"),
            UserKey(platform="slack", workspace_id="T2", user_id="U1"),
        ]
    )
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await service.remember(a, "secret plan of a", message_id=None)
    await service.remember(b, "secret plan of b", message_id=None)
    await update_profile(pool, b, ProfileChanges(display_name="Bee"))
    async with person_scope(pool, a) as conn:
        assert await conn.fetchval("SELECT current_user") == "parley_app"
        contents = {r["content"] for r in await conn.fetch("SELECT content FROM memories")}
        assert contents == {"secret plan of a"}
        assert await conn.fetch("SELECT * FROM profiles") == []
        assert await conn.execute("DELETE FROM memories WHERE content = 'secret plan of b'") == "DELETE 0"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with person_scope(pool, a) as conn:
            await conn.execute(
                "INSERT INTO memories (platform, workspace_id, user_id, content, content_hash)"
                " VALUES ($1, $2, $3, 'planted', $4)",
                b.platform,
                b.workspace_id,
                b.user_id,
                content_hash("planted"),
            )
    async with pool.acquire() as conn:  # the connecting role (owner or superuser) sees everything
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM memories"
                " WHERE content LIKE 'secret plan of %' AND workspace_id = ANY($1::text[])",
                [a.workspace_id, b.workspace_id],
            )
            == 2
        )


# --- the store beside a trivially correct model ---------------------------------------------------


def normal(text: str) -> str:
    return " ".join(text.split()).casefold()


class MemoryAgreement(RuleBasedStateMachine):
    """remember / forget / recall on the real store agree with a dict of sets after every step."""

    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.loop.run_until_complete(create_pool(PG_URI[0], max_size=2))
        # a model of its own (no other test's scope gets an index here), and a pool of k: an indexed
        # scope's approximate search then answers whenever it finds k
        self.service = MemoryService(
            self.pool, Embedder(HashingEmbeddingModel(dims=INDEXED_DIMS)), MemoryConfig(candidate_pool=1)
        )
        self.model: dict[UserKey, dict[str, str]] = {}
        self.run = uuid.uuid4().hex[:8]

    def teardown(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()

    @initialize()
    def start(self) -> None:
        self.model = {}

    @rule(target=users, workspace=st.sampled_from(["T1", "T2"]), user=st.sampled_from(["U1", "U2", "U3"]))
    def person(self, workspace: str, user: str) -> UserKey:
        key = UserKey(platform="slack", workspace_id=f"{self.run}:{workspace}", user_id=user)
        self.model.setdefault(key, {})
        return key

    @rule(user=users, text=memory_texts)
    def remember(self, user: UserKey, text: str) -> None:
        self.loop.run_until_complete(self.service.remember(user, text, message_id=None))
        self.loop.run_until_complete(self.service.drain())
        self.model.setdefault(user, {}).setdefault(normal(text), text)

    @rule(user=consumes(users))
    def forget(self, user: UserKey) -> None:
        self.loop.run_until_complete(forget_user(self.pool, user))
        self.model[user] = {}

    @rule(user=users, query=memory_texts)
    def recall_from_an_indexed_scope(self, user: UserKey, query: str) -> None:
        """Every scope gets its own HNSW index, as large ones do: recall then walks it and takes its text
        hits from `memory_text_hits`, which runs outside row-level security."""
        self.loop.run_until_complete(
            maintenance.ensure_scope_indexes(self.pool, model=self.service.model, dimensions=INDEXED_DIMS, min_rows=1)
        )
        self.recall(user, query, 1)

    @rule(user=users, query=memory_texts, k=st.integers(1, 12))
    def recall(self, user: UserKey, query: str, k: int) -> None:
        hits = self.loop.run_until_complete(self.service.recall(user, query, k=k))
        expected = self.model.get(user, {})
        assert len(hits) == min(k, len(expected))
        assert {normal(h.content) for h in hits} <= set(expected)

    @invariant()
    def everything_remembered_is_recalled(self) -> None:
        for user, expected in self.model.items():
            hits = self.loop.run_until_complete(self.service.recall(user, "", k=100))
            assert {normal(h.content) for h in hits} == set(expected)


PG_URI: list[str] = []
INDEXED_DIMS = 24
WORKSPACES = st.sampled_from(["T1", "T2"])
PEOPLE = st.sampled_from(["U1", "U2", "U3"])
CHANNELS = st.sampled_from(["C1", "C2", ""])


@pytest.fixture
def state_machine_db(pg_uri: str) -> Iterator[None]:
    PG_URI[:] = [pg_uri]
    yield
    PG_URI.clear()


def test_store_agrees_with_an_in_memory_model(state_machine_db: None) -> None:
    MemoryAgreement.TestCase.settings = settings(
        max_examples=15, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
    )
    MemoryAgreement.TestCase().runTest()


# --- facts in three scopes beside a model of who may see what ------------------------------------

Place = tuple[str, str]
"""(workspace, channel): a channel of a workspace; channel "" is a direct message."""


class FactScopes(RuleBasedStateMachine):
    """Person, channel and workspace facts, told and forgotten by several people in two workspaces:
    what reaches a turn's prompt is always the person's own facts, the workspace's notes and the
    channel's notes (none in a DM), never anyone else's, and forgetting an author keeps the team's
    notes with the authorship blanked."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.loop.run_until_complete(create_pool(PG_URI[0], max_size=2))
        self.service = MemoryService(self.pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
        self.run = uuid.uuid4().hex[:8]
        self.told = 0
        self.own: dict[UserKey, set[str]] = {}
        self.shared: dict[Place, dict[str, str | None]] = {}
        """(workspace, channel "" for the workspace's notes) -> note -> its author (None once forgotten)."""

    def teardown(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()

    def key(self, workspace: str, user: str) -> UserKey:
        return UserKey(platform="slack", workspace_id=f"{self.run}:{workspace}", user_id=user)

    def text(self, words: str) -> str:
        self.told += 1
        return f"{' '.join(words.split()) or 'x'} #{self.told}"

    @rule(workspace=WORKSPACES, user=PEOPLE, words=memory_texts, channel=CHANNELS)
    def tell_own(self, workspace: str, user: str, words: str, channel: str) -> None:
        key, content = self.key(workspace, user), self.text(words)
        self.loop.run_until_complete(self._add(key, channel, Home.person(user), content))
        self.own.setdefault(key, set()).add(content)

    @rule(workspace=WORKSPACES, user=PEOPLE, words=memory_texts, channel=st.sampled_from(["C1", "C2"]))
    def tell_channel(self, workspace: str, user: str, words: str, channel: str) -> None:
        content = self.text(words)
        self.loop.run_until_complete(self._add(self.key(workspace, user), channel, Home.channel(channel), content))
        self.shared.setdefault((workspace, channel), {})[content] = user

    @rule(workspace=WORKSPACES, user=PEOPLE, words=memory_texts, channel=CHANNELS)
    def tell_workspace(self, workspace: str, user: str, words: str, channel: str) -> None:
        content = self.text(words)
        self.loop.run_until_complete(self._add(self.key(workspace, user), channel, Home.workspace(), content))
        self.shared.setdefault((workspace, ""), {})[content] = user

    @rule(workspace=WORKSPACES, user=PEOPLE)
    def forget(self, workspace: str, user: str) -> None:
        self.loop.run_until_complete(forget_user(self.pool, self.key(workspace, user)))
        self.own.pop(self.key(workspace, user), None)
        for (place_workspace, _), notes in self.shared.items():
            if place_workspace == workspace:
                for note, author in notes.items():
                    notes[note] = None if author == user else author

    @invariant()
    def every_turn_sees_exactly_what_it_may(self) -> None:
        for workspace in ("T1", "T2"):
            for user in ("U1", "U2", "U3"):
                key = self.key(workspace, user)
                for channel in ("C1", "C2", ""):
                    seen = self.loop.run_until_complete(
                        self.service.facts(key, channel_id=channel, is_dm=not channel)
                    )
                    expected = {(c, "person", user) for c in self.own.get(key, set())}
                    expected |= {(c, "workspace", a) for c, a in self.shared.get((workspace, ""), {}).items()}
                    if channel:
                        expected |= {(c, "channel", a) for c, a in self.shared.get((workspace, channel), {}).items()}
                    assert {(f.content, f.scope, f.author_id) for f in seen} == expected

    async def _add(self, key: UserKey, channel: str, home: Home, content: str) -> None:
        said = Said(author_id=key.user_id, channel_id=channel, at=datetime.now(UTC))
        async with fact_scope(self.pool, key, channel) as conn:
            await add_fact(conn, key, home, NewFact(content=content), said)


def test_fact_scopes_agree_with_a_model_of_who_may_see_what(state_machine_db: None) -> None:
    FactScopes.TestCase.settings = settings(
        max_examples=8, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
    )
    FactScopes.TestCase().runTest()
