"""A turn's tool calls as Slack shows progress: task cards and a plan in the stream, a status line in DMs.

Pure: `ToolProgress` values in, slack_sdk's own chunk models and short strings out.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from slack_sdk.models.blocks.block_elements import UrlSourceElement
from slack_sdk.models.messages.chunk import PlanUpdateChunk, TaskUpdateChunk

from core.models import ToolProgress

DETAIL_CHARS = 120
OUTPUT_CHARS = 200
STATUS_CHARS = 50
SOURCE_TOOLS = frozenset({"fetch_url"})
"""Tools whose `url` argument is a source the answer draws on."""


def tool_title(tool: str) -> str:
    """`fetch_url` -> `Fetch url`: the name a person reads on a card."""
    return tool.replace("_", " ").strip().capitalize() or "Tool"


def task_chunk(progress: ToolProgress) -> TaskUpdateChunk:
    """One tool call as a task card: pending, in progress, then complete or error with its short output."""
    details = ", ".join(f"{k}: {v}" for k, v in progress.args.items())
    url = str(progress.args.get("url") or "")
    sources = (
        [UrlSourceElement(url=url, text=urlsplit(url).hostname or url)]
        if progress.tool in SOURCE_TOOLS and urlsplit(url).scheme in ("http", "https")
        else None
    )
    over = progress.status in ("complete", "error")
    return TaskUpdateChunk(
        id=progress.call_id,
        title=tool_title(progress.tool),
        status=progress.status,
        details=_short(details, DETAIL_CHARS) or None,
        output=(_short(progress.output or "", OUTPUT_CHARS) or None) if over else None,
        sources=sources,
    )


def plan_chunk(tools: list[str]) -> PlanUpdateChunk:
    """The plan's title once a turn takes more than one step."""
    return PlanUpdateChunk(title=f"{len(tools)} steps: " + ", ".join(tool_title(t).lower() for t in tools))


def status_line(progress: ToolProgress) -> str:
    """The DM status while a tool runs ("is using web search…")."""
    return _short(f"is using {tool_title(progress.tool).lower()}…", STATUS_CHARS)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
