"""The model factories tests build (tests/pipeline_helpers.build_pipeline), closed at the session's end as `parley
serve` closes its own on the way out (bot.app.models_for): their kept-alive connections to the fake model server
were left to the garbage collector ("ResourceWarning: unclosed transport" under `python -X dev`). Apart from
pipeline_helpers so that conftest need not import the pipeline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.llm import ModelFactory

FACTORIES: list[ModelFactory] = []


async def close_all() -> None:
    """Close every factory built so far on this loop; one used on a loop of its own that has ended (a server in a
    thread) is left as it is."""
    factories, FACTORIES[:] = list(FACTORIES), []
    await asyncio.gather(*(factory.aclose() for factory in factories), return_exceptions=True)
