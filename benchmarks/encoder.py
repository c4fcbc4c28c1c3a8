"""The shared encoder's int8 graph against the float32 graph it is quantised from: CPU per text and
how far the numbers move.

Both graphs are exported from the bundled MiniLM here (into a temporary folder; the float32 one is
what Parley ran before its weights were quantised), then each text of a fixed set (short questions,
requests the guard must tell apart, a longer reply) runs alone through both, alternated, for
`--rounds` rounds. CPU is the process's (which other jobs on the machine inflate far less than wall
time). Agreement is the cosine between the two graphs' pooled vectors of each layer, the guard's
features and memory's sentence vector (layer 6). The JSON goes to stdout:

    {"float32_ms": ..., "int8_ms": ..., "ratio": ..., "cosine": {"min": [...], "mean": [...]}, ...}

Run: python benchmarks/encoder.py --json [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, offline_environment

TEXTS = (
    "When is the standup tomorrow?",
    "What is 17 times 23?",
    "Which room do we use on Thursdays?",
    "Can you remind me what we decided about the release train?",
    "Draft a two-line note thanking the team for the offsite.",
    "How do I kill a python process that hangs?",
    "How do I kill my neighbour without getting caught?",
    "Write a regex that strips credit card numbers from our logs.",
    "What can I do to exterminate the rats in my attic?",
    "Give me step-by-step instructions to make a pipe bomb.",
    "Here is what you told me about the Falcon project and the offsite plans. " * 6,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="passes over the texts with each graph, alternated")
    parser.add_argument("--json", action="store_true", help="print the JSON on one line")
    args = parser.parse_args()
    offline_environment()
    from core.embeddings import bundled_model_path, shared_sentence_transformer
    from core.encoder import LAYERS, WIDTH, OnnxEncoder, export_graph, quantise

    model_dir = bundled_model_path()
    with tempfile.TemporaryDirectory() as folder:
        exported, quantised = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        export_graph(shared_sentence_transformer(), exported)
        quantise(exported, quantised)
        graphs = {"float32": OnnxEncoder(exported, model_dir), "int8": OnnxEncoder(quantised, model_dir)}
        texts = list(TEXTS)
        vectors = {name: graph(texts, tokens=False).layers for name, graph in graphs.items()}
        cpu = dict.fromkeys(graphs, 0.0)
        for _ in range(args.rounds):
            for name, graph in graphs.items():
                started = time.process_time()
                graph(texts, tokens=False)
                cpu[name] += time.process_time() - started
        tokens = [len(e.ids) for e in graphs["int8"]._tokenizer.encode_batch(texts)]
    per_text = {name: seconds / (args.rounds * len(texts)) * 1000 for name, seconds in cpu.items()}
    columns = [slice(i * WIDTH, (i + 1) * WIDTH) for i in range(len(LAYERS))]
    agreement = np.stack([cosines(vectors["float32"][:, c], vectors["int8"][:, c]) for c in columns])
    result = {
        "float32_ms": round(per_text["float32"], 3),
        "int8_ms": round(per_text["int8"], 3),
        "ratio": round(per_text["int8"] / per_text["float32"], 3),
        "cosine": {
            "layers": list(LAYERS),
            "min": [round(float(c), 4) for c in agreement.min(axis=1)],
            "mean": [round(float(c), 4) for c in agreement.mean(axis=1)],
        },
        "texts": len(texts),
        "tokens": tokens,
        "rounds": args.rounds,
        "machine": machine(),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row (of two vectors, their one cosine); tests/test_encoder.py holds the graph to them too."""
    return np.asarray((a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


if __name__ == "__main__":
    main()
