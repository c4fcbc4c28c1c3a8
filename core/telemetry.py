"""What a Parley process says about itself, and what third-party libraries may not say.

Start-up phases are timed (`startup_phase`) so that a slow start shows where its seconds go.
Third-party libraries stay quiet in every Parley process: no usage telemetry, no hub downloads.

NeMo Guardrails reports usage and DeepEval phones home unless told not to; the bundled MiniLM needs
no Hugging Face hub; pydantic-ai prints a first-run banner (a Logfire pitch) into a terminal and
transformers a progress bar per model load, both in the middle of a chat; logfire's pydantic plugin,
which Parley does not use, costs every process a second of imports on its first model. Values already
in the environment win, so an operator who wants a hub model for `PARLEY_EMBEDDING_MODEL` sets
`HF_HUB_OFFLINE=0`. Call `quiet_libraries()` before those
libraries are imported: they read the variables at import time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

QUIET_ENV: dict[str, str] = {
    "NEMO_GUARDRAILS_NO_USAGE_STATS": "1",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYDANTIC_AI_NO_BANNER": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYDANTIC_DISABLE_PLUGINS": "logfire-plugin",
}


def quiet_libraries(*, force: bool = False) -> None:
    """Set `QUIET_ENV`; with `force`, over values already set (tests must not depend on the shell)."""
    for name, value in QUIET_ENV.items():
        if force:
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)


PHASES_ENV = "PARLEY_STARTUP_PHASES"
"""A file path: every start-up phase appends one JSON line to it (benchmarks/startup.py reads them)."""
_local = threading.local()
"""Per thread, `open`: the wall and CPU seconds spent in the inner phases of each open phase."""


@contextmanager
def startup_phase(name: str) -> Iterator[None]:
    """Time one start-up phase (imports, database, encoder, guard, first turn) in wall and CPU time.

    Phases nest; each reports its own time without its inner phases', so they add up. The result is
    logged at debug level and appended to the file `PARLEY_STARTUP_PHASES` names, if set, as
    {"phase", "start", "wall_ms", "cpu_ms"} with `start` in seconds since the epoch."""
    open_phases: list[list[float]] = _local.__dict__.setdefault("open", [])
    start, wall, cpu = time.time(), time.perf_counter(), time.process_time()
    open_phases.append([0.0, 0.0])
    try:
        yield
    finally:
        inner_wall, inner_cpu = open_phases.pop()
        took_wall, took_cpu = time.perf_counter() - wall, time.process_time() - cpu
        if open_phases:
            open_phases[-1][0] += took_wall
            open_phases[-1][1] += took_cpu
        record = {
            "phase": name,
            "start": round(start, 4),
            "wall_ms": round((took_wall - inner_wall) * 1000, 1),
            "cpu_ms": round((took_cpu - inner_cpu) * 1000, 1),
        }
        log.debug("start-up phase %(phase)s: %(wall_ms)s ms wall, %(cpu_ms)s ms CPU", record)
        path = os.environ.get(PHASES_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
