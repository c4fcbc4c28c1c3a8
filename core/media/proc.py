"""Run a command-line tool (ffmpeg, espeak-ng) without blocking the event loop, and never for longer
than its timeout: on expiry the process is killed, not left behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping


class ToolFailed(Exception):
    """The tool exited non-zero; `stderr_tail` is its last line, for logs only (it may hold paths)."""

    def __init__(self, *, tool: str, returncode: int, stderr_tail: str) -> None:
        super().__init__(f"{tool} exited with {returncode}: {stderr_tail}")
        self.tool = tool
        self.returncode = returncode
        self.stderr_tail = stderr_tail


async def run_tool(
    args: list[str], *, stdin: bytes | None = None, timeout_s: float, env: Mapping[str, str] | None = None
) -> bytes:
    """Run `args` (in `env`, or this process's environment), feed `stdin`, return stdout. Raises TimeoutError
    or ToolFailed."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        lines = err.decode("utf-8", errors="replace").strip().splitlines()
        raise ToolFailed(tool=args[0], returncode=proc.returncode or -1, stderr_tail=lines[-1] if lines else "")
    return out
