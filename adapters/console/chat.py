"""The terminal adapter: platform `console`, workspace `local`, the operating-system user.

Translates terminal input into an Inbound and a Reply back into text or JSON, and runs the interactive
chat (prompt, slash commands, streamed Markdown); no business logic.
"""

from __future__ import annotations

import asyncio
import getpass
import signal
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.text import Text

from core.models import Attachment, Inbound, Platform, Reply, ToolProgress, UserKey

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

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
            "cost_usd": reply.usage.cost_usd,
        },
        "latency_ms": reply.latency_ms,
        "attachments": [
            {"name": a.name, "kind": a.kind, **({"error": a.error} if a.error else {"text": a.text})}
            for a in reply.attachments
        ],
    }


HELP = """\
[bold]/help[/bold]     this list
[bold]/new[/bold]      start a new conversation (a new thread)
[bold]/profile[/bold]  what Parley keeps about how to answer you
[bold]/memory[/bold]   what Parley knows about you (your facts, and the notes shared with you)
[bold]/forget[/bold]   delete everything Parley keeps about you here (asks first)
[bold]/exit[/bold]     leave (Ctrl-D or Ctrl-C at the prompt do the same)
Ctrl-C while Parley answers stops that answer. Arrow keys scroll through what you typed before."""

COMMANDS = ("/help", "/new", "/profile", "/memory", "/forget", "/exit", "/quit")


def command(text: str) -> str | None:
    """The chat command `text` names (`/exit` for `/quit`), `"unknown"` for another `/word`, None for a message."""
    word = text.split(maxsplit=1)[0].lower() if text.startswith("/") else ""
    if not word or "/" in word[1:]:
        return None
    if word == "/quit":
        return "/exit"
    return word if word in COMMANDS else "unknown"


@dataclass
class ConsoleChat:
    """An interactive chat: prompt with history, replies streamed as Markdown, slash commands, and
    Ctrl-C that stops the answer in progress (or, at the prompt, leaves)."""

    pipeline: Pipeline
    workspace: str
    user: str
    thread: str
    console: Console
    history_file: Path | None = None
    log_file: Path | None = None

    async def run(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.formatted_text import HTML
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        history = FileHistory(str(self.history_file)) if self.history_file else InMemoryHistory()
        session: PromptSession[str] = PromptSession(history=history)
        self.console.print(f"[bold]Parley[/bold] — workspace [cyan]{self.workspace}[/cyan], "
                           f"you are [cyan]{self.user}[/cyan]. /help lists the commands; /exit leaves.")
        if self.log_file is not None:
            self.console.print(f"[dim]Logs go to {self.log_file}.[/dim]", highlight=False)
        while True:
            try:
                raw = await session.prompt_async(HTML("<b><ansigreen>you&gt;</ansigreen></b> "))
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            text = raw.strip()
            if not text:
                continue
            match command(raw):
                case None:
                    await self.answer(text)
                case "/exit":
                    return
                case "/help":
                    self.console.print(HELP)
                case "/new":
                    self.thread = new_thread()
                    self.console.print(f"[dim]New conversation (thread {self.thread}).[/dim]")
                case "/profile":
                    await self.show_profile()
                case "/memory":
                    await self.show_memory()
                case "/forget":
                    await self.forget(session)
                case _:
                    self.console.print(f"[yellow]{text.split()[0]} is not a command.[/yellow] /help lists them; "
                                       "to send it to Parley, start with a space.")

    async def answer(self, text: str) -> None:
        """Stream one reply; Ctrl-C (SIGINT) cancels it and the chat goes on."""
        loop = asyncio.get_running_loop()
        with Live(Text(""), console=self.console, refresh_per_second=12, transient=False) as live:
            sink = TerminalSink(live)
            task = asyncio.ensure_future(
                self.pipeline.run(inbound(text, workspace=self.workspace, user=self.user, thread=self.thread), sink)
            )
            loop.add_signal_handler(signal.SIGINT, task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                live.update(Markdown(sink.shown + "\n\n*(stopped)*" if sink.shown else "*(stopped)*"))
                return
            finally:
                loop.remove_signal_handler(signal.SIGINT)

    async def show_profile(self) -> None:
        from core.memory.profiles import get_profile

        profile = await get_profile(self.pipeline.pool, self.key)
        fields = {k: v for k, v in asdict(profile).items() if v not in (None, "", {}, False)}
        if not fields:
            self.console.print("[dim]Parley keeps no profile for you yet.[/dim]")
            return
        for name, value in fields.items():
            self.console.print(f"[bold]{name}[/bold]: {value}", highlight=False)

    async def show_memory(self) -> None:
        """The facts in force, as `parley memory list` shows them: the person's own and the notes they share."""
        from core.memory.facts_view import visible_facts

        found = await visible_facts(self.pipeline.pool, self.key, channel_id=CONSOLE_CHANNEL, history=False)
        if not found:
            self.console.print('[dim]Parley knows no facts about you yet: tell it about yourself ("I\'m Sam", '
                               '"I prefer answers in euros") and it keeps them.[/dim]')
            return
        for fact in found:
            whose = "" if fact.scope == "person" else f" [dim]({fact.scope} note)[/dim]"
            self.console.print(f"• {escape(fact.content)}{whose} [dim]{fact.said_at:%Y-%m-%d}[/dim]")

    async def forget(self, session: PromptSession[str]) -> None:
        from core.memory.forget import forget_user

        try:
            sure = await session.prompt_async(
                f"Delete everything Parley keeps about {self.user} in {self.workspace}? [y/N] "
            )
        except (EOFError, KeyboardInterrupt):
            sure = ""
        if sure.strip().lower() not in {"y", "yes"}:
            self.console.print("[dim]Nothing deleted.[/dim]")
            return
        counts = await forget_user(self.pipeline.pool, self.key)
        self.thread = new_thread()
        self.console.print(f"Deleted {sum(counts.values())} record(s); a new conversation starts.")

    @property
    def key(self) -> UserKey:
        return UserKey(platform=Platform.CONSOLE, workspace_id=self.workspace, user_id=self.user)




class TerminalSink:
    """One reply in a rich `Live` area: status and tool lines dimmed until the text streams in as Markdown,
    then the final reply (errors in yellow, refusals in magenta). Nothing in a terminal can be reacted to."""

    streams = True

    def __init__(self, live: Live) -> None:
        self.live = live
        self.shown = ""

    async def delta(self, text: str) -> None:
        self.shown += text
        self.live.update(Markdown(self.shown))

    async def status(self, text: str) -> None:
        if not self.shown:
            self.live.update(Text(f"Parley {text}", style="dim"))

    async def tool(self, progress: ToolProgress) -> None:
        if not self.shown and progress.status == "in_progress":
            self.live.update(Text(f"Parley is using {progress.tool}…", style="dim"))

    async def finish(self, reply: Reply) -> Sequence[str]:
        if reply.error or reply.blocked:
            self.live.update(Text(reply.text, style="yellow" if reply.error else "magenta"))
        else:
            self.live.update(Markdown(reply.text))
        return ()
