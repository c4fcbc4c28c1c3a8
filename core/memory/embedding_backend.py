"""Embeddings for memory through pydantic-ai's `Embedder`, with a micro-batcher.

`PARLEY_EMBEDDING_MODEL` names any pydantic-ai embedding backend (`openai:text-embedding-3-small`,
`cohere:embed-v4.0`, ...). The default name means the bundled all-MiniLM-L6-v2 that the process
already shares with the guardrails through `core.encoder`, so it is never downloaded, never loaded
twice, and a text the input rails have just read is not run through it again.

For provider models a `MicroBatcher` lets concurrent turns share one request: while one batch is
being embedded, new texts queue, and the next call takes all of them; a text already on its way is
not sent twice. A lone request goes at once. (The bundled model batches in the shared encoder.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

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

from core.batching import MicroBatcher
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


class BatchingEmbeddingModel(WrapperEmbeddingModel):
    """Merges concurrent `embed` calls into one call of the wrapped model per pass: one
    `MicroBatcher` per input type (a query and a document may be embedded differently)."""

    def __init__(self, wrapped: EmbeddingModel, *, max_batch: int = 64) -> None:
        super().__init__(wrapped)
        self.max_batch = max_batch
        self._batchers: dict[EmbedInputType, MicroBatcher[str, Sequence[float]]] = {}

    @property
    def passes(self) -> int:
        """Calls made to the wrapped model (tests and metrics read it)."""
        return sum(batcher.passes for batcher in self._batchers.values())

    async def embed(
        self, inputs: str | Sequence[str], *, input_type: EmbedInputType, settings: EmbeddingSettings | None = None
    ) -> EmbeddingResult:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if settings or not texts:
            return await self.wrapped.embed(texts, input_type=input_type, settings=settings)
        batcher = self._batchers.get(input_type)
        if batcher is None:
            batcher = self._batchers[input_type] = MicroBatcher(self._pass_for(input_type), max_batch=self.max_batch)
        return EmbeddingResult(
            embeddings=await batcher.submit(texts),
            inputs=texts,
            input_type=input_type,
            model_name=self.model_name,
            provider_name=self.system,
        )

    def _pass_for(self, input_type: EmbedInputType) -> Callable[[list[str]], Awaitable[Sequence[Sequence[float]]]]:
        async def embed_pass(texts: list[str]) -> Sequence[Sequence[float]]:
            return (await self.wrapped.embed(texts, input_type=input_type)).embeddings

        return embed_pass
