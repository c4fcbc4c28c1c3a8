"""Peak memory of reading many large images at once: the process-wide decoding budget against no budget.

Ten 49-megapixel PNGs (issue 14: one request with ten such images took a process up by 1.2 GB) are read
at the same time through `core.media.images.read_image` (decode, the vision model's copy, OCR), each
side in a fresh process so that each peak is its own: `budget` with `DECODING_BUDGET_PIXELS` as shipped,
`unbounded` with the budget raised to every image at once (what a per-turn bound alone allows across
turns). Timeouts are raised so every image is read on both sides: the figure is memory, not refusals.
Each side reports its peak RSS above the RSS before the first image, beside the budget's promise
(`DECODING_BUDGET_PIXELS` × `PROMISED_BYTES_PER_PIXEL`).

    python benchmarks/images.py --json [--images 10] [--megapixels 49]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, offline_environment

offline_environment()

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import replace

import psutil
from PIL import Image, ImageDraw

from core.media import images
from core.media.config import MediaConfig, MediaTimeouts

PROMISED_BYTES_PER_PIXEL = 7
"""What `DECODING_BUDGET_PIXELS`'s docstring promises for one image: the decode with the copies OCR and
the vision model need."""
MB = 1024 * 1024


def write_png(path: Path, megapixels: float) -> None:
    """A square white page with lines of text: OCR finds something, the PNG stays small (~1 MB)."""
    side = int(math.sqrt(megapixels * 1_000_000))
    page = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(page)
    for y in range(100, side - 200, max(side // 10, 200)):
        draw.text((100, y), "Quarterly numbers 2026", fill="black", font_size=120)
    page.save(path, format="PNG", compress_level=1)


def measure(png: Path, count: int, *, unbounded: bool) -> dict[str, object]:
    """Read `count` copies of `png` at once in this process; its peak RSS growth and what came back."""
    data = png.read_bytes()
    pixels = Image.open(png).size
    if unbounded:
        images.DECODING.capacity = count * pixels[0] * pixels[1]
    config = replace(MediaConfig(), timeouts=MediaTimeouts(ocr_s=3600.0))
    before = psutil.Process().memory_info().rss

    async def read_all() -> list[images.ImageText | BaseException]:
        return await asyncio.gather(*(images.read_image(data, config) for _ in range(count)), return_exceptions=True)

    started = time.perf_counter()
    results = asyncio.run(read_all())
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "images": count,
        "read": sum(isinstance(r, images.ImageText) for r in results),
        "errors": sorted({f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)}),
        "budget_pixels": images.DECODING.capacity,
        "rss_before_mb": round(before / MB),
        "peak_rss_growth_mb": round((peak - before) / MB),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--megapixels", type=float, default=49.0)
    parser.add_argument("--side", choices=["budget", "unbounded"], help=argparse.SUPPRESS)
    parser.add_argument("--png", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:  # one side, in its own process
        print(json.dumps(measure(args.png, args.images, unbounded=args.side == "unbounded")))
        return
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "page.png"
        write_png(png, args.megapixels)
        sides = {
            side: json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--side", side, "--png", str(png), "--images", str(args.images)],
                    cwd=REPO,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for side in ("budget", "unbounded")
        }
    promise_mb = round(images.DECODING_BUDGET_PIXELS * PROMISED_BYTES_PER_PIXEL / MB)
    result = {
        "benchmark": "images",
        "load_average": os.getloadavg()[0],
        "megapixels": args.megapixels,
        "promise_mb": promise_mb,
        "sides": sides,
        "budget_over_unbounded": round(
            sides["budget"]["peak_rss_growth_mb"] / sides["unbounded"]["peak_rss_growth_mb"], 2
        ),
        "budget_within_promise": sides["budget"]["peak_rss_growth_mb"] <= promise_mb,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for side, row in sides.items():
            read = f"{row['read']}/{row['images']} read in {row['wall_s']} s"
            print(f"{side:10} peak +{row['peak_rss_growth_mb']} MB ({read})")
        print(f"promise    {promise_mb} MB ({PROMISED_BYTES_PER_PIXEL} bytes a pixel of the budget)")


if __name__ == "__main__":
    main()
