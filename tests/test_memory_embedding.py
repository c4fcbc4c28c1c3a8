"""Embeddings: the bundled model behind pydantic-ai's Embedder, and the micro-batcher."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pydantic_ai.embeddings import Embedder

from core.memory.embedding_backend import (
    DEFAULT_EMBEDDING_MODEL,
    BatchingEmbeddingModel,
    build_embedder,
    embed_one,
    model_label,
    warm_up,
)
from tests.strategies import HashingEmbeddingModel


async def test_concurrent_turns_share_one_forward_pass() -> None:
    inner = HashingEmbeddingModel()
    batching = BatchingEmbeddingModel(inner, max_batch=64)
    embedder = Embedder(batching)
    texts = [f"turn number {i}" for i in range(20)]
    results = await asyncio.gather(*(embedder.embed_query(t) for t in texts))
    assert batching.passes <= 2  # the first call starts a pass; everyone queued meanwhile shares the next
    for text, result in zip(texts, results, strict=True):
        assert result.inputs == [text]
        assert np.allclose(result.embeddings[0], inner.vector(text))


async def test_batches_never_exceed_max_batch() -> None:
    batching = BatchingEmbeddingModel(HashingEmbeddingModel(), max_batch=4)
    embedder = Embedder(batching)
    await asyncio.gather(*(embedder.embed_documents([f"a {i}", f"b {i}"]) for i in range(10)))
    assert batching.passes >= 5


async def test_a_failing_pass_fails_only_its_callers() -> None:
    class Flaky(HashingEmbeddingModel):
        async def embed(self, inputs, *, input_type, settings=None):  # type: ignore[no-untyped-def]
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            if any("boom" in t for t in texts):
                raise RuntimeError("provider down")
            return await super().embed(texts, input_type=input_type, settings=settings)

    embedder = Embedder(BatchingEmbeddingModel(Flaky(), max_batch=1))
    ok, failed = await asyncio.gather(
        embedder.embed_query("fine"), embedder.embed_query("boom"), return_exceptions=True
    )
    assert not isinstance(ok, BaseException)
    assert isinstance(failed, RuntimeError)
    assert len((await embedder.embed_query("still fine")).embeddings) == 1


async def test_bundled_model_is_the_default_and_gives_unit_vectors() -> None:
    embedder = build_embedder()
    assert model_label(embedder) == DEFAULT_EMBEDDING_MODEL
    assert await warm_up(embedder) == 384
    v = await embed_one(embedder, "my favourite colour is teal", input_type="document")
    assert v.shape == (384,)
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)


async def test_provider_names_go_to_pydantic_ai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    embedder = build_embedder("openai:text-embedding-3-small")
    assert model_label(embedder) == "openai:text-embedding-3-small"
