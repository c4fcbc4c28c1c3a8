"""One MiniLM forward pass per text for the whole process: the guardrails and memory share it.

A turn's text is read by the input rails (layer features for the harm classifier, the sentence
vector for workspace topics) and by memory (the sentence vector for recall and storage). Both come
out of one forward pass: `encode` pools every layer. `SharedEncoder` keeps recent results, lets a
caller wait for a pass already running on the same text, and batches the texts of concurrent turns:
while one pass runs, new texts queue and the next pass takes them all. On this machine (one torch
thread) a short text alone costs 10.6 ms of CPU, and 4.7 ms in a batch of 16 (measured).

The harmful-request classifier reads MiniLM's mean-pooled hidden state of every layer (1-6), each
L2-normalised, side by side (6 x 384 = 2,304 numbers). The middle layers keep who does what to whom
("kill a process" vs "kill my neighbour"), which the final pooled sentence embedding blurs; measured
on our held-out split this lifts recall on unseen harmful prompts by about ten points at the same
false-positive rate. The last layer's pooled vector is the usual sentence embedding, the same as
`model.encode(texts, normalize_embeddings=True)`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LAYERS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
WIDTH = 384


@dataclass(frozen=True, kw_only=True, slots=True)
class Encoded:
    """Both views of a batch of texts from one forward pass."""

    layers: np.ndarray
    """(n, len(LAYERS) * 384) float32: the harm classifier's input."""
    sentence: np.ndarray
    """(n, 384) float32: the normalised sentence embedding."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TextVectors:
    """Both views of one text."""

    layers: np.ndarray
    sentence: np.ndarray


def encode(model: SentenceTransformer, texts: list[str], *, batch_size: int = 32) -> Encoded:
    """Run MiniLM once over `texts` and pool every layer; CPU-bound, call it off the event loop."""
    import torch

    transformer = cast(Callable[..., Any], model[0].auto_model)
    tokenizer = model.tokenizer
    layer_out: list[np.ndarray] = []
    sentence_out: list[np.ndarray] = []
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
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden[0].dtype)
            pooled = [(hidden[i] * mask).sum(1) / mask.sum(1).clamp(min=1) for i in LAYERS]
            normed = [torch.nn.functional.normalize(p, dim=-1) for p in pooled]
            layer_out.append(torch.cat(normed, dim=-1).float().numpy())
            sentence_out.append(normed[-1].float().numpy())
    return Encoded(
        layers=np.concatenate(layer_out) if layer_out else np.zeros((0, len(LAYERS) * WIDTH), np.float32),
        sentence=np.concatenate(sentence_out) if sentence_out else np.zeros((0, WIDTH), np.float32),
    )


class SharedEncoder:
    """`encode` behind a cache, in-flight sharing and batching of concurrent callers."""

    def __init__(self, model: SentenceTransformer, *, cache_size: int = 4096, max_batch: int = 32) -> None:
        self.model = model
        self.cache_size = cache_size
        self.max_batch = max_batch
        self.passes = 0
        """Forward passes run so far (tests read it)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._cache: OrderedDict[str, TextVectors] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, asyncio.Future[TextVectors]] = {}
        self._queue: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def vectors(self, texts: Sequence[str]) -> list[TextVectors]:
        """Both views of every text, in order; each distinct new text is encoded once."""
        self._bind(asyncio.get_running_loop())
        found: dict[str, TextVectors] = {}
        waits: dict[str, asyncio.Future[TextVectors]] = {}
        for text in dict.fromkeys(texts):
            if text in self._cache:
                self._cache.move_to_end(text)
                found[text] = self._cache[text]
                continue
            future = self._pending.get(text)
            if future is None:
                future = self._pending[text] = asyncio.get_running_loop().create_future()
                future.add_done_callback(_retrieve)
                self._queue.append(text)
            waits[text] = future
        if self._queue and self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run_queue())
        for text, future in waits.items():
            found[text] = await asyncio.shield(future)
        return [found[text] for text in texts]

    def encode_now(self, texts: list[str]) -> Encoded:
        """A synchronous pass (for worker threads and offline training), bypassing the queue."""
        return encode(self.model, texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Futures belong to one event loop; a new loop (a test, a restarted CLI) starts a fresh queue."""
        if self._loop is not loop:
            self._loop, self._pending, self._queue, self._drain = loop, {}, [], None

    async def _run_queue(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self.passes += 1
                try:
                    encoded = await loop.run_in_executor(self._executor, encode, self.model, batch)
                except Exception as exc:
                    for text in batch:
                        self._pending.pop(text).set_exception(exc)
                    continue
                for i, text in enumerate(batch):
                    vectors = TextVectors(layers=encoded.layers[i], sentence=encoded.sentence[i])
                    self._cache[text] = vectors
                    self._pending.pop(text).set_result(vectors)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        finally:
            self._drain = None


def _retrieve(future: asyncio.Future[TextVectors]) -> None:
    """Mark a failure as seen: every caller got it already, or was cancelled and no longer cares."""
    if not future.cancelled():
        future.exception()


@cache
def shared_encoder() -> SharedEncoder:
    """The process's one encoder over the bundled MiniLM."""
    from core.embeddings import shared_sentence_transformer

    return SharedEncoder(shared_sentence_transformer())
