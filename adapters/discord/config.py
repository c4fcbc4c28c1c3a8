"""What the Discord adapter needs to run; `bot/` fills it from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_API_BASE = "https://discord.com/api/v10"
DM_WORKSPACE = "dm"
"""The workspace id of direct messages: a person's DMs with Parley are their own tenant."""


@dataclass(frozen=True, kw_only=True)
class DiscordConfig:
    token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    """The REST base including its version path (DISCORD_API_BASE); a fake or a proxy in tests."""
    gateway_url: str | None = None
    """The gateway websocket (DISCORD_GATEWAY_URL); None asks GET /gateway/bot, as Discord intends."""
    application_id: str | None = None
    """None: read from the API at login."""
    auto_thread: bool = False
    """Move conversations in channels into a thread Parley starts."""
    auto_thread_after: int = 1
    """Messages from people in a reply chain before it moves into a thread (1: at once)."""
    max_file_bytes: int = 20_000_000
    """Attachments above this are not downloaded; the person is told so."""
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None
    edit_interval_s: float = 1.0
    """Streaming edits one reply at most this often (Discord's edit limits; no edit storms)."""

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("DISCORD_TOKEN is required to run the Discord bot")
        if self.shard_ids is not None and self.shard_count is None:
            raise ValueError("--shard-ids needs --shard-count")
        if self.shard_count is not None and self.shard_count < 1:
            raise ValueError("--shard-count must be at least 1")
        if self.shard_ids is not None and self.shard_count is not None and any(
            not 0 <= s < self.shard_count for s in self.shard_ids
        ):
            raise ValueError(f"shard ids must be between 0 and {self.shard_count - 1}")
        if self.auto_thread_after < 1 or self.max_file_bytes < 1 or self.edit_interval_s <= 0:
            raise ValueError("auto_thread_after, max_file_bytes and edit_interval_s must be positive")


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """'0,1,4-6' -> (0, 1, 4, 5, 6): the shards one process runs (`parley discord --shard-ids`)."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a shard id or a range like 2-5") from exc
        if low < 0 or high < low:
            raise ValueError(f"{part!r} is not a valid shard range")
        ids.extend(range(low, high + 1))
    if not ids:
        raise ValueError("no shard ids given")
    return tuple(sorted(set(ids)))
