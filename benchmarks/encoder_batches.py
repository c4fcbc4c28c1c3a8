"""CPU of the shared encoder's passes when a batch mixes short questions and a longer reply.

Concurrent turns share encoder passes (core/batching.py): a pass may hold this turn's question and
another turn's reply. One pass pads every row to its longest text; `core.encoder.length_buckets`
splits the batch into passes of about one length. Both run here on the same texts in one process,
alternated, and the CPU seconds of each are compared (process CPU, which other jobs on the machine
inflate far less than wall time). The JSON goes to stdout:

    {"padded_ms": ..., "bucketed_ms": ..., "ratio": ..., "texts": ..., "tokens": [...], "machine": {...}}

Run: python benchmarks/encoder_batches.py --json [--rounds 30] [--reply-sentences 6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, offline_environment

QUESTIONS = (
    "When is the standup tomorrow?",
    "What is 17 times 23?",
    "Which room do we use on Thursdays?",
    "Can you remind me what we decided about the release train?",
    "What's my preferred answer style again?",
    "Draft a two-line note thanking the team for the offsite.",
    "Summarise what I told you about the Falcon project.",
    "How do I kill a python process that hangs?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="passes of each kind, alternated")
    parser.add_argument("--reply-sentences", type=int, default=6, help="length of the one reply in the batch")
    parser.add_argument("--json", action="store_true", help="print the JSON on one line")
    args = parser.parse_args()
    offline_environment()
    from core.embeddings import bundled_model_path
    from core.encoder import OnnxEncoder, ensure_graph, graph_cache_dir

    model_dir = bundled_model_path()
    encoder = OnnxEncoder(ensure_graph(model_dir, graph_cache_dir()), model_dir)
    reply = "Here is what you told me about the Falcon project and the offsite plans. " * args.reply_sentences
    texts = [*QUESTIONS, reply]
    encodings = encoder._tokenizer.encode_batch(texts)
    timings = {"padded": 0.0, "bucketed": 0.0}
    runs = {"padded": lambda: encoder._run(encodings), "bucketed": lambda: encoder(texts)}
    for run in runs.values():
        run()
    for _ in range(args.rounds):
        for name, run in runs.items():
            started = time.process_time()
            run()
            timings[name] += time.process_time() - started
    padded, bucketed = (timings[name] / args.rounds * 1000 for name in ("padded", "bucketed"))
    result = {
        "padded_ms": round(padded, 2),
        "bucketed_ms": round(bucketed, 2),
        "ratio": round(bucketed / padded, 3),
        "texts": len(texts),
        "tokens": [len(e.ids) for e in encodings],
        "rounds": args.rounds,
        "machine": machine(),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
