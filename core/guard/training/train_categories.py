"""Train the kind-of-harm model (core/guard/categories.py) and write `harm_categories.npz`.

    python -m core.guard.training.train_categories [--out core/guard/data]

Rows: the dev split's harmful prompts whose source names a category (CATEGORY_OF); the validation
split's such rows give the accuracy printed at the end.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.guard.categories import CATEGORY_OF
from core.guard.harm import DATA_DIR
from core.guard.training.data import load_examples
from core.telemetry import quiet_libraries

quiet_libraries()


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)

    from sklearn.linear_model import LogisticRegression

    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode

    rows = [e for e in load_examples() if e.harmful and e.category in CATEGORY_OF]
    vectors = encode(shared_sentence_transformer(), [e.text for e in rows]).sentence
    labels = np.array([CATEGORY_OF[e.category] for e in rows])
    dev = np.array([e.split == "dev" for e in rows])
    model = LogisticRegression(C=4.0, max_iter=3000, class_weight="balanced").fit(vectors[dev], labels[dev])
    accuracy = float((model.predict(vectors[~dev]) == labels[~dev]).mean())
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out / "harm_categories.npz",
        names=np.array(model.classes_, dtype=str),
        coef=model.coef_.astype(np.float32),
        intercept=model.intercept_.astype(np.float32),
    )
    figures = {
        "dev_rows": int(dev.sum()),
        "validation_rows": int((~dev).sum()),
        "validation_accuracy": round(accuracy, 3),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
