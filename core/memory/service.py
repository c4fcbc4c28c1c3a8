"""`MemoryService`: the pipeline's memory step on Postgres + pgvector.

Every user turn becomes a memory of that person in that workspace, masked before it is stored or
embedded. Recall fuses vector similarity, full-text match and recency (`core.memory.ranking`) and
returns k memories whenever the person has k. Optional fact extraction runs in the background and
never delays a reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
from pydantic_ai import Embedder

from core.guard.masking import scrub
from core.memory import search as recall_search
from core.memory import store as db
from core.memory.embedding_backend import embed_many, embed_one, model_label, warm_up
from core.memory.extraction import Add, Delete, FactExtractor, Update, extraction_prompt, plan_changes
from core.memory.profiles import get_profile
from core.memory.ranking import RankWeights, rank
from core.memory.reembed import pending_reembed, reembed
from core.memory.scope import person_scope
from core.memory.when import mentioned_window
from core.models import UserKey
from core.steps import MemoryHit, Profile

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
    fact_neighbours: int = 5
    """Existing facts shown to the extraction model."""
    max_background: int = 2
    """Fact extractions and re-embeddings running at once."""
    large_scope_rows: int = 20_000
    """A scope with this many memories gets its own partial HNSW index in maintenance."""


class MemoryService:
    """Implements `core.steps.MemoryStep`; construct once per process and `await start()`."""

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
        masked = scrub(query).strip()
        vector = None
        if masked:
            try:
                vector = await embed_one(self.embedder, masked, input_type="query")
                self._keep_vector(masked, vector)
            except Exception as exc:  # a provider outage degrades recall to text and recency
                log.warning("memory: query embedding failed (%s); recalling by text only", type(exc).__name__)
        async with person_scope(self.pool, user) as conn:
            found = await recall_search.search(
                conn,
                user,
                query=masked,
                vector=vector,
                model=self.model,
                pool_size=max(self.config.candidate_pool, k),
                recent=self.config.recent,
            )
        now = self.clock()
        ranked = rank(
            found.candidates,
            k=k,
            weights=self.config.weights,
            now=now,
            window=mentioned_window(masked, now=now),
        )
        return [
            MemoryHit(id=r.id, content=r.content, score=r.score, created_at=r.created_at.isoformat()) for r in ranked
        ]

    async def remember(self, user: UserKey, text: str, *, message_id: int | None, thread_id: str | None = None) -> None:
        await self.store(user, text, message_id=message_id, thread_id=thread_id)

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
        content = scrub(text).strip()
        if not content:
            return None
        vector = self._recent_vectors.pop(content, None)
        if vector is None:
            vector = await embed_one(self.embedder, content, input_type="document")
        async with person_scope(self.pool, user) as conn:
            memory_id, new = await db.insert_memory(
                conn,
                user,
                content=content,
                embedding=vector,
                model=self.model,
                thread_id=thread_id,
                source_message_id=message_id,
                said_at=said_at,
            )
        if new and self.extractor is not None:
            self._spawn(self._extract(user, content))
        return memory_id

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("memory: background task failed (%s)", type(task.exception()).__name__)

    async def _extract(self, user: UserKey, message: str) -> None:
        """Ask the model what the message changes among the person's nearest facts, then apply it."""
        assert self.extractor is not None
        async with self._limit:
            vector = await embed_one(self.embedder, message, input_type="query")
            async with person_scope(self.pool, user) as conn:
                near = await db.nearest(
                    conn, user, vector, model=self.model, limit=self.config.fact_neighbours, kind="fact"
                )
            decision = await self.extractor(extraction_prompt(message, [(i, text) for i, text, _ in near]))
            changes = plan_changes(decision, [i for i, _, _ in near])
            facts = [scrub(c.fact).strip() for c in changes if isinstance(c, Add | Update)]
            vectors = iter(await embed_many(self.embedder, facts, input_type="document"))
            texts = iter(facts)
            async with person_scope(self.pool, user) as conn:
                for change in changes:
                    if isinstance(change, Delete):
                        await db.delete_memory(conn, user, change.target)
                        continue
                    fact, fact_vector = next(texts), next(vectors)
                    if not fact:
                        continue
                    if isinstance(change, Add):
                        await db.insert_memory(
                            conn, user, content=fact, embedding=fact_vector, model=self.model, kind="fact"
                        )
                    else:
                        await db.update_memory(
                            conn, user, change.target, content=fact, embedding=fact_vector, model=self.model
                        )

    async def _reembed(self, owner: asyncpg.Pool) -> None:
        async with self._limit:
            done = await reembed(owner, self.embedder)
            log.info("memory: re-embedded %d memories with %s", done, self.model)
