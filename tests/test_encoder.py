"""The shared encoder: one forward pass per new text, shared by concurrent callers and cached."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import core.encoder
from core.embeddings import shared_sentence_transformer
from core.encoder import SharedEncoder, encode


@pytest.fixture
def encoder() -> SharedEncoder:
    return SharedEncoder(shared_sentence_transformer())


async def test_the_sentence_view_is_the_models_own_normalised_embedding(encoder: SharedEncoder) -> None:
    texts = ["hello there", "My favourite colour is teal. " * 40]
    vectors = await encoder.vectors(texts)
    expected = shared_sentence_transformer().encode(texts, normalize_embeddings=True)
    for got, want in zip(vectors, expected, strict=True):
        np.testing.assert_allclose(got.sentence, want, atol=1e-5)


async def test_concurrent_callers_share_batched_passes(encoder: SharedEncoder) -> None:
    texts = [f"question number {i} about the deploy" for i in range(20)]
    results = await asyncio.gather(*(encoder.vectors([t]) for t in texts))
    assert encoder.passes <= 2
    assert [r[0].sentence.shape for r in results] == [(384,)] * 20


async def test_the_same_text_asked_at_once_is_encoded_once(encoder: SharedEncoder) -> None:
    first, second = await asyncio.gather(encoder.vectors(["same words"]), encoder.vectors(["same words"]))
    assert encoder.passes == 1
    assert first[0] is second[0]


async def test_a_cached_text_needs_no_pass(encoder: SharedEncoder) -> None:
    await encoder.vectors(["remember me"])
    await encoder.vectors(["remember me", "remember me"])
    assert encoder.passes == 1


async def test_a_failing_pass_fails_its_callers_and_the_next_pass_works(
    encoder: SharedEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: object, texts: list[str]) -> object:
        raise MemoryError("no room")

    monkeypatch.setattr(core.encoder, "encode", broken)
    with pytest.raises(MemoryError):
        await encoder.vectors(["first try"])
    monkeypatch.setattr(core.encoder, "encode", encode)
    (vectors,) = await encoder.vectors(["first try"])
    assert vectors.layers.shape == (6 * 384,)


async def test_a_caller_cancelled_mid_pass_leaves_the_result_for_others(encoder: SharedEncoder) -> None:
    waiting = asyncio.ensure_future(encoder.vectors(["shared text"]))
    await asyncio.sleep(0)
    other = asyncio.ensure_future(encoder.vectors(["shared text"]))
    waiting.cancel()
    (vectors,) = await other
    assert vectors.sentence.shape == (384,)
    assert encoder.passes == 1
