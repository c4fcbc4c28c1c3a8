"""One MiniLM forward pass per text for the whole process: the guardrails and memory share it.

A turn's text is read by the input rails (layer features for the harm classifier, the sentence
vector for workspace topics) and by memory (the sentence vector for recall and storage). Both come
out of one forward pass: `encode` pools every layer. `SharedEncoder` keeps recent results, lets a
caller wait for a pass already running on the same text, and batches the texts of concurrent turns
(`core.batching.MicroBatcher`): while one call runs, new texts queue and the next call takes them
all in one hop to the encoder's thread, each text then its own pass of the int8 graph (`OnnxEncoder`):
a short text costs 1.2-1.6 ms of CPU on this machine (10.6 ms in torch, one thread).

The harmful-request classifier reads MiniLM's mean-pooled hidden state of every layer (1-6), each
L2-normalised, side by side (6 x 384 = 2,304 numbers). The middle layers keep who does what to whom
("kill a process" vs "kill my neighbour"), which the final pooled sentence embedding blurs; measured
on our held-out split this lifts recall on unseen harmful prompts by about ten points at the same
false-positive rate. The last layer's pooled vector is the usual sentence embedding, the same as
`model.encode(texts, normalize_embeddings=True)`.

The same pass also hands out layer 1's token states (`TOKEN_LAYER`): the fine-tuned input head
(core/guard/head.py) runs its own copies of layers 2-6 on them, so a message still costs one shared
pass plus the head. They are kept in float16 (the head reads them as float32), and fetched from the
pass and cached only where a head is configured (`SharedEncoder.keep_tokens`): elsewhere nobody reads them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from core.batching import MicroBatcher

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Encoding, Tokenizer

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Texts -> both views (and layer 1's token states when `tokens`); CPU-bound, called off the event loop."""

    def __call__(self, texts: list[str], *, tokens: bool = True) -> Encoded: ...


LAYERS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
WIDTH = 384
TOKEN_LAYER = 1
"""The layer whose token states each pass also returns (the input head's starting point)."""
NO_TOKENS = np.zeros((0, WIDTH), np.float16)
"""Token states where there are none: a cached text's where none are kept, a text not yet encoded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Encoded:
    """Both views of a batch of texts from one forward pass."""

    layers: np.ndarray
    """(n, len(LAYERS) * 384) float32: the harm classifier's input."""
    sentence: np.ndarray
    """(n, 384) float32: the normalised sentence embedding."""
    tokens: list[np.ndarray]
    """Per text, (its tokens, 384) float16: layer `TOKEN_LAYER`'s states of its real tokens (`NO_TOKENS` for
    each where the pass was asked for none)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TextVectors:
    """Both views of one text."""

    layers: np.ndarray
    sentence: np.ndarray
    tokens: np.ndarray


def encode(model: SentenceTransformer, texts: list[str], *, batch_size: int = 32, tokens: bool = True) -> Encoded:
    """Run MiniLM once over `texts` and pool every layer; CPU-bound, call it off the event loop."""
    import torch

    transformer = cast(Callable[..., Any], model[0].auto_model)
    tokenizer = model.tokenizer
    layer_out: list[np.ndarray] = []
    sentence_out: list[np.ndarray] = []
    tokens_out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=model.get_max_seq_length(),
                return_tensors="pt",
            )
            hidden = transformer(**batch, output_hidden_states=True).hidden_states
            pooled = _pool(hidden, batch["attention_mask"]).float().numpy()
            layer_out.append(pooled)
            sentence_out.append(pooled[:, -WIDTH:])
            if tokens:
                tokens_out.extend(unpadded(hidden[TOKEN_LAYER].float().numpy(), batch["attention_mask"].numpy()))
    return Encoded(
        layers=np.concatenate(layer_out) if layer_out else np.zeros((0, len(LAYERS) * WIDTH), np.float32),
        sentence=np.concatenate(sentence_out) if sentence_out else np.zeros((0, WIDTH), np.float32),
        tokens=tokens_out if tokens else [NO_TOKENS] * len(texts),
    )


def unpadded(states: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
    """Each row's states of its real tokens (the mask's ones lead each row), in float16."""
    return [row[: int(mask.sum())].astype(np.float16) for row, mask in zip(states, attention_mask, strict=True)]


def _pool(hidden: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean-pool and L2-normalise each of LAYERS, side by side: (n, len(LAYERS) * 384)."""
    return mean_pool([hidden[i] for i in LAYERS], attention_mask)


def mean_pool(states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
    """Each layer's states mean-pooled over the real tokens and L2-normalised, side by side (also how the
    fine-tuned input head is trained to pool its own layers, core/guard/training/finetune_harm.py)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(states[0].dtype)
    pooled = [(h * mask).sum(1) / mask.sum(1).clamp(min=1) for h in states]
    return torch.cat([torch.nn.functional.normalize(p, dim=-1) for p in pooled], dim=-1)


class OnnxEncoder:
    """MiniLM and its pooling compiled into one ONNX graph, its weights int8 (`quantise`), run by
    onnxruntime on one thread, one text a pass.

    About a seventh of `encode`'s CPU for a short text (1.2-1.6 ms instead of 9.3 ms in torch and 4-5 ms
    in the float32 graph, measured here), its pooled layers at a cosine of 0.99 or more from `encode`'s
    (one-word texts such as "thanks!" down to 0.96 in the last layer). Each
    text runs alone, unpadded: activations are quantised with a scale taken from the whole pass, so a text
    batched with others (or padded) would get vectors that depend on its neighbours; alone, a text's
    vectors are a function of the text, whichever turns run beside it. Running it needs neither torch
    nor sentence-transformers (seconds and hundreds of MB to import): the model folder's `tokenizer.json`
    goes to `tokenizers` directly and the graph to onnxruntime. Only `export_graph` needs torch.
    """

    def __init__(self, graph: Path, model_dir: Path) -> None:
        import onnxruntime

        self._tokenizer = _tokenizer(model_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]

    def __call__(self, texts: list[str], *, tokens: bool = True) -> Encoded:
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), len(LAYERS) * WIDTH), np.float32)
        states = [NO_TOKENS] * len(texts)
        for i, encoding in enumerate(encodings):
            out[i], states[i] = self._run(encoding, tokens=tokens)
        return Encoded(layers=out, sentence=np.ascontiguousarray(out[:, -WIDTH:]), tokens=states)

    def _run(self, encoding: Encoding, *, tokens: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One pass over one text, unpadded: its pooled layers and, when `tokens`, its token states (else
        `NO_TOKENS`: the graph's second output is then not fetched)."""
        columns = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        feeds = {name: np.asarray([columns[name]], np.int64) for name in self._inputs}
        if not tokens:
            (pooled,) = self._session.run(self._outputs[:1], feeds)
            return np.asarray(pooled[0], dtype=np.float32), NO_TOKENS
        pooled, states = self._session.run(self._outputs, feeds)
        (state,) = unpadded(np.asarray(states), feeds["attention_mask"])
        return np.asarray(pooled[0], dtype=np.float32), state


def _tokenizer(model_dir: Path) -> Tokenizer:
    """The model's fast tokenizer as sentence-transformers calls it: truncated at the model's maximum
    sequence length, unpadded (the file itself pads everything to 128; `OnnxEncoder` runs each text alone)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))
    tokenizer.no_padding()
    return tokenizer


def graph_path(model_dir: Path, cache_dir: Path) -> Path:
    """Where the graph of `model_dir` lives: the name changes with the weights, the layers pooled and
    the torch that exports it (read from the installed package's metadata, not by importing torch)."""
    from importlib.metadata import version

    weights = sorted(model_dir.glob("*.safetensors"))
    parts = [
        version("torch"),
        repr(LAYERS),
        f"tokens:{TOKEN_LAYER}",
        QUANTISATION,
        *(f"{w.name}:{w.stat().st_size}" for w in weights),
    ]
    return cache_dir / f"minilm-int8-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}.onnx"


def ensure_graph(model_dir: Path, cache_dir: Path) -> Path:
    """The graph of `model_dir` (the bundled MiniLM's folder, the model `shared_sentence_transformer`
    loads to export it), exported first if this install has none yet (seconds, with torch)."""
    from core.embeddings import shared_sentence_transformer

    graph = graph_path(model_dir, cache_dir)
    if not graph.exists():
        exported = graph.with_suffix(f".{os.getpid()}.float32")
        quantised = graph.with_suffix(f".{os.getpid()}.partial")
        try:
            export_graph(shared_sentence_transformer(), exported)
            quantise(exported, quantised)
            quantised.replace(graph)
        finally:
            exported.unlink(missing_ok=True)
            quantised.unlink(missing_ok=True)
        prune_graphs(cache_dir, keep=graph)
    return graph


def prune_graphs(cache_dir: Path, *, keep: Path) -> list[Path]:
    """Remove the graphs earlier installs exported (another torch, other weights, the float32 graph before
    int8: 90 MB each), keeping `keep`; return what was removed. Runs when a new graph is written, i.e. after
    an upgrade; a process still running on an old graph keeps its open copy."""
    removed = []
    for old in cache_dir.glob("minilm-*.onnx"):
        if old != keep:
            old.unlink(missing_ok=True)
            removed.append(old)
    if removed:
        log.info("removed %d graph(s) of earlier installs from %s", len(removed), cache_dir)
    return removed


def export_graph(model: SentenceTransformer, path: Path) -> None:
    """Trace the model with its pooling into `path`, written atomically (two processes may race).

    The one step that needs torch; it runs once per install (or model, or torch version)."""
    import torch

    transformer = cast(torch.nn.Module, model[0].auto_model)

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            out = self.transformer(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                output_hidden_states=True,
            )
            return _pool(out.hidden_states, attention_mask), out.hidden_states[TOKEN_LAYER]

    sample = model.tokenizer(["warm up the exporter"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "tokens"} for name in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    # The tracer warns that shape checks in transformers' masking become constants; with an attention
    # mask always given they are, and tests compare padded and truncated batches with torch.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled().eval(),
            tuple(sample[name] for name in names),
            str(partial),
            input_names=names,
            output_names=["layers", "tokens"],
            dynamic_axes={**axes, "layers": {0: "batch"}, "tokens": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
    partial.replace(path)


QUANTISATION = "int8:dynamic:per-channel"
"""How the exported graph's weights are stored (part of its file name's hash)."""


def quantise(graph: Path, out: Path) -> None:
    """`graph`'s weights as int8, one scale per output channel, activations quantised per pass.

    3-4x less CPU a text than float32 on this machine (AVX-512 VNNI), each pooled layer at a cosine of
    0.99 or more from the float graph's for sentences (`python benchmarks/encoder.py --json`; one-word
    texts down to 0.96 in the last layer, where keeping that layer in float32 gains little). Per-tensor
    weight scales (onnxruntime's default) were as fast but drifted to 0.94."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    advice = logging.getLogger()
    quiet = _DropAdvice()
    advice.addFilter(quiet)  # its one message suggests an optional step, on the root logger
    try:
        quantize_dynamic(graph, out, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        advice.removeFilter(quiet)


class _DropAdvice(logging.Filter):
    """Drops onnxruntime's suggestion to pre-process a graph before quantising it (optional: shape
    inference it does on its own), which would otherwise reach a newcomer's terminal at first start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


def best_runner(model_dir: Path, cache_dir: Path) -> Runner:
    """onnxruntime where it works (exporting the graph first if this install has none); torch
    otherwise (slower; float32, so within `quantise`'s cosine of the graph's numbers), with the reason
    logged."""
    from core.embeddings import shared_sentence_transformer

    try:
        return OnnxEncoder(ensure_graph(model_dir, cache_dir), model_dir)
    except Exception as exc:
        log.warning("encoder: onnxruntime unavailable (%s: %s); using torch", type(exc).__name__, exc)
        return lambda texts, *, tokens=True: encode(shared_sentence_transformer(), texts, tokens=tokens)


class SharedEncoder:
    """`encode` behind a cache of recent texts and a `MicroBatcher` for concurrent callers; the
    passes run on one executor thread."""

    def __init__(self, runner: Runner, *, cache_size: int = 1024, max_batch: int = 32) -> None:
        # An entry is about 11 KB (every layer's pooled view), plus 768 bytes a token where token states are
        # kept: 4,096 of them (pooled only) grew a serving worker by 57 MB over a load run, while a turn's
        # own reuse (rails, recall) needs the texts of the turns in flight.
        self.runner = runner
        self.keep_tokens = False
        """Whether cached texts keep layer 1's token states: only the input head reads them, so a Guard
        with a head turns this on; a text cached before that is encoded again when next asked for."""
        self.cache_size = cache_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._cache: OrderedDict[str, TextVectors] = OrderedDict()
        self._batcher = MicroBatcher(self._encode_pass, max_batch=max_batch)

    @property
    def passes(self) -> int:
        """Forward passes run so far (tests read it)."""
        return self._batcher.passes

    async def vectors(self, texts: Sequence[str]) -> list[TextVectors]:
        """Both views of every text, in order; each distinct new text is encoded once."""
        found: dict[str, TextVectors] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            if text in self._cache and (len(self._cache[text].tokens) or not self.keep_tokens):
                self._cache.move_to_end(text)
                found[text] = self._cache[text]
            else:
                missing.append(text)
        if missing:
            found.update(zip(missing, await self._batcher.submit(missing), strict=True))
        return [found[text] for text in texts]

    def encode_now(self, texts: list[str]) -> Encoded:
        """A synchronous pass (for worker threads), bypassing the queue and the cache: the pooled views
        only, no token states."""
        return self.runner(texts, tokens=False)

    async def _encode_pass(self, texts: list[str]) -> list[TextVectors]:
        """One forward pass off the event loop; its results are cached before any caller sees them,
        so a text is never encoded twice between a pass ending and its callers waking."""
        tokens = self.keep_tokens
        encoded = await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(self.runner, texts, tokens=tokens)
        )
        vectors = [
            TextVectors(layers=encoded.layers[i], sentence=encoded.sentence[i], tokens=encoded.tokens[i])
            for i in range(len(texts))
        ]
        self._cache.update(zip(texts, vectors, strict=True))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return vectors


@cache
def shared_encoder() -> SharedEncoder:
    """The process's one encoder over the bundled MiniLM, its ONNX graph kept in the user cache."""
    from core.embeddings import bundled_model_path
    from core.telemetry import startup_phase

    with startup_phase("encoder load"):
        return SharedEncoder(best_runner(bundled_model_path(), graph_cache_dir()))


def graph_cache_dir() -> Path:
    """Where this user's exported graphs are kept."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("parley"))
