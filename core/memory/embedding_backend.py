"""Embeddings for memory through pydantic-ai's `Embedder`, with a micro-batcher.

`PARLEY_EMBEDDING_MODEL` names any pydantic-ai embedding backend (`openai:text-embedding-3-small`,
`cohere:embed-v4.0`, ...). The default name means the bundled all-MiniLM-L6-v2 that the process
already shares with the guardrails through `core.encoder`, so it is never downloaded, never loaded
twice, and a text the input rails have just read is not run through it again.

For provider models the batcher lets concurrent turns share one request: while one batch is being
embedded, new requests queue, and the next call takes all of them. A lone request goes at once.
(The bundled model batches in the shared encoder.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic_ai.embeddings import (
    Embedder,
    EmbeddingModel,
    EmbeddingResult,
    EmbeddingSettings,
    WrapperEmbeddingModel,
    infer_embedding_model,
)
from pydantic_ai.embeddings.result import EmbedInputType

from core.embeddings import BUNDLED_MODEL

DEFAULT_EMBEDDING_MODEL = f"sentence-transformers:{BUNDLED_MODEL}"


def build_embedder(name: str = DEFAULT_EMBEDDING_MODEL, *, max_batch: int = 64) -> Embedder:
    """An `Embedder` for the model `name`, batching concurrent calls. The bundled model batches in
    the encoder it shares with the guardrails (`core.encoder`), so it needs no batcher of its own."""
    if name == DEFAULT_EMBEDDING_MODEL:
        return Embedder(SharedMiniLM())
    return Embedder(BatchingEmbeddingModel(infer_embedding_model(name), max_batch=max_batch))


class SharedMiniLM(EmbeddingModel):
    """The bundled MiniLM as a pydantic-ai model with normalised vectors (cosine = dot), run by the
    process's one encoder that the guardrails share (`core.encoder`): a turn's text
    that the input rails have just read is not run through it again, and neither torch nor
    sentence-transformers is imported. Named as pydantic-ai's sentence-transformers model of the
    bundled MiniLM, so the label stored beside every vector stays the same."""

    @property
    def model_name(self) -> str:
        return BUNDLED_MODEL

    @property
    def system(self) -> str:
        return "sentence-transformers"

    async def embed(
        self, inputs: str | Sequence[str], *, input_type: EmbedInputType, settings: EmbeddingSettings | None = None
    ) -> EmbeddingResult:
        from core.encoder import shared_encoder

        texts, merged = self.prepare_embed(inputs, settings)
        vectors = [v.sentence for v in await shared_encoder().vectors(texts)]
        dimensions = merged.get("dimensions")
        if dimensions:
            vectors = [_truncated(v, dimensions) for v in vectors]
        return EmbeddingResult(
            embeddings=[v.tolist() for v in vectors],
            inputs=texts,
            input_type=input_type,
            model_name=self.model_name,
            provider_name=self.system,
        )


def _truncated(vector: np.ndarray, dimensions: int) -> np.ndarray:
    """The first `dimensions` numbers, normalised again (as sentence-transformers' `truncate_dim`)."""
    head = vector[:dimensions]
    norm = float(np.linalg.norm(head))
    return head / norm if norm else head


def model_label(embedder: Embedder) -> str:
    """`system:model_name`, stored beside every vector so a model change is detected."""
    model = embedder.model
    if isinstance(model, str):
        model = infer_embedding_model(model)
    return f"{model.system}:{model.model_name}"


async def warm_up(embedder: Embedder) -> int:
    """Load the model and run one pass now, not on the first turn; return the vector dimension."""
    result = await embedder.embed_documents(["warm up"])
    return len(result.embeddings[0])


async def embed_one(embedder: Embedder, text: str, *, input_type: EmbedInputType) -> np.ndarray:
    result = await embedder.embed([text], input_type=input_type)
    return np.asarray(result.embeddings[0], dtype=np.float32)


async def embed_many(embedder: Embedder, texts: Sequence[str], *, input_type: EmbedInputType) -> list[np.ndarray]:
    if not texts:
        return []
    result = await embedder.embed(list(texts), input_type=input_type)
    return [np.asarray(v, dtype=np.float32) for v in result.embeddings]


@dataclass(kw_only=True)
class _Job:
    texts: list[str]
    future: asyncio.Future[list[Sequence[float]]]


@dataclass(kw_only=True)
class _Lane:
    """Queued jobs of one input type and whether a drain task is running for them."""

    jobs: list[_Job] = field(default_factory=list)
    busy: bool = False


class BatchingEmbeddingModel(WrapperEmbeddingModel):
    """Merges concurrent `embed` calls into one call of the wrapped model per forward pass."""

    def __init__(self, wrapped: EmbeddingModel, *, max_batch: int = 64) -> None:
        super().__init__(wrapped)
        self.max_batch = max_batch
        self.passes = 0
        """Calls made to the wrapped model (tests and metrics read it)."""
        self._lanes: dict[EmbedInputType, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def embed(
        self, inputs: str | Sequence[str], *, input_type: EmbedInputType, settings: EmbeddingSettings | None = None
    ) -> EmbeddingResult:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if settings or not texts:
            return await self.wrapped.embed(texts, input_type=input_type, settings=settings)
        loop = asyncio.get_running_loop()
        job = _Job(texts=texts, future=loop.create_future())
        lane = self._lanes.setdefault(input_type, _Lane())
        lane.jobs.append(job)
        if not lane.busy:
            lane.busy = True
            task = loop.create_task(self._drain(input_type, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        vectors = await job.future
        return EmbeddingResult(
            embeddings=vectors,
            inputs=texts,
            input_type=input_type,
            model_name=self.model_name,
            provider_name=self.system,
        )

    async def _drain(self, input_type: EmbedInputType, lane: _Lane) -> None:
        try:
            while lane.jobs:
                batch = _take(lane.jobs, self.max_batch)
                texts = [t for job in batch for t in job.texts]
                self.passes += 1
                try:
                    result = await self.wrapped.embed(texts, input_type=input_type)
                except Exception as exc:
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                start = 0
                for job in batch:
                    end = start + len(job.texts)
                    if not job.future.done():
                        job.future.set_result(list(result.embeddings[start:end]))
                    start = end
        finally:
            lane.busy = False


def _take(jobs: list[_Job], max_texts: int) -> list[_Job]:
    """Pop jobs from the front while they fit in `max_texts` (always at least one)."""
    taken = [jobs.pop(0)]
    size = len(taken[0].texts)
    while jobs and size + len(jobs[0].texts) <= max_texts:
        size += len(jobs[0].texts)
        taken.append(jobs.pop(0))
    return taken
