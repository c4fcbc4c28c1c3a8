"""The terminal adapter: platform `console`, workspace `local`, the operating-system user.

Translates terminal input into an Inbound and a Reply back into text or JSON; no business logic.
"""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from core.models import Attachment, Inbound, Platform, Reply
from core.pipeline import Pipeline

CONSOLE_CHANNEL = "terminal"


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local-user"


def new_thread() -> str:
    return uuid.uuid4().hex[:12]


def read_attachments(paths: Sequence[Path]) -> tuple[Attachment, ...]:
    return tuple(Attachment(name=p.name, data=p.read_bytes()) for p in paths)


def inbound(
    text: str,
    *,
    workspace: str,
    user: str,
    thread: str,
    attachments: tuple[Attachment, ...] = (),
    voice_reply: bool | None = None,
) -> Inbound:
    return Inbound(
        platform=Platform.CONSOLE,
        workspace_id=workspace,
        channel_id=CONSOLE_CHANNEL,
        thread_id=thread,
        user_id=user,
        user_name=user,
        channel_name=CONSOLE_CHANNEL,
        text=text,
        event_id=uuid.uuid4().hex,
        is_dm=True,
        attachments=attachments,
        voice_reply=voice_reply,
    )


def reply_json(reply: Reply) -> dict[str, Any]:
    """The `--json` shape: reply, blocked, thread, steps, usage, latency_ms, attachments."""
    return {
        "reply": reply.text,
        "blocked": reply.blocked,
        "rail": reply.block_rail,
        "error": reply.error,
        "thread": reply.thread_id,
        "turn_id": reply.turn_id,
        "steps": [asdict(s) for s in reply.steps],
        "usage": {
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
            "requests": reply.usage.requests,
            "cost": reply.usage.cost_usd,
        },
        "latency_ms": reply.latency_ms,
        "attachments": [
            {"name": a.name, "kind": a.kind, **({"error": a.error} if a.error else {"text": a.text})}
            for a in reply.attachments
        ],
    }


async def interactive(pipeline: Pipeline, *, workspace: str, user: str, thread: str, console: Console) -> None:
    """A chat loop that streams each reply as it arrives; Ctrl-D or /exit ends it."""
    console.print(f"[bold]Parley[/bold] — workspace [cyan]{workspace}[/cyan], thread [cyan]{thread}[/cyan]. "
                  "Type /exit to leave.")
    while True:
        try:
            text = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if text in {"/exit", "/quit"}:
            return
        if not text:
            continue
        console.print("[bold blue]parley>[/bold blue] ", end="")
        streamed = False

        async def show(delta: str) -> None:
            nonlocal streamed
            streamed = True
            sys.stdout.write(delta)
            sys.stdout.flush()

        reply = await pipeline.run(inbound(text, workspace=workspace, user=user, thread=thread), on_delta=show)
        if not streamed or reply.blocked or reply.error:
            console.print(("\n" if streamed else "") + reply.text, style="yellow" if reply.error else None)
        else:
            console.print()
