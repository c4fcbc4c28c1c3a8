"""`MemoryService`: the pipeline's memory stage on Postgres + pgvector.

Every user turn becomes a memory of that person in that workspace, masked before it is stored or
embedded. Recall fuses vector similarity, full-text match and recency (`core.memory.ranking`) and
returns k memories whenever the person has k. After the turn, in the background, the message's facts
are learnt (`core.memory.facts`): by the model when extraction is on and the message may state one
(`core.memory.fact_gate`: a question or request about other things costs no model call), else by the
deterministic rules, which also fill the profile and keep "remember for this channel: …" notes. It never
delays a reply.
A model that keeps failing to extract (one without structured output) is not asked again for
`extraction_pause_s`: the rules learn every message meanwhile, at no model call.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

import asyncpg
import numpy as np
from pydantic_ai import Embedder

from core.circuit import CircuitBreaker
from core.guard.masking import scrub
from core.memory import facts as fact_store
from core.memory import search as recall_search
from core.memory import store as db
from core.memory.embedding_backend import embed_one, model_label, warm_up
from core.memory.extraction import Add, Change, Delete, FactExtractor, extraction_prompt, plan_changes
from core.memory.fact_gate import may_state_facts
from core.memory.facts import Fact, Home, NewFact, Said
from core.memory.facts_rules import read_statements
from core.memory.facts_view import homes_for
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.memory.ranking import Candidate, Ranked, RankWeights, rank
from core.memory.reembed import pending_reembed, reembed
from core.memory.scope import fact_scope, person_scope
from core.memory.turn_context import turn_context
from core.memory.when import mentioned_window
from core.models import UserKey
from core.seams import MemoryHit, Profile
from core.store.tenancy import one_transaction, self_scoped

log = logging.getLogger(__name__)


RECENT_VECTORS = 256


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """Memory knobs; `bot/` fills them from settings (this package reads no environment)."""

    k: int = 6
    """Memories put into a prompt."""
    retention_days: int = 365
    candidate_pool: int = 100
    """Candidates taken per signal (vector, text) before fusion (LoCoMo recall@50 gains a point over 50)."""
    recent: int = 5
    """The newest memories always considered, so recency can break ties."""
    weights: RankWeights = field(default_factory=RankWeights)
    fact_neighbours: int = 30
    """The person's newest facts in force shown to the extraction model."""
    max_background: int = 2
    """Fact extractions and re-embeddings running at once."""
    max_extraction_backlog: int = 100
    """Messages waiting for the model's fact extraction at most. Under sustained load the model cannot keep
    up with every turn, and a queue without a bound holds every waiting message in memory and learns it
    ever later: past this many, a message is learned by the deterministic rules alone."""
    extraction_failures_to_pause: int = 5
    """Failed extractions in a row after which the model is not asked for a while (a model that cannot give
    structured output, such as a small local one, fails every time, each failure costing a model call)."""
    extraction_pause_s: float = 300.0
    """How long messages are learned by the rules alone before the model is asked again."""
    large_scope_rows: int = 5_000
    """A scope with this many memories gets its own partial HNSW index in maintenance. Below it the exact
    scan of the scope costs under ~19 ms of Postgres CPU even with words at a turn's pool (2.2 us a row);
    above it the walk is cheaper (2-9 ms, recall@10 >= 0.995, from 2,000 rows up) but every partial index
    on `memories` costs every other recall ~23 us of planning and every insert ~1.5 us, so it is not lower
    (docs/memory.md, "Ninth round"). LoCoMo's conversations (~600 memories) stay on the exact scan."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CandidatePool:
    """A recall's candidates before ranking, with the query they were found for (masked and stripped)."""

    query: str
    candidates: Sequence[Candidate]


def rank_pool(pool: CandidatePool, *, k: int, weights: RankWeights, now: datetime) -> list[Ranked]:
    """The best `k` of a pool as `recall` ranks them: the fused signals, and the time the query names
    (benchmarks/locomo_replay.py re-ranks saved pools through this too)."""
    return rank(pool.candidates, k=k, weights=weights, now=now, window=mentioned_window(pool.query, now=now))


class MemoryService:
    """Implements `core.seams.MemorySeam`; construct once per process and `await start()`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        config: MemoryConfig,
        *,
        extractor: FactExtractor | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.config = config
        self.extractor = extractor
        self.clock = clock
        self.model = model_label(embedder)
        self.dimensions: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.symmetric = self.model.startswith("sentence-transformers:")
        """Query and document embeddings are the same function: a turn's text is embedded once."""
        self._recent_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = asyncio.Semaphore(config.max_background)
        self._learning: weakref.WeakValueDictionary[UserKey, asyncio.Lock] = weakref.WeakValueDictionary()
        """One person's messages are learned one at a time, in the order said: a later fact supersedes."""
        self._unlearned: Counter[UserKey] = Counter()
        """Messages of each person handed to background learning and not learned yet."""
        self._extractions = 0
        """Messages waiting for, or in, the model's fact extraction."""
        self._known: dict[UserKey, list[Fact]] = {}
        """A person's facts as their last learned message left them, while more of their messages wait."""
        self._behind_logged = 0.0
        self._extraction_circuit = CircuitBreaker(
            failure_threshold=config.extraction_failures_to_pause, reset_after_s=config.extraction_pause_s
        )
        """Open while the model keeps failing to extract: the rules learn messages, and no model call is made."""

    async def start(self, *, reembed_in_background: bool = True, owner_pool: asyncpg.Pool | None = None) -> None:
        """Warm the model (the first turn should not pay for loading it) and, when memories carry
        vectors of another model, re-embed them in the background: across tenants, so on `owner_pool`
        when the service's own pool is the row-level-secured app role."""
        self.dimensions = await warm_up(self.embedder)
        owner = owner_pool or self.pool
        if reembed_in_background and await pending_reembed(owner, self.model):
            self._spawn(self._reembed(owner))

    async def recall(self, user: UserKey, query: str, *, k: int) -> list[MemoryHit]:
        if k <= 0:
            return []
        return self._hits(await self.candidate_pool(user, query, k=k), k)

    def _hits(self, pool: CandidatePool, k: int) -> list[MemoryHit]:
        ranked = rank_pool(pool, k=k, weights=self.config.weights, now=self.clock())
        return [
            MemoryHit(id=r.id, content=r.content, score=r.score, created_at=r.created_at.isoformat()) for r in ranked
        ]

    async def candidate_pool(self, user: UserKey, query: str, *, k: int) -> CandidatePool:
        """What `recall` ranks for the best `k`: the query masked as memories are, embedded, and the
        person's candidates for it (one statement: `core.memory.search`). Benchmarks that re-rank saved
        pools take them from here, so they measure the path a turn takes."""
        masked, vector = await self._query(query)
        async with self_scoped(self.pool) as conn:
            found = await recall_search.search(
                conn,
                user,
                query=masked,
                vector=vector,
                model=self.model,
                pool_size=max(self.config.candidate_pool, k),
                recent=self.config.recent,
            )
        return CandidatePool(query=masked, candidates=found.candidates)

    async def context(
        self, user: UserKey, query: str, *, k: int, channel_id: str, is_dm: bool
    ) -> tuple[list[Fact], Profile, list[MemoryHit]]:
        """A turn's facts in force (as `facts` reads them), the person's profile and the `k` memories `recall`
        gives for `query`: one statement after the query's encoder pass (none for `k` 0: no recall)."""
        masked, vector = await self._query(query) if k > 0 else ("", None)
        found = await turn_context(
            self.pool,
            user,
            channel_id="" if is_dm else channel_id,
            now=self.clock(),
            query=masked,
            vector=vector,
            model=self.model,
            pool_size=max(self.config.candidate_pool, k) if k > 0 else 0,
            recent=self.config.recent,
        )
        hits = self._hits(CandidatePool(query=masked, candidates=found.candidates), k) if k > 0 else []
        return found.facts, found.profile, hits

    async def _query(self, query: str) -> tuple[str, np.ndarray | None]:
        """A recall's query masked as memories are, and its vector (None where it is empty or the encoder
        failed: recall then goes by text and recency)."""
        masked = scrub(query).strip()
        vector = None
        if masked:
            try:
                vector = await embed_one(self.embedder, masked, input_type="query")
                self._keep_vector(masked, vector)
            except Exception as exc:  # a provider outage degrades recall to text and recency
                log.warning("memory: query embedding failed (%s); recalling by text only", type(exc).__name__)
        return masked, vector

    async def remember(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        thread_id: str | None = None,
        channel_id: str = "",
        is_dm: bool = True,
    ) -> None:
        """Store the turn, then learn its facts in the background (`learn`). A turn's pipeline writes the memory
        row with its finish instead (`memory_row`) and then calls `learn`."""
        await self.store(user, text, message_id=message_id, thread_id=thread_id)
        await self.learn(user, text, message_id=message_id, channel_id=channel_id, is_dm=is_dm)

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
        """Learn the facts of a message already stored, in the background. `channel_id` is where it was said
        (a shared note "for this channel" needs one: in a DM, pass is_dm).

        The facts the extraction model is shown are needed here only where the model is asked and none of the
        person's messages is still being learned (otherwise the person's previous message hands them on as its
        learning left them): `known`, where the message's storing read them (`memory_row` asks a turn's finish
        to), else read here."""
        content = scrub(text).strip()
        if not content:
            return
        said = Said(author_id=user.user_id, channel_id=channel_id, at=self.clock(), message_id=message_id)
        extract = (
            self.extractor is not None
            and may_state_facts(content)
            and self._extraction_circuit.allow()
            and self._extraction_has_room()
        )
        if not extract or self._unlearned[user]:
            known = None
        elif known is None:
            async with fact_scope(self.pool, user) as conn:
                known = await self._neighbours(conn, user)
        self._unlearned[user] += 1
        self._extractions += extract
        task = self._spawn(
            self._learn(user, content, said, shared_channel="" if is_dm else channel_id, extract=extract, known=known)
        )
        task.add_done_callback(lambda _: self._learned(user, extract=extract))

    def _extraction_has_room(self) -> bool:
        if self._extractions < self.config.max_extraction_backlog:
            return True
        if monotonic() - self._behind_logged > 60:
            self._behind_logged = monotonic()
            log.warning(
                "memory: fact extraction is %d messages behind; learning new ones by the rules until it catches up",
                self._extractions,
            )
        return False

    def _learned(self, user: UserKey, *, extract: bool) -> None:
        self._extractions -= extract
        self._unlearned[user] -= 1
        if not self._unlearned[user]:
            del self._unlearned[user]
            self._known.pop(user, None)

    def _next_waits(self, user: UserKey) -> bool:
        """Another of the person's messages waits to be learned after the one being learned now."""
        return self._unlearned[user] > 1

    async def facts(self, user: UserKey, *, channel_id: str, is_dm: bool) -> list[Fact]:
        """The facts in force for a turn: the person's own, the workspace's, and (outside DMs) the
        channel's. Channel notes never reach a DM."""
        channel = "" if is_dm else channel_id
        async with fact_scope(self.pool, user, channel) as conn:
            return await fact_store.in_force(conn, user, homes_for(user, channel), self.clock())

    async def store(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None = None,
        thread_id: str | None = None,
        said_at: datetime | None = None,
    ) -> int | None:
        """Store one turn as a memory (masked, once per content); return its id, None if empty.
        `said_at` dates an imported older message (default: now)."""
        row = await self.memory_row(user, text, message_id=message_id, thread_id=thread_id)
        if row is None:
            return None
        async with person_scope(self.pool, user) as conn:
            memory_id, _ = await db.insert_memory(
                conn,
                user,
                content=row.content,
                embedding=row.embedding,
                model=row.model,
                thread_id=row.thread_id,
                source_message_id=row.source_message_id,
                said_at=said_at,
            )
        return memory_id

    async def memory_row(
        self, user: UserKey, text: str, *, message_id: int | None, thread_id: str | None = None
    ) -> db.NewMemory | None:
        """The memory `text` is stored as (masked, embedded: the query's vector where recall just embedded the
        same text), not written yet; None if it is empty. A turn's finish writes it with the reply and, where the
        model's extraction may learn the message and nothing of the person's is being learned, reads back the
        facts the model is shown, for `learn`."""
        content = scrub(text).strip()
        if not content:
            return None
        vector = self._recent_vectors.pop(content, None)
        if vector is None:
            vector = await embed_one(self.embedder, content, input_type="document")
        wanted = self.extractor is not None and may_state_facts(content) and not self._unlearned[user]
        return db.NewMemory(
            content=content, embedding=vector, model=self.model, source_message_id=message_id, thread_id=thread_id,
            known_facts=self.config.fact_neighbours if wanted else 0,
        )

    def _keep_vector(self, text: str, vector: np.ndarray) -> None:
        """Remember a query's vector briefly: the same text is stored as a memory right after."""
        if not self.symmetric:
            return
        self._recent_vectors[text] = vector
        while len(self._recent_vectors) > RECENT_VECTORS:
            self._recent_vectors.popitem(last=False)

    async def profile(self, user: UserKey) -> Profile:
        return await get_profile(self.pool, user)

    async def drain(self) -> None:
        """Wait for background work (fact extraction, re-embedding) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("memory: background task failed (%s)", type(task.exception()).__name__)

    async def _learn(
        self, user: UserKey, message: str, said: Said, *, shared_channel: str, extract: bool, known: list[Fact] | None
    ) -> None:
        """Learn what the message states: profile fields, a shared note, and the person's facts (by the
        model when `extract`, given the facts `known` when they were read already, else by the rules). A
        message that states nothing costs no transaction (most do not), and the rules' reads and writes
        share one."""
        turn = self._learning.setdefault(user, asyncio.Lock())
        async with turn:
            # What the rules find does not depend on the person's time zone, only the dates they compute.
            statements = read_statements(message, now=said.at)
            note = statements.shared
            if note is not None:
                home = Home.channel(shared_channel) if note.scope == "channel" else Home.workspace()
                if home.scope == "channel" and not shared_channel:
                    log.info("memory: a channel note told in a direct message is not kept")
                    return
                async with fact_scope(self.pool, user, shared_channel) as conn:
                    await fact_store.add_fact(conn, user, home, NewFact(content=note.content), said)
                return
            if extract and self._extraction_circuit.allow():  # asked again: the circuit may have opened meanwhile
                try:
                    async with self._limit:  # the model's work; the rules wait for no model
                        await self._extract(user, message, said, known)
                except Exception as exc:  # a model that cannot extract (a small local one): the rules learn it
                    self._extraction_failed(exc)
                else:
                    self._extraction_circuit.record_success()
                    if statements.profile:
                        await update_profile(self.pool, user, ProfileChanges.model_validate(statements.profile))
                    return
            if not statements.facts and not statements.profile:
                return
            async with one_transaction(self.pool, user):
                if statements.facts:  # their dates in the person's own time zone
                    profile = await get_profile(self.pool, user)
                    statements = read_statements(message, now=said.at, timezone=profile.timezone)
                if statements.profile:
                    await update_profile(self.pool, user, ProfileChanges.model_validate(statements.profile))
                async with fact_scope(self.pool, user) as conn:
                    for fact in statements.facts:
                        await fact_store.add_fact(conn, user, Home.person(user.user_id), fact, said)
            if statements.facts:
                self._known.pop(user, None)  # changed: the next extraction reads them afresh

    def _extraction_failed(self, exc: Exception) -> None:
        already_paused = not self._extraction_circuit.allow()
        self._extraction_circuit.record_failure()
        if already_paused:  # asked before the pause began: the pause was announced once already
            log.debug("memory: fact extraction failed while paused (%s)", type(exc).__name__)
            return
        if self._extraction_circuit.allow():
            log.warning("memory: fact extraction failed (%s); learning the message by the rules", type(exc).__name__)
            return
        log.warning(
            "memory: fact extraction failed %d times in a row (%s); learning messages by the rules alone for %.0f s, "
            "then asking the model again",
            self._extraction_circuit.failures, type(exc).__name__, self.config.extraction_pause_s,
        )

    async def _neighbours(self, conn: asyncpg.Connection, user: UserKey) -> list[Fact]:
        """The person's newest facts not closed: what the extraction model is shown."""
        found = await fact_store.listing(conn, user, [Home.person(user.user_id)], history=False)
        return found[: self.config.fact_neighbours]

    async def _extract(self, user: UserKey, message: str, said: Said, known: list[Fact] | None) -> None:
        """Ask the model what the message changes among the person's facts in force (`known`, else as the
        previous message left them, else read now), then apply it (a decision that changes nothing costs no
        write) and hand the facts on to the person's next message."""
        assert self.extractor is not None
        mine = Home.person(user.user_id)
        known = known if known is not None else self._known.pop(user, None)
        if known is None:
            async with fact_scope(self.pool, user) as conn:
                known = await self._neighbours(conn, user)
        changes: list[Change] = []
        try:
            decision = await self.extractor(
                extraction_prompt(message, [(f.id, f.content) for f in known], today=said.at.date())
            )
            changes = plan_changes(decision, [f.id for f in known])
        finally:
            if not changes and self._next_waits(user):  # decided nothing, or failed: the facts are as they were
                self._known[user] = known
        if not changes:
            return
        async with fact_scope(self.pool, user) as conn:
            for change in changes:
                if isinstance(change, Delete):
                    await fact_store.retire(conn, user, mine, change.target, said.at)
                    continue
                content = scrub(change.fact).strip()
                if not content:
                    continue
                fact = NewFact(content=content, expires_at=_day_end(change.expires))
                if isinstance(change, Add):
                    await fact_store.add_fact(conn, user, mine, fact, said)
                else:
                    await fact_store.supersede(conn, user, mine, change.target, fact, said)
            if self._next_waits(user):
                self._known[user] = await self._neighbours(conn, user)

    async def _reembed(self, owner: asyncpg.Pool) -> None:
        async with self._limit:
            done = await reembed(owner, self.embedder)
            log.info("memory: re-embedded %d memories with %s", done, self.model)


def _day_end(day: date | None) -> datetime | None:
    """The end of the last day a fact holds (UTC: the model names no zone)."""
    return None if day is None else datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
