"""One PDF read in a child process: `python -m core.media.pdf_worker LIMITS` with the file on stdin.

The parent (`documents.read_pdf`) kills the child at its backstop, which bounds what a hostile PDF can
cost; a thread reading it could not be stopped. The child answers one JSON object on stdout,
`{"text": ...}` or `{"error": ...}` (an Unreadable reason, told to the person).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from core.media.config import MediaConfig, MediaLimits, MediaTimeouts
from core.media.errors import Unreadable

STARTUP_S = 5.0
"""Added to the reading deadline for starting Python and importing pypdf in the child."""
_ROOT = str(Path(__file__).resolve().parents[2])


def command(config: MediaConfig) -> list[str]:
    """The child's command line: this interpreter, and the limits the parent reads PDFs under."""
    limits = {"limits": asdict(config.limits), "timeouts": asdict(config.timeouts), "ocr": config.ocr_languages}
    return [sys.executable, "-m", "core.media.pdf_worker", json.dumps(limits)]


def environment() -> dict[str, str]:
    """This environment, with this checkout of Parley first on the path: the child reads with the same code."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([_ROOT, path]) if path else _ROOT}


def answer(out: bytes) -> str:
    """The text the child found; raises Unreadable with the reason it gave."""
    try:
        reply = json.loads(out)
    except ValueError as exc:
        raise Unreadable("corrupt PDF") from exc
    if "error" in reply:
        raise Unreadable(str(reply["error"]))
    return str(reply["text"])


def main(argv: list[str]) -> None:
    from core.media.documents import read_pdf_here

    given = json.loads(argv[1])
    config = MediaConfig(
        limits=MediaLimits(**given["limits"]), timeouts=MediaTimeouts(**given["timeouts"]), ocr_languages=given["ocr"]
    )
    try:
        reply = {"text": read_pdf_here(sys.stdin.buffer.read(), config)}
    except Unreadable as exc:
        reply = {"error": exc.reason}
    sys.stdout.write(json.dumps(reply))


if __name__ == "__main__":
    main(sys.argv)
