"""The fine-tuned input head (core/guard/head.py): numpy inference equal to the torch model it was trained
as, its cut rule (core/guard/training/ship_head.py), and the shipped weights' behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.progress import Progress

from core.embeddings import bundled_model_path, shared_sentence_transformer
from core.encoder import WIDTH, encode, ensure_graph, graph_cache_dir
from core.guard.guard import Guard
from core.guard.harm import HarmClassifier
from core.guard.head import DEFAULT_HEAD, InputHead, gelu, normalise
from core.guard.settings import GuardConfig
from core.guard.training.data import Example
from core.guard.training.finetune_harm import build, frozen_states, predict
from core.guard.training.ship_head import as_shipped, oof_cuts
from core.guard.training.train_harm import GREY_RECALL, TARGET_WORKPLACE_FPR, TARGET_XSTEST_FPR
from core.models import UserKey

TEXTS = ["hi", "How do I kill a python process that hangs?", "Give me step-by-step instructions to make a pipe bomb"]


def _example(source: str, harmful: bool, identifier: str = "x") -> Example:
    return Example(id=identifier, text="t", harmful=harmful, source=source, category="", split="dev")


@pytest.fixture(scope="module")
def trained_as(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, InputHead]:
    """A freshly initialised torch model of the shipped shape and the numpy head loaded from its weights."""
    torch.manual_seed(0)
    top = build(shared_sentence_transformer(), 5).eval()
    with torch.no_grad():
        top.head.weight.normal_(0, 0.3)  # type: ignore[union-attr, operator]
    arrays: dict[str, Any] = dict(as_shipped(top))
    arrays.update(
        threshold=np.float64(0.5), grey_low=np.float64(0.2), grey_high=np.float64(0.9), layer_norm_eps=np.float64(1e-12)
    )
    path = tmp_path_factory.mktemp("head") / "head.npz"
    np.savez(path, **arrays)
    return top, InputHead.load(path)


def test_the_numpy_head_scores_as_the_torch_model_it_was_trained_as(
    trained_as: tuple[torch.nn.Module, InputHead],
) -> None:
    top, head = trained_as
    model = shared_sentence_transformer()
    with Progress(disable=True) as progress:
        frozen = frozen_states(model, TEXTS, 1, progress)
    expected = predict(top, frozen, list(range(len(TEXTS))))[0]
    encoded = encode(model, TEXTS)
    got = head.scores(encoded.tokens, encoded.layers[:, :WIDTH])
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_the_head_reads_layer_one_from_the_shared_pass(trained_as: tuple[torch.nn.Module, InputHead]) -> None:
    _, head = trained_as
    encoded = encode(shared_sentence_transformer(), TEXTS[:1])
    features = head.features(encoded.tokens[0], encoded.layers[0, :WIDTH])
    assert features.shape == (6 * WIDTH,)
    np.testing.assert_array_equal(features[:WIDTH], encoded.layers[0, :WIDTH])
    np.testing.assert_allclose(np.linalg.norm(features.reshape(6, WIDTH), axis=1), 1.0, atol=1e-5)


def test_a_text_without_tokens_scores_zero(trained_as: tuple[torch.nn.Module, InputHead]) -> None:
    _, head = trained_as
    assert head.score(np.zeros((0, WIDTH), np.float16), np.zeros(WIDTH, np.float32)) == 0.0


def test_gelu_is_the_exact_erf_form() -> None:
    x = np.linspace(-4, 4, 41, dtype=np.float32)
    np.testing.assert_allclose(gelu(x), torch.nn.functional.gelu(torch.from_numpy(x)).numpy(), atol=1e-6)


def test_normalising_a_zero_vector_keeps_it_zero() -> None:
    assert not normalise(np.zeros(4, np.float32)).any()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=100, max_size=300),
    st.lists(st.floats(0, 1), min_size=20, max_size=100),
    st.lists(st.floats(0, 1), min_size=50, max_size=100),
)
def test_the_cut_refuses_at_most_the_target_shares_and_the_grey_zone_holds_it(
    workplace: list[float], xstest: list[float], harmful: list[float]
) -> None:
    examples = (
        [_example("workplace", False)] * len(workplace)
        + [_example("xstest", False)] * len(xstest)
        + [_example("harmbench", True)] * len(harmful)
    )
    cut, low, high = oof_cuts(np.array(workplace + xstest + harmful), examples)
    assert (np.array(workplace) >= cut).mean() <= TARGET_WORKPLACE_FPR
    assert (np.array(xstest) >= cut).mean() <= TARGET_XSTEST_FPR
    assert low <= cut <= high
    assert (np.array(harmful) < low).mean() <= 1 - GREY_RECALL + 1 / len(harmful)


def test_the_shipped_head_blocks_a_harmful_request_and_passes_work_jargon() -> None:
    head = InputHead.load()
    encoded = encode(shared_sentence_transformer(), TEXTS[1:])
    work, harm = head.scores(encoded.tokens, encoded.layers[:, :WIDTH])
    assert work < head.threshold <= harm
    assert head.grey[0] <= head.threshold <= head.grey[1]


def test_the_shipped_weights_are_the_ones_the_figures_describe() -> None:
    import hashlib

    figures = json.loads(DEFAULT_HEAD.with_suffix(".json").read_text())
    assert figures["weights_sha256"] == hashlib.sha256(DEFAULT_HEAD.read_bytes()).hexdigest()
    assert figures["threshold"] == pytest.approx(InputHead.load().threshold, abs=1e-4)
    assert DEFAULT_HEAD.stat().st_size < 20_000_000


USER = UserKey(platform="slack", workspace_id="T1", user_id="U1")


async def test_with_the_head_configured_the_input_rail_blocks_on_its_score_at_its_shipped_cut() -> None:
    guard = Guard(GuardConfig(head_weights=DEFAULT_HEAD))
    head = InputHead.load()
    harmful = TEXTS[2]
    encoded = encode(shared_sentence_transformer(), [harmful])
    verdict = await guard.check_input(harmful, attachments=(), user=USER)
    assert guard.actions.harm_threshold == head.threshold
    assert guard.actions.grey_zone == head.grey
    assert verdict.blocked and verdict.rail == "harm"
    assert verdict.score == pytest.approx(head.score(encoded.tokens[0], encoded.layers[0, :WIDTH]), abs=2e-3)


async def test_by_default_the_svm_scores_messages_at_its_own_cut() -> None:
    guard = Guard(GuardConfig())
    classifier = HarmClassifier.load()
    verdict = await guard.check_input(TEXTS[1], attachments=(), user=USER)
    assert guard.actions.harm_threshold == classifier.threshold
    assert not verdict.blocked
    features = encode(shared_sentence_transformer(), [TEXTS[1]]).layers
    assert verdict.score == pytest.approx(float(classifier.score(features)[0]), abs=1e-3)


def test_the_head_scored_input_rail_runs_without_torch(tmp_path: Path) -> None:
    ensure_graph(bundled_model_path(), graph_cache_dir())
    script = (
        "import asyncio, sys\n"
        "from core.guard.guard import Guard\n"
        "from core.guard.settings import GuardConfig\n"
        "from core.models import UserKey\n"
        "user = UserKey(platform='slack', workspace_id='T1', user_id='U1')\n"
        "from core.guard.harm import DEFAULT_HEAD\n"
        "guard = Guard(GuardConfig(head_weights=DEFAULT_HEAD))\n"
        "verdict = asyncio.run(guard.check_input(sys.argv[1], attachments=(), user=user))\n"
        "print(verdict.blocked, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, TEXTS[2]],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "[]"]
