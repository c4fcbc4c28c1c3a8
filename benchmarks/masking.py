"""Masking throughput (MB/s) on ordinary chat, on text dense with secrets and personal data, and on
adversarial near-misses, beside the implementation before the linear-time rewrite (loaded from git
as `main:core/guard/masking.py` unless `--baseline-ref` names another revision).

The baseline is quadratic (or worse) on adversarial text, so its adversarial inputs are capped
(`--baseline-adversarial-kb`); its figure there is for that smaller size and still far lower.

    python benchmarks/masking.py --json [--mb 1] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, offline_environment

offline_environment()

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from types import ModuleType

from core.guard import masking

CHAT = (
    "Morning all! The release meeting moved to 3pm, room 4B. Can someone check ticket #4521 before then? "
    "Q3 budget is at $12,400.50, about 8% over. Deploy v2.14.3 went fine, see the dashboard for 2026-11-25. "
)
DENSE = (
    "reach ana.lopez@example.org or +44 20 7946 0958; card 4111 1111 1111 1111; IBAN GB82 WEST 1234 5698 7654 32; "
    "key sk-proj-Abc123Def456Ghi789Jkl0 and password: hunter2!; SSN 123-45-6789; "
    "aws secret key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY; postgres://app:s3cret@db:5432/parley. "
)
ADVERSARIAL = {
    "letters": "a",
    "url-like": "ab://c:d",
    "emails": "a@b.",
    "digit groups": "1 ",
    "card groups": "4111 ",
    "iban groups": "GB82 ",
    "mixed": "a1@:/.-+ ",
}


def corpus(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def throughput(mask: Callable[[str], object], text: str, repeat: int) -> float:
    """MB/s, best of `repeat` runs (other jobs on the machine only ever slow a run down)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        mask(text)
        best = min(best, time.perf_counter() - started)
    return float(f"{len(text.encode()) / 1e6 / best:.3g}")


def baseline_module(ref: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:core/guard/masking.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_masking.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_masking", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--mb", type=float, default=1.0, help="size of each text (default 1 MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--baseline-adversarial-kb", type=int, default=2)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    small = args.baseline_adversarial_kb * 1000
    baseline = baseline_module(args.baseline_ref)
    rows: dict[str, dict[str, float | int]] = {}
    for name, unit in (("chat", CHAT), ("dense", DENSE)):
        text = corpus(unit, size)
        rows[name] = {
            "bytes": size,
            "parley_mb_s": throughput(masking.mask_sensitive, text, args.repeat),
            "baseline_mb_s": throughput(baseline.mask_sensitive, text, args.repeat),
        }
    for name, unit in ADVERSARIAL.items():
        rows[f"adversarial {name}"] = {
            "bytes": size,
            "parley_mb_s": throughput(masking.mask_sensitive, corpus(unit, size), args.repeat),
            "baseline_bytes": small,
            "baseline_mb_s": throughput(baseline.mask_sensitive, corpus(unit, small), 1),
        }
    result = {
        "benchmark": "masking",
        "load_average": os.getloadavg()[0],
        "baseline": f"{args.baseline_ref}:core/guard/masking.py",
        "rows": rows,
        "worst_adversarial_parley_mb_s": min(r["parley_mb_s"] for k, r in rows.items() if k.startswith("adv")),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in rows.items():
            print(f"{name:28} parley {row['parley_mb_s']:8.3f} MB/s   baseline {row['baseline_mb_s']:8.3f} MB/s")


if __name__ == "__main__":
    main()
